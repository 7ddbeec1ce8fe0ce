from typing import Optional

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._rollout import (
    Remat,
    Unroll,
    apply_stepper,
    cut_after,
    loop,
    push_history,
    stack_history,
    time_major,
    time_slice,
    tree_loss,
)
from .._validation import check_positive_int
from ..loss import BaseLoss, MSELoss
from ._rollout_base import AbstractHistoryConfiguration


class TemporalConsistency(AbstractHistoryConfiguration):
    r"""Penalise the mismatch of temporal differences along an unrolled rollout.

    $$L = \sum_{t=0}^{R-1} w_t\, \ell\big(\hat u_{t+1} - \hat u_t,\;
    u_{t+1} - u_t\big), \quad \hat u_0 = u_0$$

    It measures whether the emulator moves the state by the right increment, regardless
    of an accumulated offset, and is meant to be combined with a state loss through
    [`trainax_fm.configuration.Composite`][], e.g.
    `Composite([Supervised(5), TemporalConsistency(5)], [1.0, 0.1])`.

    **Arguments:**

    - `num_rollout_steps`, `time_level_loss`, `cut_bptt`, `cut_bptt_every`,
        `time_level_weights`, `num_input_steps`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][].
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

    def __call__(
        self,
        stepper: eqx.Module,
        data: PyTree[Float[Array, "batch window ..."]],
        *,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> Float[Array, ""]:
        del ref_stepper, residuum_fn, key, step
        history, targets = self._history_and_targets(data)
        num_history, num_steps = self.num_input_steps, self.num_rollout_steps
        # Target increments u_{t+1} - u_t for t = H-1, ..., H+R-2.
        truth = time_slice(data, num_history - 1, num_history + num_steps)
        true_increments = time_major(
            jtu.tree_map(lambda a: a[:, 1:] - a[:, :-1], truth)
        )

        def body(history, xs, t):
            target, true_increment, weight = xs
            previous = jtu.tree_map(lambda h: h[:, -1], history)
            prediction = apply_stepper(stepper, stack_history(history), target)
            increment = jtu.tree_map(lambda a, b: a - b, prediction, previous)
            loss = weight * tree_loss(self.time_level_loss, increment, true_increment)
            prediction = cut_after(prediction, t, self.cut_bptt_every, self.cut_bptt)
            return push_history(history, prediction), loss

        _, losses = loop(
            body,
            history,
            (targets, true_increments, self.time_level_weights),
            num_steps,
            unroll=self._unrolled(),
            remat=self.remat,
        )
        return losses.sum()
