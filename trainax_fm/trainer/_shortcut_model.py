from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from ..configuration import ShortcutModel
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._optimizer import flow_map_optimizer
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class ShortcutModelTrainer(AbstractOneLineTrainer):
    """Shortcut models in one line: flow matching plus dyadic self-consistency.

    Trains a step-size-conditioned velocity `s(x, y, t, d)` (or an
    [`trainax_fm.flow.EMAVelocity`][] holding one, for EMA targets) with
    [`trainax_fm.configuration.ShortcutModel`][] on windows of
    `num_input_steps + 1` snapshots. The optimizer is wrapped with
    [`trainax_fm.flow.flow_map_optimizer`][], which moves the average of an
    `EMAVelocity` after every update.

    ```python
    model = tx.flow.EMAVelocity(
        tx.flow.ConditionalVelocity(network, step_size_input=True), decay=0.999
    )
    trainer = tx.trainer.ShortcutModelTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    model, losses = trainer(model, jax.random.key(0))
    stepper = tx.flow.FlowMatchingStepper(model.ema, num_steps=2)  # 2 evaluations
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.ShortcutModel`][].
    """

    configuration_type = ShortcutModel

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
        max_level: int = 6,
        bootstrap_share: float = 0.25,
        time_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
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
