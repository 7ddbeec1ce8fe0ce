"""Write the train state every `every` updates and at the end, atomically."""

import os
from pathlib import Path
from typing import Optional, Union

from .._loop._loop import Loop
from .._state._checkpoint import save_train_state
from ._base import AbstractPeriodicHook


class Checkpoint(AbstractPeriodicHook):
    """Save a [`trainax_fm.TrainState`][] to `path` every `every` updates and at the end.

    Runs after the non-finite guard, so a state with NaN losses or parameters is never
    written over the last good checkpoint. Under several processes every process
    takes part (sharded arrays are gathered), process 0 writes the one file and all
    wait until it is in place (see [`trainax_fm.save_train_state`][]). Inactive while
    tracing.

    **Arguments:**

    - `path`: the checkpoint file.
    - `every`: the interval in updates (`None`: only at the end).
    """

    def __init__(self, path: Union[str, os.PathLike], every: Optional[int] = None):
        self.path = Path(path)
        self.every = every
        self.last_written: Optional[Path] = None
        self.last_step: Optional[int] = None

    def on_period(self, loop: Loop) -> None:
        self.save(loop)

    def on_end(self, loop: Loop) -> None:
        if self.last_step != loop.step:
            self.save(loop)

    def save(self, loop: Loop) -> None:
        if loop.traced:
            return
        save_train_state(self.path, loop.train_state())
        self.last_written, self.last_step = self.path, loop.step
