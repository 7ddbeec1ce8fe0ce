from typing import Any, Callable, Optional, Sequence

import jax
import optax
from jaxtyping import Array, Float, PyTree

from .._loop._options import DispatchMode, MetricSpec, MonitorMode, OnNonfinite, PathLike
from ..configuration._callable import as_configuration
from ._common import arguments_of, init_from_configuration
from ._general import GeneralTrainer


class ConfigurationTrainer(GeneralTrainer):
    """Train with any configuration, e.g. a [`trainax_fm.configuration.Composite`][].

    The window length is taken from the configuration's `required_window_length`
    (unless given), so
    `ConfigurationTrainer(data, Composite([Supervised(5), TemporalConsistency(5)],
    [1.0, 0.1]), optimizer=..., num_training_steps=..., batch_size=...)` is all it takes.

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` or a PyTree of them.
    - `loss_configuration`: any configuration.
    - the keywords every trainer shares and the engine options: see
        [`trainax_fm.trainer`][] (`ref_stepper`, `residuum_fn` as the configuration
        needs).
    - `sub_trajectory_len`: override the window length (in blocks with
        `num_output_steps > 1`).
    """

    def __init__(
        self,
        data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        loss_configuration: Any,
        *,
        ref_stepper: Optional[Callable] = None,
        residuum_fn: Optional[Callable] = None,
        optimizer: optax.GradientTransformation,
        callback_fn: Optional[Callable] = None,
        num_training_steps: int,
        batch_size: int,
        sub_trajectory_len: Optional[int] = None,
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
        arguments = arguments_of(locals())
        del arguments["loss_configuration"], arguments["sub_trajectory_len"]
        if sub_trajectory_len is None:
            sub_trajectory_len = as_configuration(loss_configuration).required_window_length
        init_from_configuration(
            self, loss_configuration, window_length=sub_trajectory_len, **arguments
        )
