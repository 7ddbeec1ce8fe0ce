"""The engine options: declared once here, accepted by every trainer."""

import inspect
import numbers
import os
from typing import Literal, Optional, Sequence, Union

import equinox as eqx
import jax
from jaxtyping import PyTree

from ._precision import MixedPrecision
from .._argument_checks import check_positive_int
from ._dispatch import DispatchMode
from .._state._validation_history import MonitorMode
from ._validate import MetricSpec, parse_metrics

OnNonfinite = Literal["raise", "skip"]
PathLike = Union[str, os.PathLike]


def with_auto_axes(mesh):
    """The same devices and axis names, every axis in JAX's automatic sharding mode.

    `jax.make_mesh` gives explicit axes on current JAX, under which every operation
    with a sharded operand must be told its output sharding (a convolution over a
    batch-sharded input is refused). Data-parallel training only constrains the
    minibatch and lets XLA's partitioner propagate the rest, which is what automatic
    axes do, for every network.
    """
    if not isinstance(mesh, jax.sharding.Mesh):
        return mesh  # `None`, or a wrong type that `__check_init__` names
    auto = jax.sharding.AxisType.Auto
    if all(axis_type == auto for axis_type in mesh.axis_types):
        return mesh
    return jax.sharding.Mesh(
        mesh.devices, mesh.axis_names, axis_types=(auto,) * len(mesh.axis_names)
    )


