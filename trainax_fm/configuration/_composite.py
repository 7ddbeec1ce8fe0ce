from typing import ClassVar, Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._balancing import ReLoBRaLo
from ._base import BaseConfiguration, CallInputs, Loss, Windows, call_configuration
from ._callable import as_configuration
from ._checks import AbstractCheckedConfiguration


class AbstractComposite(AbstractCheckedConfiguration):
    """Configurations that combine the losses of member configurations, each on the
    same minibatch with its own random key."""

    configurations: eqx.AbstractVar[tuple[BaseConfiguration, ...]]

    checks_inputs: ClassVar[bool] = False

    @property
    def required_window_length(self) -> int:
        return max(c.required_window_length for c in self.configurations)

    @property
    def needs_ref_stepper(self) -> bool:
        return any(c.needs_ref_stepper for c in self.configurations)

    @property
    def needs_residuum_fn(self) -> bool:
        return any(c.needs_residuum_fn for c in self.configurations)

    @property
    def needs_key(self) -> bool:
        return any(c.needs_key for c in self.configurations)

    def member_losses(
        self, stepper, data, inputs: CallInputs, num_keys: Optional[int] = None
    ) -> list[Float[Array, ""]]:
        """The loss of every member: member `i` gets the `i`-th of `num_keys` (default:
        one per member) keys split from `key`."""
        count = len(self.configurations)
        keys = (
            [None] * count
            if inputs.key is None
            else list(jax.random.split(inputs.key, num_keys or count))[:count]
        )
        return [
            call_configuration(configuration, stepper, data, inputs._replace(key=member_key))
            for configuration, member_key in zip(self.configurations, keys)
        ]


def check_members(configurations) -> tuple[BaseConfiguration, ...]:
    configurations = tuple(configurations)
    if not configurations:
        raise ValueError("`configurations` is empty; pass at least one configuration.")
    for i, configuration in enumerate(configurations):
        if not callable(configuration):
            raise TypeError(
                f"`configurations[{i}]` must be a configuration, got "
                f"{type(configuration).__name__}."
            )
    # Members written for trainax are wrapped here, once, so the composite reads the
    # declared protocol of every member.
    return tuple(as_configuration(configuration) for configuration in configurations)


class Composite(AbstractComposite):
    r"""Weighted sum of configurations: $L = \sum_i \lambda_i L_i$.

    Every configuration receives the same minibatch; each gets its own random key.
    Windows must be long enough for the most demanding member
    (`required_window_length` is their maximum).

    **Arguments:**

    - `configurations`: the member configurations.
    - `weights`: one weight `λ_i` per configuration.
    - `balancing`: `None`, or an adaptive balancing rule
        ([`trainax_fm.configuration.ReLoBRaLo`][]) whose weights multiply `λ_i`
        during training. Its state is carried from update to update in the train
        state; a plain call (`full_loss`, callbacks, evaluation) has no history and
        uses the fixed weights `λ_i`.
    """

    configurations: tuple[BaseConfiguration, ...]
    weights: tuple[float, ...] = eqx.field(static=True)
    balancing: Optional[ReLoBRaLo] = None

    def __init__(
        self,
        configurations: Sequence[BaseConfiguration],
        weights: Sequence[float],
        *,
        balancing: Optional[ReLoBRaLo] = None,
    ):
        configurations = check_members(configurations)
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(configurations):
            raise ValueError(
                f"`weights` needs one entry per configuration: got {len(weights)} "
                f"weights for {len(configurations)} configurations."
            )
        if balancing is not None and not isinstance(balancing, ReLoBRaLo):
            raise TypeError(
                "`balancing` must be None or trainax_fm.configuration.ReLoBRaLo(), got "
                f"{type(balancing).__name__}."
            )
        if balancing is not None and any(c.has_state for c in configurations):
            raise ValueError(
                "A balanced Composite cannot hold members that carry their own state; "
                "nest the balancing in one Composite only."
            )
        self.configurations = configurations
        self.weights = weights
        self.balancing = balancing

    @property
    def needs_key(self) -> bool:
        balancing_key = self.balancing is not None and self.balancing.needs_key
        return balancing_key or super().needs_key

    @property
    def has_state(self) -> bool:
        return self.balancing is not None

    def init_state(self) -> PyTree:
        if self.balancing is None:
            return None
        return self.balancing.init(len(self.configurations))

    def _num_keys(self) -> int:
        # With balancing, the last of `count + 1` keys is the balancing's (its lookback).
        return len(self.configurations) + (self.balancing is not None)

    def _stateful_loss(
        self, stepper: eqx.Module, data: Windows, state: PyTree, inputs: CallInputs
    ) -> tuple[Loss, PyTree]:
        """The loss with the balancing weights of this update, and the next state."""
        if self.balancing is None:
            return super()._stateful_loss(stepper, data, state, inputs)
        if inputs.key is None and self.needs_key:
            raise ValueError(
                "This Composite is stochastic (a member or the ReLoBRaLo lookback draws "
                "random numbers) and needs `key=jax.random.PRNGKey(...)`."
            )
        losses = self.member_losses(stepper, data, inputs, num_keys=self._num_keys())
        stacked = jnp.stack([jnp.asarray(loss) for loss in losses])
        balance_key = (
            None if inputs.key is None else jax.random.split(inputs.key, self._num_keys())[-1]
        )
        balance, new_state = self.balancing.update(state, stacked, balance_key)
        weights = jnp.asarray(self.weights, stacked.dtype) * balance.astype(stacked.dtype)
        return jnp.sum(weights * stacked), new_state

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        losses = self.member_losses(stepper, data, inputs, num_keys=self._num_keys())
        total = 0.0
        for weight, loss in zip(self.weights, losses):
            total = total + weight * loss
        return total

