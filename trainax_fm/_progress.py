"""A tqdm progress bar that shows the loss without forcing a device sync every step."""

import time
from typing import Optional

import numpy as np
from tqdm.auto import tqdm

# Refresh the bar at most this often; reading the loss synchronises with the device.
REFRESH_SECONDS = 0.2


class ProgressBar:
    def __init__(self, total: int, *, enabled: bool = True):
        self.bar = tqdm(total=total, dynamic_ncols=True, leave=True) if enabled else None
        self.last_refresh = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.last_refresh > REFRESH_SECONDS

    def update(self, count: int, loss: Optional[object] = None) -> None:
        self.last_refresh = time.perf_counter()
        if self.bar is None:
            return
        self.bar.update(count)
        if loss is not None:
            # With seeds in parallel the loss has a seed axis: show the mean.
            value = float(np.mean(np.asarray(loss)))
            self.bar.set_postfix(loss=f"{value:.3e}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
