from typing import Callable, Optional

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._general_trainer import DispatchMode, GeneralTrainer
from ._common import init_from_configuration


class ConfigurationTrainer(GeneralTrainer):
    """Train with any configuration, e.g. a [`trainax_fm.configuration.Composite`][].

    The window length is taken from the configuration's `required_window_length`
    (unless given), so
    `ConfigurationTrainer(data, Composite([Supervised(5), TemporalConsistency(5)],
    [1.0, 0.1]), optimizer=..., num_training_steps=..., batch_size=...)` is all it takes.

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` or a PyTree of them.
    - `loss_configuration`: any configuration.
    - `ref_stepper`, `residuum_fn`: as the configuration needs.
    - `optimizer`, `num_training_steps`, `batch_size`, `callback_fn`,
        `do_sub_stacking`, `steps_per_dispatch`, `mesh`: as in the other trainers.
    - `sub_trajectory_len`: override the window length.
    """

    def __init__(
        self,
        data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        loss_configuration,
        *,
        ref_stepper: Optional[Callable] = None,
        residuum_fn: Optional[Callable] = None,
        optimizer: optax.GradientTransformation,
        callback_fn: Optional[Callable] = None,
        num_training_steps: int,
        batch_size: int,
        do_sub_stacking: bool = True,
        sub_trajectory_len: Optional[int] = None,
        steps_per_dispatch: DispatchMode = "auto",
        mesh: Optional[jax.sharding.Mesh] = None,
    ):
        init_from_configuration(
            self,
            data_trajectories,
            loss_configuration,
            sub_trajectory_len=sub_trajectory_len,
            ref_stepper=ref_stepper,
            residuum_fn=residuum_fn,
            optimizer=optimizer,
            callback_fn=callback_fn,
            num_training_steps=num_training_steps,
            batch_size=batch_size,
            do_sub_stacking=do_sub_stacking,
            steps_per_dispatch=steps_per_dispatch,
            mesh=mesh,
        )
