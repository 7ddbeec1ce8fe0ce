"""The losses of a run, kept as the device arrays the dispatches returned."""

import dataclasses
from typing import Optional

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._argument_checks import is_traced


@dataclasses.dataclass(frozen=True)
class LossChunk:
    """The losses of one dispatch.

    **Arguments:**

    - `first_step`: the update the dispatch started at.
    - `count`: how many updates it ran.
    - `values`: the losses; a scalar for one update per dispatch, else a loop's loss
        buffer of which the first `count` entries are valid (after a leading seed axis
        for seed-parallel runs).
    """

    first_step: int
    count: int
    values: Float[Array, "..."]

    def valid(self, num_seeds: Optional[int], xnp=jnp) -> Float[Array, "..."]:
        """The valid losses, as a device array (`xnp=jnp`) or on the host (`np`)."""
        values = xnp.atleast_1d(xnp.asarray(self.values))
        if num_seeds is not None:
            return values.reshape(num_seeds, -1)[:, : self.count]
        return values[: self.count]


class LossHistory:
    """The losses of every update of a run: those of earlier calls plus new chunks.

    Nothing is read back from the device until a value is asked for.
    """

    def __init__(self, past: Float[Array, "*seeds step"], num_seeds: Optional[int]):
        self.past = past
        self.num_seeds = num_seeds
        self.chunks: list[LossChunk] = []

    def append(self, chunk: LossChunk) -> None:
        self.chunks.append(chunk)

    def since(self, first_step: int) -> np.ndarray:
        """The losses of this call's updates from `first_step` on, on the host."""
        parts = [c.valid(self.num_seeds, np) for c in self.chunks if c.first_step >= first_step]
        return self._concatenate(parts, np)

    def all(self) -> Float[Array, "*seeds step"]:
        """Every loss of the run so far (traceable under `eqx.filter_vmap`)."""
        if is_traced(self.past) or any(is_traced(c.values) for c in self.chunks):
            parts = [self.past] + [c.valid(self.num_seeds) for c in self.chunks]
            return self._concatenate(parts, jnp)
        # On the host: one transfer instead of an eager device op per chunk.
        parts = [np.asarray(self.past)] + [c.valid(self.num_seeds, np) for c in self.chunks]
        return jnp.asarray(self._concatenate(parts, np))

    def _concatenate(self, parts, xnp):
        if not parts:
            shape = (0,) if self.num_seeds is None else (self.num_seeds, 0)
            return xnp.zeros(shape)
        return xnp.concatenate(parts, axis=-1)
