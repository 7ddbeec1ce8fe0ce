from typing import Optional

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._rollout import (
    Remat,
    Unroll,
    apply_stepper,
    cut_after,
    loop,
    push_history,
    stack_history,
    tree_loss,
)
from .._validation import check_positive_int
from ..loss import BaseLoss, MSELoss
from ._rollout_base import AbstractHistoryConfiguration


class Supervised(AbstractHistoryConfiguration):
    r"""Supervised unrolled training against the data trajectory.

    The stepper is rolled out `R = num_rollout_steps` times from the initial condition
    and step `t` is compared with the data at time `t + 1`:

    $$L = \sum_{t=0}^{R-1} w_t\, \ell\big(f_\theta^{t+1}(u_0),\, u_{t+1}\big)$$

    `R = 1` is one-step supervised training.

    **Arguments:**

    - `num_rollout_steps`: number of autoregressive steps `R`.
    - `time_level_loss`: loss `ℓ` between a predicted and a true state.
    - `cut_bptt`: stop gradients along the chain ("truncated backpropagation").
    - `cut_bptt_every`: with `cut_bptt`, cut after every `k`-th step.
    - `time_level_weights`: `R` weights `w_t` (default all ones).
    - `num_input_steps`: `H`, the number of past states the stepper sees, stacked on the
        channel axis (`H*C` input channels, `C` output channels). Windows then hold
        `H + R` snapshots and the first `H` are the initial history.
    - `unroll`: `True` for a Python loop at trace time, `False` for a `lax.scan`,
        `"auto"` to unroll short rollouts on CPU and scan otherwise.
    - `remat`: `False`, `True` (checkpoint every step) or `k` (every `k` steps): trade
        recomputation for activation memory on long rollouts. Remat saves memory only in
        a scanned rollout (XLA reorders straight-line recomputation), so with
        `unroll="auto"` it selects the scan.
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
        num_steps = self.num_rollout_steps

        def body(history, xs, t):
            target, weight = xs
            prediction = apply_stepper(stepper, stack_history(history), target)
            loss = weight * tree_loss(self.time_level_loss, prediction, target)
            prediction = cut_after(prediction, t, self.cut_bptt_every, self.cut_bptt)
            return push_history(history, prediction), loss

        _, losses = loop(
            body,
            history,
            (targets, self.time_level_weights),
            num_steps,
            unroll=self._unrolled(),
            remat=self.remat,
        )
        return losses.sum()
