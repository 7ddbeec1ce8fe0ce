"""`Dataset`: what an experiment trains and evaluates on."""

import dataclasses
from typing import Any, Callable, Optional

from ..data import DiskTrajectories


@dataclasses.dataclass
class Dataset:
    """Train and test trajectories of an experiment plus what the methods need.

    **Arguments:**

    - `train`, `test`: arrays `(S, T, C, *spatial)`; `train` may be a
        [`trainax_fm.data.DiskTrajectories`][] (an on-disk source).
    - `ref_stepper`: the reference simulator (one state to the next) or `None`.
    - `residuum_fn`: batched `(u_next, u_prev) -> residuum`, or `None`.
    - `dt`: the time between two snapshots (for plots).
    - `domain_extent`: the length of the periodic domain, or `None` (grid indices).
    - `validation`: held-out trajectories `(S_val, T, C, *spatial)` taken from the
        end of the training trajectories (`[validation] num_samples`), or `None`.
    """

    train: Any
    test: Any
    ref_stepper: Optional[Callable]
    residuum_fn: Optional[Callable]
    dt: float = 1.0
    domain_extent: Optional[float] = None
    validation: Any = None

    def hold_out(self, num_samples: int) -> "Dataset":
        """This data with its last `num_samples` training trajectories as validation."""
        if num_samples == 0:
            return self
        total = self.train.shape[0]
        if isinstance(self.train, DiskTrajectories):  # training stays on disk
            return dataclasses.replace(
                self, train=self.train.select((0, total - num_samples)),
                validation=self.train.select((total - num_samples, total)).read(),
            )
        return dataclasses.replace(
            self, train=self.train[:-num_samples], validation=self.train[-num_samples:]
        )

    @property
    def num_channels(self) -> int:
        return int(self.train.shape[2])

    @property
    def num_spatial_dims(self) -> int:
        return self.train.ndim - 3

    @property
    def num_points(self) -> int:
        return int(min(self.train.shape[3:])) if self.num_spatial_dims else 0
