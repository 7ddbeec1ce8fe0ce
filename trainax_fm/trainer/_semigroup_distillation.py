from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from ..configuration import SemigroupDistillation
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._optimizer import flow_map_optimizer
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class SemigroupDistillationTrainer(AbstractOneLineTrainer):
    """Semigroup distillation of a flow map in one line.

    Trains a [`trainax_fm.flow.FlowMap`][] (or a `FlowMapStepper` holding one, or an
    [`trainax_fm.flow.EMAFlowMap`][]) with
    [`trainax_fm.configuration.SemigroupDistillation`][] on windows of
    `num_input_steps + 1` snapshots. The optimizer is wrapped with
    [`trainax_fm.flow.flow_map_optimizer`][], so only the correction `phi` is
    trained and the flow-matching velocity `v` stays exactly as it was. To compute the
    target with an exponential moving average of the weights, train a
    [`trainax_fm.flow.EMAFlowMap`][] (`EMAFlowMap(flow_map, decay=0.999)`); the wrapped
    optimizer moves the average after every update.

    ```python
    flow_map = tx.flow.FlowMap(trained_velocity)  # F_d == one Euler step at first
    trainer = tx.trainer.SemigroupDistillationTrainer(
        data, optimizer=optax.adam(1e-4), num_training_steps=5_000, batch_size=32
    )
    flow_map, losses = trainer(flow_map, jax.random.key(0))
    stepper = tx.flow.FlowMapStepper(flow_map, num_steps=2)
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.SemigroupDistillation`][].
    """

    configuration_type = SemigroupDistillation

    def __init__(
        self,
        data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        *,
        ref_stepper: Optional[Callable] = None,
        residuum_fn: Optional[Callable] = None,
        optimizer: optax.GradientTransformation,
        callback_fn: Optional[Callable] = None,
        num_training_steps: int,
        batch_size: int,
        step_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        teacher=None,
        velocity_space: bool = False,
        do_sub_stacking: bool = True,
        num_output_steps: int = 1,
        steps_per_dispatch: DispatchMode = "auto",
        mesh: Optional[jax.sharding.Mesh] = None,
        batch_axis: str = "batch",
        num_seeds: Optional[int] = None,
        checkpoint_path: Optional[PathLike] = None,
        checkpoint_every: Optional[int] = None,
        on_nonfinite: OnNonfinite = "raise",
        validation_data: Optional[PyTree] = None,
        validate_every: Optional[int] = None,
        validation_metrics: Sequence[MetricSpec] = ("loss",),
        monitor: Optional[str] = None,
        monitor_mode: MonitorMode = "min",
        patience: Optional[int] = None,
        min_delta: float = 0.0,
        best_path: Optional[PathLike] = None,
    ):
        # The keywords are spelled out (not `**keywords`) so that IDEs, `help()` and the
        # API reference, which reads the source, all show them.
        self.initialise(arguments_of(locals()))

    def prepare_optimizer(
        self, optimizer: optax.GradientTransformation
    ) -> optax.GradientTransformation:
        return flow_map_optimizer(optimizer)
