from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from .._rollout._training import Remat, Unroll
from ..configuration import MixChainPostPhysics
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class MixChainPostPhysicsTrainer(AbstractOneLineTrainer):
    """Mix-chain training (network steps, then reference steps) in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + num_post_physics_steps + 1` snapshots are trained
    with [`trainax_fm.configuration.MixChainPostPhysics`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.MixChainPostPhysics`][].
    """

    configuration_type = MixChainPostPhysics

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
        unroll: Unroll = "auto",
        remat: Remat = False,
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
