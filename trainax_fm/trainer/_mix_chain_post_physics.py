from typing import Callable, Optional

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._general_trainer import DispatchMode, GeneralTrainer
from .._rollout import Remat, Unroll
from ..configuration import MixChainPostPhysics
from ..loss import BaseLoss, MSELoss
from ._common import init_from_configuration


class MixChainPostPhysicsTrainer(GeneralTrainer):
    """Mix-chain training (network steps, then reference steps) in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + num_post_physics_steps + 1` snapshots are trained
    with [`trainax_fm.configuration.MixChainPostPhysics`][].

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` or a PyTree of them.
    - `optimizer`: an `optax.GradientTransformation`.
    - `num_training_steps`: number of updates.
    - `batch_size`: windows per update.
    - `callback_fn`: optional callback, see [`trainax_fm.callback`][].
    - `do_sub_stacking`: use every window of each trajectory (`True`) or only the first.
    - `steps_per_dispatch`, `mesh`: see [`trainax_fm.GeneralTrainer`][].
    - all other arguments: see [`trainax_fm.configuration.MixChainPostPhysics`][].
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
        num_rollout_steps: int = 1,
        num_post_physics_steps: int = 1,
        time_level_loss: BaseLoss = MSELoss(),
        cut_bptt: bool = False,
        cut_bptt_every: int = 1,
        time_level_weights: Optional[Float[Array, " num_levels"]] = None,
        do_sub_stacking: bool = True,
        unroll: Unroll = "auto",
        remat: Remat = False,
        steps_per_dispatch: DispatchMode = "auto",
        mesh: Optional[jax.sharding.Mesh] = None,
    ):
        configuration = MixChainPostPhysics(
            num_rollout_steps,
            num_post_physics_steps,
            time_level_loss=time_level_loss,
            cut_bptt=cut_bptt,
            cut_bptt_every=cut_bptt_every,
            time_level_weights=time_level_weights,
            unroll=unroll,
            remat=remat,
        )
        init_from_configuration(
            self,
            data_trajectories,
            configuration,
            sub_trajectory_len=None,
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
