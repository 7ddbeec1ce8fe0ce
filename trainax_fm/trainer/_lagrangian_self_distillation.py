from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from ..configuration import LagrangianSelfDistillation
from ..configuration._flow_time import AbstractTimeSampler
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class LagrangianSelfDistillationTrainer(AbstractOneLineTrainer):
    """Lagrangian self-distillation of a two-time flow map in one line.

    Trains a step-size-conditioned velocity `u(x, y, t, d)` (the flow map
    `X_(t,t+d)(x) = x + d u`) with
    [`trainax_fm.configuration.LagrangianSelfDistillation`][] on windows of
    `num_input_steps + 1` snapshots: flow matching on the diagonal, the Lagrangian
    condition off it. From scratch:

    ```python
    network = pdequinox.arch.ConvNet(
        1, tx.flow.velocity_input_channels(1, step_size_input=True), 1, key=key
    )
    model = tx.flow.ConditionalVelocity(network, step_size_input=True)
    trainer = tx.trainer.LagrangianSelfDistillationTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    model, losses = trainer(model, jax.random.key(0))
    stepper = tx.flow.FlowMatchingStepper(model, num_steps=1)  # 1 network evaluation
    ```

    From a trained velocity: pass `teacher=velocity` and start from
    `tx.flow.with_step_size_input(velocity)`.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.LagrangianSelfDistillation`][].
    """

    configuration_type = LagrangianSelfDistillation

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
        time_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        teacher=None,
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
