import abc
import operator
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from .._argument_checks import check_positive_int


def _as_python_int(update_i: Any) -> int:
    """Turn a concrete update counter (Python, NumPy or JAX integer) into an `int`."""
    if isinstance(update_i, jax.core.Tracer):
        raise TypeError(
            "Callbacks decide on the host whether to run, so `update_i` must be a "
            "concrete integer, got a traced value. Call the callback outside of "
            "`jax.jit`/`jax.vmap`-transformed code."
        )
    try:
        return operator.index(update_i)
    except TypeError:
        raise TypeError(
            f"`update_i` must be an integer, got {update_i!r} of type "
            f"{type(update_i).__name__}."
        ) from None


class BaseCallback(eqx.Module):
    """Base class of the callbacks run during training.

    A callback is evaluated after an update with the current `stepper` and the
    minibatch `data` that produced the update. It runs every `every` updates: calling
    it returns `{name: result}` when `update_i % every == 0` and `{name: None}`
    otherwise, so the trainer can collect the same keys at every step.

    Subclasses implement [`trainax_fm.callback.BaseCallback.callback`][] and set the
    fields `every` and `name`.

    **Arguments:**

    - `every`: run the callback at every update whose index is a multiple of `every`
        (a positive integer).
    - `name`: the key of the result in the returned dictionary.
    """

    every: int = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __check_init__(self):
        check_positive_int(self.every, "every")
        if not isinstance(self.name, str):
            raise TypeError(
                f"`name` of a callback must be a string, got {self.name!r} of type "
                f"{type(self.name).__name__}."
            )

    @abc.abstractmethod
    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> Any:
        """Compute the callback's result; only called when the callback is active.

        **Arguments:**

        - `update_i`: the index of the current update.
        - `stepper`: the current emulator.
        - `data`: the minibatch of windows `(B, W, C, *spatial)` (or a PyTree of them)
            of the current update.

        **Returns:**

        - Anything; stored under `name` in the dictionary that `__call__` returns.
        """

    def is_active(self, update_i: int) -> bool:
        """Whether the callback computes a result at update `update_i`.

        **Arguments:**

        - `update_i`: the index of the update (a concrete integer).

        **Returns:**

        - `True` if `update_i` is a multiple of `every`.
        """
        return _as_python_int(update_i) % self.every == 0

    def __call__(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> dict[str, Any]:
        """Run the callback if it is active at `update_i`.

        **Arguments:**

        - `update_i`: the index of the current update.
        - `stepper`: the current emulator.
        - `data`: the minibatch of the current update.

        **Returns:**

        - `{name: result}` if `update_i % every == 0`, else `{name: None}`.
        """
        if self.is_active(update_i):
            return {self.name: self.callback(update_i, stepper, data)}
        return {self.name: None}
