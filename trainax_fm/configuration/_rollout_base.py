from typing import Optional

import equinox as eqx
from jaxtyping import Array, Float

from .._rollout import (
    Remat,
    Unroll,
    check_remat,
    check_unroll,
    required_length_error,
    resolve_unroll,
    time_major,
    time_slice,
    window_length,
)
from .._validation import check_bool, check_positive_int, check_weights
from ..loss import BaseLoss
from ._base import BaseConfiguration


class AbstractRolloutConfiguration(BaseConfiguration):
    """Shared fields of the configurations that roll the stepper out in time.

    Not public: each concrete configuration documents these fields itself.
    """

    num_rollout_steps: int = eqx.field(static=True)
    time_level_loss: BaseLoss
    cut_bptt: bool = eqx.field(static=True)
    cut_bptt_every: int = eqx.field(static=True)
    time_level_weights: Float[Array, " num_levels"]
    unroll: Unroll = eqx.field(static=True)
    remat: Remat = eqx.field(static=True)

    def _init_rollout(
        self,
        num_rollout_steps: int,
        time_level_loss: BaseLoss,
        cut_bptt: bool,
        cut_bptt_every: int,
        time_level_weights,
        unroll: Unroll,
        remat: Remat,
        *,
        num_levels: Optional[int] = None,
        levels_name: str = "rollout step (`num_rollout_steps`)",
    ):
        self.num_rollout_steps = check_positive_int(num_rollout_steps, "num_rollout_steps")
        if not isinstance(time_level_loss, BaseLoss):
            raise TypeError(
                "`time_level_loss` must be a trainax_fm.loss.BaseLoss (e.g. MSELoss()), "
                f"got {type(time_level_loss).__name__}."
            )
        self.time_level_loss = time_level_loss
        self.cut_bptt = check_bool(cut_bptt, "cut_bptt")
        self.cut_bptt_every = check_positive_int(cut_bptt_every, "cut_bptt_every")
        levels = self.num_rollout_steps if num_levels is None else num_levels
        self.time_level_weights = check_weights(
            time_level_weights, levels, "time_level_weights", levels_name
        )
        self.unroll = check_unroll(unroll)
        self.remat = check_remat(remat)

    def _unrolled(self, num_steps: Optional[int] = None) -> bool:
        # XLA schedules the recomputation of straight-line code early, which undoes
        # remat's memory saving; only a scanned rollout keeps it, so remat implies scan
        # unless the user insists on unrolling.
        if self.remat is not False and self.unroll == "auto":
            return False
        return resolve_unroll(
            self.unroll, self.num_rollout_steps if num_steps is None else num_steps
        )




class AbstractHistoryConfiguration(AbstractRolloutConfiguration):
    """A rollout configuration whose stepper may see `num_input_steps` past states.

    Windows hold `num_input_steps + num_rollout_steps` snapshots: the initial history,
    then one target per rollout step.
    """

    num_input_steps: int = eqx.field(static=True)

    @property
    def required_window_length(self) -> int:
        return self.num_input_steps + self.num_rollout_steps

    def _history_and_targets(self, data):
        """The initial history `(B, H, ...)` and time-major targets `(R, B, ...)`."""
        num_history, num_steps = self.num_input_steps, self.num_rollout_steps
        if window_length(data) < num_history + num_steps:
            raise required_length_error(
                type(self).__name__,
                num_history + num_steps,
                window_length(data),
                f"{num_history} initial state(s) + {num_steps} targets",
            )
        history = time_slice(data, 0, num_history)
        targets = time_major(time_slice(data, num_history, num_history + num_steps))
        return history, targets
