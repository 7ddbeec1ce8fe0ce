"""The interface between the training loop and what observes it.

The protocol itself, [`trainax_fm.hook.AbstractHook`][], is defined by the loop that
emits its events (`trainax_fm._loop._loop`), so hooks build on the loop and never the
reverse; this module adds what the hooks share.
"""

import abc
from typing import Optional

from .._loop._loop import AbstractHook as AbstractHook
from .._loop._loop import Loop


def next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step`."""
    return (step // every + 1) * every


class AbstractPeriodicHook(AbstractHook):
    """A hook that acts at every multiple of `every` updates (never with `every=None`).

    Not public: what the checkpoint and validation hooks share. Subclasses set `every`
    and implement `on_period`; what they do at the end of a call is their own.
    """

    every: Optional[int]

    @abc.abstractmethod
    def on_period(self, loop: Loop) -> None:
        """Act at `loop.step`, a multiple of `every`."""

    def next_boundary(self, loop: Loop, step: int) -> Optional[int]:
        return None if self.every is None else next_multiple(step, self.every)

    def on_boundary(self, loop: Loop) -> None:
        # Another hook's boundary may fall between two multiples of `every`.
        if self.every is not None and loop.step % self.every == 0:
            self.on_period(loop)
