from typing import Optional, Sequence

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._base import BaseConfiguration, call_extras


class Composite(BaseConfiguration):
    r"""Weighted sum of configurations: $L = \sum_i \lambda_i L_i$.

    Every configuration receives the same minibatch; each gets its own random key.
    Windows must be long enough for the most demanding member
    ([`trainax_fm.configuration.Composite.required_window_length`][] is their maximum).

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
        configurations = tuple(configurations)
        weights = tuple(float(w) for w in weights)
        if not configurations:
            raise ValueError("`configurations` is empty; pass at least one configuration.")
        for i, configuration in enumerate(configurations):
            if not callable(configuration):
                raise TypeError(
                    f"`configurations[{i}]` must be a configuration, got "
                    f"{type(configuration).__name__}."
                )
        if len(weights) != len(configurations):
            raise ValueError(
                f"`weights` needs one entry per configuration: got {len(weights)} "
                f"weights for {len(configurations)} configurations."
            )
        self.configurations = configurations
        self.weights = weights

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
        keys = (
            [None] * len(self.configurations)
            if key is None
            else list(jax.random.split(key, len(self.configurations)))
        )
        total = 0.0
        for configuration, weight, member_key in zip(self.configurations, self.weights, keys):
            extra = call_extras(configuration, key=member_key, step=step)
            total = total + weight * configuration(
                stepper, data, ref_stepper=ref_stepper, residuum_fn=residuum_fn, **extra
            )
        return total


def _get(configuration, name, default):
    return getattr(configuration, name, default)

