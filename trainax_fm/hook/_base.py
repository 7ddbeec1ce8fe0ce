"""The interface between the training loop and what observes it."""

import abc
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .._loop._loop import Loop
    from .._loop._history import LossChunk


class AbstractHook(abc.ABC):
    """Something that observes the training loop and may stop it.

    The loop runs compiled updates, many per dispatch, and returns to Python only
    where a hook asks for it. It emits these events, to every hook in order:

    - `on_start(loop)`: before the first update of the call.
    - `before_updates(loop, count)`: before the `count` updates that start at
        `loop.step` run (the stepper is the one before update `loop.step`).
    - `after_updates(loop, chunk)`: after them; `chunk` holds their losses as device
        arrays (reading them waits for the device).
    - `on_boundary(loop)`: when `loop.step` is a step that some hook asked to see
        through `next_boundary`.
    - `on_end(loop)`: after the last update of the call (also after a stop request).
    - `close(loop)`: always, last, also when training raised.

    A hook stops training cleanly with `loop.request_stop(reason)`: the loop finishes
    the current event and then ends as after its last update. Hooks hold host state,
    so they are plain Python objects, made anew for each call of `train`.
    """

    def next_boundary(self, loop: "Loop", step: int) -> Optional[int]:
        """The first step after `step` at which this hook needs `on_boundary`, if any."""
        return None

    def on_start(self, loop: "Loop") -> None:
        pass

    def before_updates(self, loop: "Loop", count: int) -> None:
        pass

    def after_updates(self, loop: "Loop", chunk: "LossChunk") -> None:
        pass

    def on_boundary(self, loop: "Loop") -> None:
        pass

    def on_end(self, loop: "Loop") -> None:
        pass

    def close(self, loop: "Loop") -> None:
        pass


def next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step`."""
    return (step // every + 1) * every
