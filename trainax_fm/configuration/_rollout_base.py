from typing import Any, Callable, ClassVar, Optional

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._argument_checks import check_bool, check_positive_int, check_weights
from .._rollout._training import (
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
from ..loss import BaseLoss, MSELoss
from ._checks import AbstractCheckedConfiguration


class AbstractRolloutConfiguration(AbstractCheckedConfiguration):
    """Shared fields, checks and loop helpers of the configurations that roll out.

    The rollout fields are declared here once: `num_rollout_steps` is the first
    positional argument of every rollout configuration, the others are keyword-only.
    Subclasses declare their own fields after them (a positional one, like
    `DivertedChain`'s `num_branch_steps`, follows `num_rollout_steps`) and check them in
    their own `__post_init__` after calling this one.

    Not public: each concrete configuration documents these fields itself.
    """

    num_rollout_steps: int = eqx.field(default=1, static=True)
    time_level_loss: BaseLoss = eqx.field(default=MSELoss(), kw_only=True)
    cut_bptt: bool = eqx.field(default=False, static=True, kw_only=True)
    cut_bptt_every: int = eqx.field(default=1, static=True, kw_only=True)
    time_level_weights: Optional[Float[Array, " num_levels"]] = eqx.field(
        default=None, kw_only=True
    )
    unroll: Unroll = eqx.field(default="auto", static=True, kw_only=True)
    remat: Remat = eqx.field(default=False, static=True, kw_only=True)

    # What one entry of `time_level_weights` weighs, for the error on a wrong length.
    _levels_name: ClassVar[str] = "rollout step (`num_rollout_steps`)"

    def _num_time_levels(self) -> int:
        """How many entries `time_level_weights` holds."""
        return self.num_rollout_steps

    def __post_init__(self):
        # The checks also normalise (numpy integers to `int` so static fields hash,
        # `None` weights to ones, sequences to arrays), which `__check_init__` cannot
        # do on the frozen instance; so they run here, once, in declaration order.
        self.num_rollout_steps = check_positive_int(self.num_rollout_steps, "num_rollout_steps")
        if not isinstance(self.time_level_loss, BaseLoss):
            raise TypeError(
                "`time_level_loss` must be a trainax_fm.loss.BaseLoss (e.g. MSELoss()), "
                f"got {type(self.time_level_loss).__name__}."
            )
        self.cut_bptt = check_bool(self.cut_bptt, "cut_bptt")
        self.cut_bptt_every = check_positive_int(self.cut_bptt_every, "cut_bptt_every")
        self.time_level_weights = check_weights(
            self.time_level_weights,
            self._num_time_levels(),
            "time_level_weights",
            self._levels_name,
        )
        self.unroll = check_unroll(self.unroll)
        self.remat = check_remat(self.remat)

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

    num_input_steps: int = eqx.field(default=1, static=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        self.num_input_steps = check_positive_int(self.num_input_steps, "num_input_steps")

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
