from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from ..configuration import FlowMatching
from ..configuration._flow_time import AbstractTimeSampler
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class FlowMatchingTrainer(AbstractOneLineTrainer):
    """Conditional flow matching in one line.

    Windows of `num_input_steps + 1` snapshots are trained with
    [`trainax_fm.configuration.FlowMatching`][]; the engine passes a fresh key (noise
    and flow times) every update. Train a [`trainax_fm.flow.ConditionalVelocity`][] or,
    to get a stepper that is ready for stochastic rollouts, a
    [`trainax_fm.flow.FlowMatchingStepper`][]:

    ```python
    velocity = tx.flow.ConditionalVelocity(network)
    stepper = tx.flow.FlowMatchingStepper(velocity, num_steps=10, method="heun")
    trainer = tx.trainer.FlowMatchingTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    stepper, losses = trainer(stepper, jax.random.key(0))
    samples = tx.rollout(stepper, ic, 100, key=jax.random.key(1))
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.FlowMatching`][].
    """

    configuration_type = FlowMatching

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
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        time_sampler: Optional[AbstractTimeSampler] = None,
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
