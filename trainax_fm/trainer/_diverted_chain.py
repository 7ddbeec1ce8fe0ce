from typing import Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from .._rollout._training import Remat, Unroll
from ..configuration import DivertedChain
from ..loss import BaseLoss, MSELoss
from ._common import AbstractOneLineTrainer, arguments_of


class DivertedChainTrainer(AbstractOneLineTrainer):
    """Diverted-chain training with branches of `num_branch_steps` in one line
    (needs `ref_stepper`).

    Windows of `num_rollout_steps + 1` snapshots are cut (only their initial condition
    is used) and trained with [`trainax_fm.configuration.DivertedChain`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.DivertedChain`][].
    """

    configuration_type = DivertedChain

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
        num_branch_steps: int = 1,
        time_level_loss: BaseLoss = MSELoss(),
        cut_bptt: bool = False,
        cut_bptt_every: int = 1,
        cut_div_chain: bool = False,
        time_level_weights: Optional[Float[Array, " num_rollout_steps"]] = None,
        branch_level_weights: Optional[Float[Array, " num_branch_steps"]] = None,
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

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
