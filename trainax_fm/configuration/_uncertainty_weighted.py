from collections.abc import Sequence
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._stepper._loss_weights import WithLossWeights, check_names
from ._base import BaseConfiguration, CallInputs, Loss, Windows
from ._composite import AbstractComposite, check_members


class UncertaintyWeighted(AbstractComposite):
    r"""A composite whose weights are learned: $L = \sum_i e^{-s_i} L_i + s_i$.

    Homoscedastic-uncertainty weighting (Kendall, Gal and Cipolla, 2018): every member
    loss `L_i` gets the weight `exp(-s_i)`, and the term `s_i` keeps the weights from
    collapsing to zero; for a fixed `L_i` the optimal `s_i` is `log L_i`, so each
    weighted loss tends to 1. The log-variances `s_i` live in the trained stepper, a
    [`trainax_fm.WithLossWeights`][] built by
    [`trainax_fm.configuration.UncertaintyWeighted.wrap`][], so the trainer's
    optimizer trains them with the network and checkpoints and resume carry them.
    Read the current weights with [`trainax_fm.loss_weights`][].

    ```python
    configuration = tx.configuration.UncertaintyWeighted(
        [Supervised(3), TemporalConsistency(3)], ["supervised", "consistency"]
    )
    trainer = tx.trainer.ConfigurationTrainer(data, configuration, optimizer=..., ...)
    result = trainer.train(configuration.wrap(network), key)
    tx.loss_weights(result.stepper)  # {"supervised": ..., "consistency": ...}
    ```

    **Arguments:**

    - `configurations`: the member configurations (each sees the bare stepper).
    - `names`: one name per member, for [`trainax_fm.loss_weights`][].
    """

    configurations: tuple[BaseConfiguration, ...]
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, configurations: Sequence[BaseConfiguration], names: Sequence[str]):
        configurations = check_members(configurations)
        names = check_names(names)
        if len(names) != len(configurations):
            raise ValueError(
                f"`names` needs one entry per configuration: got {len(names)} names "
                f"for {len(configurations)} configurations."
            )
        self.configurations = configurations
        self.names = names

    def wrap(
        self, stepper, log_variances: Optional[Float[Array, " num_losses"]] = None
    ) -> WithLossWeights:
        """The stepper to train: `stepper` with log-variances `s_i` (default zeros)."""
        return WithLossWeights(stepper, self.names, log_variances)

    def _loss(self, stepper: WithLossWeights, data: Windows, inputs: CallInputs) -> Loss:
        if not isinstance(stepper, WithLossWeights):
            raise TypeError(
                "UncertaintyWeighted learns its weights with the stepper: train "
                "`configuration.wrap(stepper)` (a trainax_fm.WithLossWeights), got a "
                f"{type(stepper).__name__}."
            )
        if stepper.names != self.names:
            raise ValueError(
                f"the stepper's loss-weight names {stepper.names} differ from the "
                f"configuration's {self.names}; build it with `configuration.wrap(stepper)`."
            )
        losses = self.member_losses(stepper.stepper, data, inputs)
        log_variances = stepper.log_variances
        return jnp.sum(jnp.exp(-log_variances) * jnp.stack(losses) + log_variances)
