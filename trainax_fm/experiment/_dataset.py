"""`Dataset`: what an experiment trains and evaluates on."""

import dataclasses
from typing import Any, Callable, Optional

from ..data import DiskTrajectories
from ..data._conditioned import ConditionedTrajectories


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
    - `train_constants`, `test_constants`, `validation_constants`:
        `(constant_scalars, constant_fields)` per trajectory of
        `train`/`test`/`validation` (either may be `None`), or `None` for data without
        constants; the emulator is then a conditioned one.
    """

    train: Any
    test: Any
    ref_stepper: Optional[Callable]
    residuum_fn: Optional[Callable]
    dt: float = 1.0
    domain_extent: Optional[float] = None
    validation: Any = None
    train_constants: Optional[tuple] = None
    test_constants: Optional[tuple] = None
    validation_constants: Optional[tuple] = None

    def hold_out(self, num_samples: int) -> "Dataset":
        """This data with its last `num_samples` training trajectories (and their
        constants) as validation."""
        if num_samples == 0:
            return self
        total = self.train.shape[0]
        if isinstance(self.train, DiskTrajectories):  # training stays on disk
            return dataclasses.replace(
                self, train=self.train.select((0, total - num_samples)),
                validation=self.train.select((total - num_samples, total)).read(),
            )
        return dataclasses.replace(
            self,
            train=self.train[:-num_samples],
            validation=self.train[-num_samples:],
            train_constants=_rows(self.train_constants, slice(None, -num_samples)),
            validation_constants=_rows(self.train_constants, slice(-num_samples, None)),
        )

    @property
    def num_constant_channels(self) -> int:
        """Input channels the constants add: one per scalar and per field."""
        if self.train_constants is None:
            return 0
        return sum(int(c.shape[1]) for c in self.train_constants if c is not None)

    @property
    def training_data(self) -> Any:
        """What the trainer trains on: `train`, with its constants if it has some."""
        return _with_constants(self.train, self.train_constants)

    @property
    def validation_data(self) -> Any:
        """The held-out `validation` trajectories, with their constants if any."""
        return _with_constants(self.validation, self.validation_constants)

    @property
    def num_channels(self) -> int:
        return int(self.train.shape[2])

    @property
    def num_spatial_dims(self) -> int:
        return self.train.ndim - 3

    @property
    def num_points(self) -> int:
        return int(min(self.train.shape[3:])) if self.num_spatial_dims else 0


def _rows(constants: Optional[tuple], rows: slice) -> Optional[tuple]:
    if constants is None:
        return None
    return tuple(None if c is None else c[rows] for c in constants)


def _with_constants(trajectories: Any, constants: Optional[tuple]) -> Any:
    if trajectories is None or constants is None:
        return trajectories
    return ConditionedTrajectories(trajectories, *constants)
