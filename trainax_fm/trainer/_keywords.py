"""The keywords of the one-line trainers, each group declared once.

A one-line trainer's keywords are one record: a dataclass that inherits the groups it
takes (the shared trainer keywords, its methodology family's, the window keywords and
the engine options) and declares its own. The trainer's `__init__` is
`keyword_init(record)`, which takes exactly the record's parameters. Static tools read
the record: type checkers and IDEs through the `ParamSpec` in `keyword_init`'s type, the
API reference through griffe's dataclass support and the small griffe extension in
`docs/hooks/griffe_keyword_init.py`. So every keyword shows with its default without
being written out in each trainer. (The trainer itself cannot be that dataclass: an
`equinox.Module` inherits `GeneralTrainer`'s own `__init__` instead of a generated one.)

Static tools only recognise the decorator written as `@dataclasses.dataclass(...)`, so
each record spells it out. The order of a record's bases sets the order of its
keywords: a dataclass collects the fields of its bases from the last to the first, so a
record lists `EngineKeywords` first and its methodology's group last; its own fields
follow all of them.

The methodology keywords mirror the fields of the trainer's configuration, with the
same defaults; `tests/test_loop.py` checks that they stay equal.
"""

import dataclasses
import inspect
from typing import Any, Callable, Concatenate, Optional, ParamSpec, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from .._loop._precision import MixedPrecision
from .._rollout._training import Remat, Unroll
from ..data._windows import TrajectorySubStacker
from ..loss import BaseLoss, MSELoss

@dataclasses.dataclass(eq=False, repr=False)
class TrainerKeywords:
    """What every one-line trainer takes first, in trainax's order."""

    data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]]
    _: dataclasses.KW_ONLY
    ref_stepper: Optional[Callable] = None
    residuum_fn: Optional[Callable] = None
    optimizer: optax.GradientTransformation
    callback_fn: Optional[Callable] = None
    num_training_steps: int
    batch_size: int


@dataclasses.dataclass(eq=False, repr=False)
class _GeneralKeywords:
    trajectory_sub_stacker: TrajectorySubStacker
    loss_configuration: Any
    _: dataclasses.KW_ONLY
    ref_stepper: Optional[Callable] = None
    residuum_fn: Optional[Callable] = None
    optimizer: optax.GradientTransformation
    num_minibatches: int
    batch_size: int
    callback_fn: Optional[Callable] = None


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class RolloutKeywords(TrainerKeywords):
    """The fields of every configuration that rolls the stepper out."""

    num_rollout_steps: int = 1
    time_level_loss: BaseLoss = MSELoss()
    cut_bptt: bool = False
    cut_bptt_every: int = 1
    time_level_weights: Optional[Float[Array, " num_levels"]] = None
    unroll: Unroll = "auto"
    remat: Remat = False


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class FlowKeywords(TrainerKeywords):
    """The fields every flow-matching and flow-map configuration shares."""

    time_level_loss: BaseLoss = MSELoss()
    num_input_steps: int = 1


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class HistoryKeywords:
    """For configurations that feed the stepper several past states."""

    num_input_steps: int = 1


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class WindowKeywords:
    """How windows are cut from the trajectories."""

    do_sub_stacking: bool = True
    num_output_steps: int = 1


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class EngineKeywords:
    """The options of [`trainax_fm.EngineOptions`][], with the same defaults."""

    steps_per_dispatch: DispatchMode = "auto"
    mesh: Optional[jax.sharding.Mesh] = None
    batch_axis: str = "batch"
    num_seeds: Optional[int] = None
    checkpoint_path: Optional[PathLike] = None
    checkpoint_every: Optional[int] = None
    on_nonfinite: OnNonfinite = "raise"
    validation_data: Optional[PyTree] = None
    validate_every: Optional[int] = None
    validation_metrics: Sequence[MetricSpec] = ("loss",)
    monitor: Optional[str] = None
    monitor_mode: MonitorMode = "min"
    patience: Optional[int] = None
    min_delta: float = 0.0
    best_path: Optional[PathLike] = None
    precision: Optional[MixedPrecision] = None
    parameter_axis: Optional[str] = None


@dataclasses.dataclass(eq=False, repr=False)
class GeneralTrainerKeywords(EngineKeywords, _GeneralKeywords):
    """The keywords of [`trainax_fm.GeneralTrainer`][]: windows, configuration, the
    trainer keywords in trainax's order and the engine's."""


Keywords = ParamSpec("Keywords")


def keyword_init(
    record: Callable[Keywords, Any],
) -> Callable[Concatenate[Any, Keywords], None]:
    """A trainer `__init__` that takes the parameters of the dataclass `record`.

    The arguments are bound to the record's signature (Python's own messages for a
    missing or unknown keyword, prefixed with the trainer's name), the defaults filled
    in, and the trainer's `initialise` called with all of them by name.
    """
    signature = inspect.signature(record)
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)

    def __init__(self, *args, **kwargs) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}: {error}") from None
        bound.apply_defaults()
        self.initialise(**bound.arguments)

    __init__.__signature__ = signature.replace(
        parameters=[self_parameter, *signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    __init__.__doc__ = record.__doc__
    return __init__
