from typing import Any, Callable, Optional

import optax
from jaxtyping import PyTree

from .._general_trainer import DispatchMode, GeneralTrainer
from .._windows import TrajectorySubStacker


def init_from_configuration(
    trainer: GeneralTrainer,
    data_trajectories: PyTree,
    configuration: Any,
    *,
    sub_trajectory_len: Optional[int] = None,
    ref_stepper: Optional[Callable],
    residuum_fn: Optional[Callable],
    optimizer: optax.GradientTransformation,
    callback_fn: Optional[Callable],
    num_training_steps: int,
    batch_size: int,
    do_sub_stacking: bool,
    steps_per_dispatch: DispatchMode,
    mesh=None,
) -> None:
    """Build the windows a configuration needs and initialise `trainer` with them."""
    if sub_trajectory_len is None:
        sub_trajectory_len = getattr(configuration, "required_window_length", 1)
    stacker = TrajectorySubStacker(
        data_trajectories, sub_trajectory_len, do_sub_stacking=do_sub_stacking
    )
    GeneralTrainer.__init__(
        trainer,
        stacker,
        configuration,
        ref_stepper=ref_stepper,
        residuum_fn=residuum_fn,
        optimizer=optimizer,
        num_minibatches=num_training_steps,
        batch_size=batch_size,
        callback_fn=callback_fn,
        steps_per_dispatch=steps_per_dispatch,
        mesh=mesh,
    )
