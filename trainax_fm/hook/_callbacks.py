"""Run a trainax callback `callback_fn(update_i, stepper, data)` for every update."""

from typing import Callable, Optional

import equinox as eqx

from .._loop._loop import Loop
from ._base import AbstractHook


class Callbacks(AbstractHook):
    """Call `callback_fn` before every update and collect what it returns.

    As in trainax, the callback sees update `i`'s stepper before the update and that
    update's minibatch at its active steps (`callback_fn.is_active(i)`, e.g. every
    `every` updates for [`trainax_fm.callback.BaseCallback`][]; a plain function is
    active at every update), and `None` as data elsewhere. The loop returns to Python
    at every active step; updates in between run compiled. With seeds in parallel the
    callback is `eqx.filter_vmap`-ed over the seed axis.

    **Arguments:**

    - `callback_fn`: the callback.

    The results, one per update, are in `history`.
    """

    def __init__(self, callback_fn: Callable):
        self.callback_fn = callback_fn
        self.history: list = []

    def is_active(self, step: int) -> bool:
        is_active: Optional[Callable] = getattr(self.callback_fn, "is_active", None)
        return True if is_active is None else bool(is_active(step))

    def next_boundary(self, loop: Loop, step: int) -> Optional[int]:
        return next((s for s in range(step + 1, loop.stop) if self.is_active(s)), None)

    def before_updates(self, loop: Loop, count: int) -> None:
        first = loop.step
        if self.is_active(first):
            data = loop.batch()
            if loop.num_seeds is not None:
                result = eqx.filter_vmap(lambda s, d: self.callback_fn(first, s, d))(
                    loop.stepper, data
                )
            else:
                result = self.callback_fn(first, loop.stepper, data)
        else:
            result = self.callback_fn(first, loop.stepper, None)
        self.history.append(result)
        # A dispatch never runs past the next active step.
        for step in range(first + 1, first + count):
            self.history.append(self.callback_fn(step, loop.stepper, None))
