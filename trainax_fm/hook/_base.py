"""The interface between the training loop and what observes it.

The protocol itself, [`trainax_fm.hook.AbstractHook`][], is defined by the loop that
emits its events (`trainax_fm._loop._loop`), so hooks build on the loop and never the
reverse; this module adds what the hooks share.
"""

from .._loop._loop import AbstractHook as AbstractHook


def next_multiple(step: int, every: int) -> int:
    """The first multiple of `every` after `step`."""
    return (step // every + 1) * every
