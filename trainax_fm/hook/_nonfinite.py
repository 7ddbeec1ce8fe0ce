"""Stop training at the first NaN/Inf loss or parameter, naming the update."""

import os
import time
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._loop._history import LossChunk
from .._loop._loop import Loop
from ._base import AbstractHook


# Check at most this often between boundaries: a check waits for the device.
CHECK_SECONDS = 0.2


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss (or a parameter) becomes NaN or Inf.

    **Arguments:**

    - `message`: the full message, with advice.
    - `problem`: what went wrong where (`"the training loss became nan at update
        7"`), without advice; defaults to `message`. Callers that know other options
        than the trainer's (the command line) build their own advice from it.
    - `last_checkpoint`: the last good checkpoint written, or `None`.
    - `last_checkpoint_step`: the update that checkpoint was written at, or `None`.
    """

    def __init__(
        self,
        message: str,
        *,
        problem: Optional[str] = None,
        last_checkpoint: Optional[os.PathLike] = None,
        last_checkpoint_step: Optional[int] = None,
    ):
        super().__init__(message)
        self.problem = message if problem is None else problem
        self.last_checkpoint = last_checkpoint
        self.last_checkpoint_step = last_checkpoint_step


class NonFiniteGuard(AbstractHook):
    """Raise [`trainax_fm.NonFiniteLossError`][] at the first NaN/Inf loss.

    The losses are checked a few times a second, at every boundary (so before any
    checkpoint is written) and at the end; after them, the parameters are checked too
    (a NaN gradient leaves a finite loss but NaN weights). The error names the update
    (and seed) and the last checkpoint written, which is never overwritten by a bad
    state. Inactive while tracing (inside `eqx.filter_vmap`).

    **Arguments:**

    - `last_checkpoint`: a callable returning the path of the last checkpoint written
        (or `None`), for the message.
    - `last_checkpoint_step`: a callable returning the update that checkpoint was
        written at (or `None`).
    """

    def __init__(self, last_checkpoint=lambda: None, last_checkpoint_step=lambda: None):
        self.last_checkpoint = last_checkpoint
        self.last_checkpoint_step = last_checkpoint_step
        self.unchecked_from = 0
        self.last_check = time.perf_counter()

    def on_start(self, loop: Loop) -> None:
        self.unchecked_from = loop.step

    def after_updates(self, loop: Loop, chunk: LossChunk) -> None:
        if time.perf_counter() - self.last_check > CHECK_SECONDS:
            self.check(loop)

    def on_boundary(self, loop: Loop) -> None:
        self.check(loop)

    def on_end(self, loop: Loop) -> None:
        self.check(loop)

    def check(self, loop: Loop) -> None:
        self.last_check = time.perf_counter()
        if loop.traced or loop.step == self.unchecked_from:
            return
        first, self.unchecked_from = self.unchecked_from, loop.step
        problem = _first_bad_loss(loop, first) or _bad_parameters(loop, first)
        if problem is None:
            return
        checkpoint = self.last_checkpoint()
        raise NonFiniteLossError(
            f"{problem}; training stopped. Lower the learning rate, check the data for "
            "outliers, or clip gradients (optax.clip_by_global_norm); or pass "
            "on_nonfinite='skip'."
            + (f" The last good checkpoint is {str(checkpoint)!r}." if checkpoint else ""),
            problem=problem,
            last_checkpoint=checkpoint or None,
            last_checkpoint_step=self.last_checkpoint_step() if checkpoint else None,
        )


def _first_bad_loss(loop: Loop, first: int) -> Optional[str]:
    values = np.atleast_2d(loop.history.since(first))
    bad_seed, bad_update = np.nonzero(~np.isfinite(values))
    if not bad_update.size:
        return None
    earliest = int(np.argmin(bad_update))
    seed, index = int(bad_seed[earliest]), int(bad_update[earliest])
    which = f" (seed {seed})" if loop.num_seeds is not None else ""
    return (
        f"the training loss became {values[seed, index]} at update {first + index}{which}"
    )


def _bad_parameters(loop: Loop, first: int) -> Optional[str]:
    if bool(_all_finite(eqx.filter(loop.stepper, eqx.is_inexact_array))):
        return None
    last = loop.step - 1
    where = f"update {last}" if last == first else f"one of updates {first}..{last}"
    return f"the parameters became NaN/Inf in {where} (a non-finite gradient)"


@jax.jit
def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True
