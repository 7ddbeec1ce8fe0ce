from typing import Callable, Optional

import optax
from jaxtyping import Array, Float, PyTree

from .._general_trainer import DispatchMode, GeneralTrainer
from ..configuration import FlowMatching
from ..configuration._flow_time import AbstractTimeSampler
from ..loss import BaseLoss, MSELoss
from ._common import init_from_configuration


class FlowMatchingTrainer(GeneralTrainer):
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

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` (one array).
    - `optimizer`: an `optax.GradientTransformation`.
    - `num_training_steps`: number of updates.
    - `batch_size`: windows per update.
    - `callback_fn`: optional callback, see [`trainax_fm.callback`][].
    - `time_level_loss`, `num_input_steps`, `time_sampler`: see
        [`trainax_fm.configuration.FlowMatching`][].
    - `do_sub_stacking`: use every window of each trajectory (`True`) or only the first.
    - `steps_per_dispatch`: see [`trainax_fm.GeneralTrainer`][].
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
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        time_sampler: Optional[AbstractTimeSampler] = None,
        do_sub_stacking: bool = True,
        steps_per_dispatch: DispatchMode = "auto",
    ):
        configuration = FlowMatching(
            time_level_loss=time_level_loss,
            num_input_steps=num_input_steps,
            time_sampler=time_sampler,
        )
        init_from_configuration(
            self,
            data_trajectories,
            configuration,
            ref_stepper=ref_stepper,
            residuum_fn=residuum_fn,
            optimizer=optimizer,
            callback_fn=callback_fn,
            num_training_steps=num_training_steps,
            batch_size=batch_size,
            do_sub_stacking=do_sub_stacking,
            steps_per_dispatch=steps_per_dispatch,
        )
