from typing import Optional, Sequence

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._base import BaseConfiguration, call_extras


class AbstractComposite(BaseConfiguration):
    """Configurations that combine the losses of member configurations, each on the
    same minibatch with its own random key."""

    configurations: eqx.AbstractVar[tuple[BaseConfiguration, ...]]

    @property
    def required_window_length(self) -> int:
        return max(_get(c, "required_window_length", 1) for c in self.configurations)

    @property
    def needs_ref_stepper(self) -> bool:
        return any(_get(c, "needs_ref_stepper", False) for c in self.configurations)

    @property
    def needs_residuum_fn(self) -> bool:
        return any(_get(c, "needs_residuum_fn", False) for c in self.configurations)

    @property
    def needs_key(self) -> bool:
        return any(_get(c, "needs_key", False) for c in self.configurations)

    def member_losses(
        self, stepper, data, *, ref_stepper, residuum_fn, key, step
    ) -> list[Float[Array, ""]]:
        """The loss of every member (member `i` gets the `i`-th of `len` split keys)."""
        keys = (
            [None] * len(self.configurations)
            if key is None
            else list(jax.random.split(key, len(self.configurations)))
        )
        losses = []
        for configuration, member_key in zip(self.configurations, keys):
            extra = call_extras(configuration, key=member_key, step=step)
            losses.append(configuration(
                stepper, data, ref_stepper=ref_stepper, residuum_fn=residuum_fn, **extra
            ))
        return losses


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
    return configurations


class Composite(AbstractComposite):
    r"""Weighted sum of configurations: $L = \sum_i \lambda_i L_i$.

    Every configuration receives the same minibatch; each gets its own random key.
    Windows must be long enough for the most demanding member
    (`required_window_length` is their maximum).

    **Arguments:**

    - `configurations`: the member configurations.
    - `weights`: one weight `λ_i` per configuration.
    """

    configurations: tuple[BaseConfiguration, ...]
    weights: tuple[float, ...] = eqx.field(static=True)

    def __init__(
        self,
        configurations: Sequence[BaseConfiguration],
        weights: Sequence[float],
    ):
        configurations = check_members(configurations)
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(configurations):
            raise ValueError(
                f"`weights` needs one entry per configuration: got {len(weights)} "
                f"weights for {len(configurations)} configurations."
            )
        self.configurations = configurations
        self.weights = weights

    def __call__(
        self,
        stepper: eqx.Module,
        data: PyTree[Float[Array, "batch window ..."]],
        *,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> Float[Array, ""]:
        losses = self.member_losses(
            stepper, data, ref_stepper=ref_stepper, residuum_fn=residuum_fn, key=key, step=step
        )
        total = 0.0
        for weight, loss in zip(self.weights, losses):
            total = total + weight * loss
        return total


def _get(configuration, name, default):
    return getattr(configuration, name, default)

