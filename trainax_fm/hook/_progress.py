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
    monitored validation metric (seed means with seeds)."""

    def __init__(self):
        self.bar = None
        self.pending = 0
        self.last_refresh = time.perf_counter()

    def on_start(self, loop: Loop) -> None:
        self.bar = tqdm(total=loop.stop - loop.step, dynamic_ncols=True, leave=True)

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
            if loop.last_validation:
                monitor = loop.validation.monitor
                value = np.mean(loop.last_validation[monitor])
                shown[f"val_{monitor}"] = f"{float(value):.3e}"
            self.bar.set_postfix(shown, refresh=False)

    def close(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()
