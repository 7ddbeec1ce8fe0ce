"""A stepper that carries learnable loss weights, trained along with it."""

from collections.abc import Sequence
from typing import Any, Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._protocol import needs_key


class WithLossWeights(eqx.Module):
    r"""A stepper together with the log-variances `s_i` of learned loss weights.

    [`trainax_fm.configuration.UncertaintyWeighted`][] reads `s_i` from here and
    weighs its members by `exp(-s_i)`. Because the log-variances are leaves of the
    trained stepper, the trainer's optimizer trains them with the network, and
    checkpoints, seed-parallel training and resume carry them unchanged. Calling it
    calls the wrapped stepper, so rollouts, metrics and plots work as before.

    **Arguments:**

    - `stepper`: the stepper (a network, or a [`trainax_fm.NormalizedStepper`][]).
    - `names`: one name per weighted loss, in the order of the configuration's members.
    - `log_variances`: the initial `s_i`; default zeros (all weights 1).
    """

    stepper: Any
    log_variances: Float[Array, " num_losses"]
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(
        self,
        stepper: Any,
        names: Sequence[str],
        log_variances: Optional[Float[Array, " num_losses"]] = None,
    ):
        if isinstance(stepper, WithLossWeights):
            raise TypeError("`stepper` already is a WithLossWeights; wrap it once.")
        if not callable(stepper):
            raise TypeError(f"`stepper` must be callable, got {type(stepper).__name__}.")
        names = check_names(names)
        if log_variances is None:
            log_variances = jnp.zeros(len(names))
        log_variances = jnp.asarray(log_variances)
        if log_variances.shape != (len(names),) or not jnp.issubdtype(
            log_variances.dtype, jnp.floating
        ):
            raise ValueError(
                f"`log_variances` must be a float vector with one entry per name "
                f"(shape ({len(names)},)), got {log_variances.dtype} of shape "
                f"{log_variances.shape}."
            )
        self.stepper = stepper
        self.names = names
        self.log_variances = log_variances

    @property
    def needs_key(self) -> bool:
        """Whether the wrapped stepper is stochastic (see [`trainax_fm.rollout`][])."""
        return needs_key(self.stepper)

    def __call__(self, *args, **kwargs):
        """Calls the wrapped stepper."""
        return self.stepper(*args, **kwargs)


def loss_weights(stepper: WithLossWeights) -> dict[str, Float[Array, "*seeds"]]:
    """The current learned loss weights `exp(-s_i)` by name (e.g. for a logging hook).

    **Arguments:**

    - `stepper`: a [`trainax_fm.WithLossWeights`][] (seed-stacked ones give one weight
        per seed).

    **Returns:**

    - `{name: exp(-s_name)}`.
    """
    if not isinstance(stepper, WithLossWeights):
        raise TypeError(
            "`stepper` must be a trainax_fm.WithLossWeights (the stepper trained with an "
            f"UncertaintyWeighted configuration), got {type(stepper).__name__}."
        )
    weights = jnp.exp(-stepper.log_variances)
    return {name: weights[..., i] for i, name in enumerate(stepper.names)}


def check_names(names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"`names` must be a list or tuple of strings, got {names!r}.")
    names = tuple(names)
    if (
        not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            f"`names` must be non-empty, distinct strings (one per loss), got {names!r}."
        )
    return names
