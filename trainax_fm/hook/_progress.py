"""A tqdm progress bar that shows the loss without forcing a device sync every update."""

import time

import numpy as np
from tqdm.auto import tqdm

from .._loop._history import LossChunk
from .._loop._loop import Loop
from ._base import AbstractHook


# Refresh the bar at most this often; reading the loss waits for the device.
REFRESH_SECONDS = 0.2


class ProgressBar(AbstractHook):
    """Show the updates of this call, the latest loss and the latest value of the
    monitored validation metric (seed means with seeds).

    The validation values are read from the validation hook's own state
    (`loop.validation`), and only once this call has validated: a resumed run's
    earlier validations are not shown as if they were new.
    """

    def __init__(self):
        self.bar = None
        self.pending = 0
        self.last_refresh = time.perf_counter()
        self.validations_at_start = 0

    def on_start(self, loop: Loop) -> None:
        self.bar = tqdm(total=loop.stop - loop.step, dynamic_ncols=True, leave=True)
        history = loop.validation
        self.validations_at_start = 0 if history is None else history.num_validations

    def after_updates(self, loop: Loop, chunk: LossChunk) -> None:
        self.pending += chunk.count
        if time.perf_counter() - self.last_refresh > REFRESH_SECONDS:
            self.refresh(loop, chunk)

    def on_end(self, loop: Loop) -> None:
        if loop.history.chunks:
            self.refresh(loop, loop.history.chunks[-1])

    def refresh(self, loop: Loop, chunk: LossChunk) -> None:
        self.last_refresh = time.perf_counter()
        self.bar.update(self.pending)
        self.pending = 0
        if not loop.traced:
            last = chunk.valid(loop.num_seeds, np)[..., -1]
            shown = {"loss": f"{float(np.mean(last)):.3e}"}
            history = loop.validation
            if history is not None and history.num_validations > self.validations_at_start:
                value = np.mean(history.values[history.monitor][..., -1])
                shown[f"val_{history.monitor}"] = f"{float(value):.3e}"
            self.bar.set_postfix(shown, refresh=False)

    def close(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()