class EngineOptions(eqx.Module):
    """How the training engine runs, whatever the methodology.

    Every trainer accepts each of these as a keyword (`SupervisedTrainer(...,
    steps_per_dispatch=1, mesh=mesh)`), and `train(...)` accepts them again to
    override them for one call. A new option is added here and to `EngineKeywords`
    (`trainax_fm/trainer/_keywords.py`), the record every trainer's keywords include
    (`tests/test_loop.py` names any trainer that lacks it).

    **Arguments:**

    - `steps_per_dispatch`: `"auto"` (chosen from the static cost of one update, the
        same in every process, see the engine docs), `1` (one update per dispatch,
        straight-line code) or `k > 1` (up to `k` updates inside one compiled loop).
    - `mesh`: a `jax.sharding.Mesh` for data-parallel training: every minibatch is
        split over the devices of its `batch_axis`; parameters (unless
        `parameter_axis` shards them) and data are replicated (data on disk are not:
        each process reads its rows of every minibatch). `None` uses the default device.
    - `batch_axis`: the mesh axis to split minibatches over.
    - `num_seeds`: train this many seeds side by side: the stepper, key (and
        optimizer state) given to `train` carry a leading seed axis. `None`: one seed.
    - `checkpoint_path`: if given, a [`trainax_fm.TrainState`][] is written there
        (atomically) every `checkpoint_every` updates and at the end.
    - `checkpoint_every`: checkpoint interval in updates (default: only at the end).
    - `on_nonfinite`: `"raise"` stops training with a
        [`trainax_fm.NonFiniteLossError`][] naming the update (the last checkpoint is
        left untouched); `"skip"` keeps parameters and optimizer state unchanged for
        updates whose loss or gradient is NaN/Inf and carries on.
    - `validation_data`: held-out trajectories (like the training data) to validate
        on; `None` disables validation and the options below.
    - `validate_every`: validate every this many updates (and always after the last
        update); `None`: only after the last update.
    - `validation_metrics`: what to compute: `"loss"` (the training configuration on
        every validation window), `"nrmse@K"` (rollout nRMSE after `K` steps from the
        first state of every validation trajectory, mean over trajectories) and
        callables `metric(stepper, data) -> dict[str, scalar]` (called on the host).
    - `monitor`: the metric that decides the best model and early stopping (default:
        the first of `validation_metrics`).
    - `monitor_mode`: `"min"` or `"max"`: whether lower or higher is better.
    - `patience`: stop once this many validations in a row did not improve the
        monitored metric by more than `min_delta`; `None`: never stop early.
    - `min_delta`: the least change that counts as an improvement.
    - `best_path`: write the best stepper there (atomically, with
        [`trainax_fm.save_stepper`][]) whenever it improves.
    - `parameter_axis`: shard the parameters and the optimizer state over this axis of
        `mesh` (fully-sharded data parallelism; it may be `batch_axis` itself): each
        array is split along its largest axis that the axis size divides, and XLA
        gathers it where it is used. `None` replicates them on every device.
    - `precision`: a [`trainax_fm.MixedPrecision`][] policy to compute the networks in
        bfloat16 or float16 (parameters, optimizer state and losses stay float32);
        `None` computes in the parameters' dtype.
    """

    steps_per_dispatch: DispatchMode = eqx.field(static=True, default="auto")
    mesh: Optional[jax.sharding.Mesh] = eqx.field(
        static=True, default=None, converter=with_auto_axes
    )
    batch_axis: str = eqx.field(static=True, default="batch")
    num_seeds: Optional[int] = eqx.field(static=True, default=None)
    checkpoint_path: Optional[PathLike] = eqx.field(static=True, default=None)
    checkpoint_every: Optional[int] = eqx.field(static=True, default=None)
    on_nonfinite: OnNonfinite = eqx.field(static=True, default="raise")
    validation_data: Optional[PyTree] = None
    validate_every: Optional[int] = eqx.field(static=True, default=None)
    validation_metrics: Sequence[MetricSpec] = eqx.field(
        static=True, default=("loss",), converter=lambda m: m if isinstance(m, str) else tuple(m)
    )
    monitor: Optional[str] = eqx.field(static=True, default=None)
    monitor_mode: MonitorMode = eqx.field(static=True, default="min")
    patience: Optional[int] = eqx.field(static=True, default=None)
    min_delta: float = eqx.field(static=True, default=0.0)
    best_path: Optional[PathLike] = eqx.field(static=True, default=None)
    precision: Optional[MixedPrecision] = eqx.field(static=True, default=None)
    parameter_axis: Optional[str] = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.steps_per_dispatch != "auto":
            check_positive_int(self.steps_per_dispatch, "steps_per_dispatch")
        if self.mesh is not None:
            if not isinstance(self.mesh, jax.sharding.Mesh):
                raise TypeError(
                    f"`mesh` must be a jax.sharding.Mesh, got {type(self.mesh).__name__}."
                )
            if self.batch_axis not in self.mesh.axis_names:
                raise ValueError(
                    f"`batch_axis` {self.batch_axis!r} is not an axis of `mesh` (axes "
                    f"{self.mesh.axis_names}); name the axis to split minibatches over."
                )
        if self.num_seeds is not None:
            check_positive_int(self.num_seeds, "num_seeds")
        if self.parameter_axis is not None:
            if self.mesh is None or self.parameter_axis not in self.mesh.axis_names:
                axes = None if self.mesh is None else self.mesh.axis_names
                raise ValueError(
                    f"`parameter_axis={self.parameter_axis!r}` shards parameters over an "
                    f"axis of `mesh`, whose axes are {axes}: pass a mesh with that axis "
                    "(e.g. the batch axis itself, for fully-sharded data parallelism)."
                )
            if jax.process_count() > 1 and (self.checkpoint_path or self.best_path):
                raise ValueError(
                    "`parameter_axis` with checkpoints is for one process for now: "
                    "writing sharded state from several processes needs every process's "
                    "shards (orbax-checkpoint), which trainax_fm does not do yet. Drop "
                    "`checkpoint_path`/`best_path` or `parameter_axis`."
                )
            if self.num_seeds is not None:
                raise ValueError(
                    "`parameter_axis` (sharded parameters) and `num_seeds` cannot be "
                    "combined: train the seeds one after another, or replicate them "
                    "(`parameter_axis=None`)."
                )
        if self.checkpoint_every is not None:
            check_positive_int(self.checkpoint_every, "checkpoint_every")
            if self.checkpoint_path is None:
                raise ValueError("`checkpoint_every` needs a `checkpoint_path` to write to.")
        if self.precision is not None and not isinstance(self.precision, MixedPrecision):
            raise TypeError(
                "`precision` must be a trainax_fm.MixedPrecision (e.g. "
                f"`tx.MixedPrecision('bfloat16')`) or None, got {type(self.precision).__name__}."
            )
        if self.on_nonfinite not in ("raise", "skip"):
            raise ValueError(
                f"`on_nonfinite` must be 'raise' or 'skip', got {self.on_nonfinite!r}."
            )
        self._check_validation()

    def _check_validation(self) -> None:
        if self.validation_data is None:
            given = [
                name for name in ("validate_every", "monitor", "patience", "best_path")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(f'`{name}`' for name in given)} configure validation, "
                    "which needs held-out trajectories: pass `validation_data=...`."
                )
            return
        if self.validate_every is not None:
            check_positive_int(self.validate_every, "validate_every")
        if self.patience is not None:
            check_positive_int(self.patience, "patience")
        if self.monitor_mode not in ("min", "max"):
            raise ValueError(
                f"`monitor_mode` must be 'min' or 'max', got {self.monitor_mode!r}."
            )
        if (
            isinstance(self.min_delta, bool)
            or not isinstance(self.min_delta, numbers.Real)
            or not self.min_delta >= 0
        ):
            raise ValueError(f"`min_delta` must be a number >= 0, got {self.min_delta!r}.")
        metrics = parse_metrics(self.validation_metrics)
        known = metrics.builtin_names
        if not known and not metrics.user_metrics:
            raise ValueError("`validation_metrics` is empty; name at least one metric.")
        if self.monitor is not None and self.monitor not in known and not metrics.user_metrics:
            raise ValueError(
                f"`monitor={self.monitor!r}` is not a validation metric; the metrics are "
                f"{list(known)}. Monitor one of them or add it to `validation_metrics`."
            )

    @property
    def metric_set(self):
        """The parsed `validation_metrics`."""
        return parse_metrics(self.validation_metrics)

    def replace(self, **changes) -> "EngineOptions":
        """These options with some fields changed (unknown names are a `TypeError`)."""
        return make_options(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in ENGINE_OPTION_NAMES}


ENGINE_OPTION_NAMES = tuple(inspect.signature(EngineOptions).parameters)


def make_options(**options) -> EngineOptions:
    """`EngineOptions(**options)` with a message that lists the valid names."""
    unknown = sorted(set(options) - set(ENGINE_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the engine "
            f"options are {', '.join(ENGINE_OPTION_NAMES)}."
        )
    return EngineOptions(**options)

