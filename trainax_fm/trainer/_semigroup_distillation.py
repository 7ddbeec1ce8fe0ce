from typing import Callable, Optional

import optax
from jaxtyping import Array, Float, PyTree

from .._general_trainer import DispatchMode, GeneralTrainer
from ..configuration import SemigroupDistillation
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._optimizer import flow_map_optimizer
from ..loss import BaseLoss, MSELoss
from ._common import init_from_configuration


class SemigroupDistillationTrainer(GeneralTrainer):
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

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` (one array).
    - `optimizer`: an `optax.GradientTransformation` (wrapped as described above).
    - `num_training_steps`: number of updates.
    - `batch_size`: windows per update.
    - `callback_fn`: optional callback, see [`trainax_fm.callback`][].
    - `step_sampler`, `time_level_loss`, `num_input_steps`, `teacher`,
        `velocity_space`: see [`trainax_fm.configuration.SemigroupDistillation`][].
    - `do_sub_stacking`, `steps_per_dispatch`: as in the other trainers.
    - `ref_stepper`, `residuum_fn`: unused (accepted for interface uniformity).
    """

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
        steps_per_dispatch: DispatchMode = "auto",
    ):
        configuration = SemigroupDistillation(
            step_sampler=step_sampler,
            time_level_loss=time_level_loss,
            num_input_steps=num_input_steps,
            teacher=teacher,
            velocity_space=velocity_space,
        )
        init_from_configuration(
            self,
            data_trajectories,
            configuration,
            ref_stepper=ref_stepper,
            residuum_fn=residuum_fn,
            optimizer=flow_map_optimizer(optimizer),
            callback_fn=callback_fn,
            num_training_steps=num_training_steps,
            batch_size=batch_size,
            do_sub_stacking=do_sub_stacking,
            steps_per_dispatch=steps_per_dispatch,
        )
