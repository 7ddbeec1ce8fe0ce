from typing import Any, Callable, Optional

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._rollout import (
    Remat,
    Unroll,
    check_remat,
    check_unroll,
    cut_after,
    loop,
    required_length_error,
    resolve_unroll,
    time_major,
    time_slice,
    tree_loss,
    window_length,
)
from .._validation import check_bool, check_positive_int, check_weights
from ..loss import BaseLoss, MSELoss
from ._checks import AbstractCheckedConfiguration


class AbstractRolloutConfiguration(AbstractCheckedConfiguration):
    """Shared fields, checks and loop helpers of the configurations that roll out.

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

    def _cut(self, state: PyTree, t) -> PyTree:
        """`state` after step `t`, gradient-cut where `cut_bptt`/`cut_bptt_every` say."""
        return cut_after(state, t, self.cut_bptt_every, self.cut_bptt)

    def _step_loss(self, weight, prediction: PyTree, target: PyTree) -> Float[Array, ""]:
        """The weighted `time_level_loss` of one time level (summed over PyTree leaves)."""
        return weight * tree_loss(self.time_level_loss, prediction, target)

    def _rollout_loss(
        self,
        body: Callable[[Any, Any, Any], tuple[Any, Float[Array, ""]]],
        carry: PyTree,
        xs: PyTree,
        num_steps: int,
        *,
        unroll: Optional[bool] = None,
        remat: Optional[Remat] = None,
        first_time: int = 0,
    ) -> tuple[PyTree, Float[Array, ""]]:
        """Loop `body(carry, x_t, t) -> (carry, loss_t)` and sum the per-step losses.

        Every rollout configuration reduces its time levels this way; the loop is
        unrolled and rematerialised as this configuration's `unroll`/`remat` say unless
        `unroll`/`remat` override them.

        **Returns:**

        - The final carry and the summed loss.
        """
        carry, losses = loop(
            body,
            carry,
            xs,
            num_steps,
            unroll=self._unrolled(num_steps) if unroll is None else unroll,
            remat=self.remat if remat is None else remat,
            first_time=first_time,
        )
        return carry, losses.sum()

    def _targets(self, data: PyTree, start: int, stop: int, what: str) -> PyTree:
        """Time-major targets `data[:, start:stop]`, shaped `(stop - start, B, ...)`.

        Windows shorter than `stop` raise an error saying they must hold `what`.
        """
        if window_length(data) < stop:
            raise required_length_error(type(self).__name__, stop, window_length(data), what)
        return time_major(time_slice(data, start, stop))


class AbstractReferenceRolloutConfiguration(AbstractRolloutConfiguration):
    """A rollout compared against the reference simulator, so it needs `ref_stepper`."""

    @property
    def needs_ref_stepper(self) -> bool:
        return True


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
        targets = self._targets(
            data,
            num_history,
            num_history + num_steps,
            f"{num_history} initial state(s) + {num_steps} targets",
        )
        return time_slice(data, 0, num_history), targets


class AbstractPlainHistoryConfiguration(AbstractHistoryConfiguration):
    """A history rollout set up by the rollout arguments and `num_input_steps` alone.

    [`trainax_fm.configuration.Supervised`][] and
    [`trainax_fm.configuration.TemporalConsistency`][] take exactly these arguments
    (documented on `Supervised`) and differ only in their loss, so they share this
    constructor.
    """

    def __init__(
        self,
        num_rollout_steps: int = 1,
        *,
        time_level_loss: BaseLoss = MSELoss(),
        cut_bptt: bool = False,
        cut_bptt_every: int = 1,
        time_level_weights: Optional[Float[Array, " num_rollout_steps"]] = None,
        num_input_steps: int = 1,
        unroll: Unroll = "auto",
        remat: Remat = False,
    ):
        self._init_rollout(
            num_rollout_steps,
            time_level_loss,
            cut_bptt,
            cut_bptt_every,
            time_level_weights,
            unroll,
            remat,
        )
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
