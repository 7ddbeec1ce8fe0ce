import equinox as eqx

from .._rollout._training import apply_stepper, push_history, stack_history
from ._base import Loss, Windows
from ._checks import CallInputs
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
        `"auto"` to unroll rollouts of up to 32 steps and scan longer ones.
    - `remat`: `False`, `True` (checkpoint every step) or `k` (every `k` steps): trade
        recomputation for activation memory on long rollouts. Remat saves memory only in
        a scanned rollout (XLA reorders straight-line recomputation), so with
        `unroll="auto"` it selects the scan.
    """

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        del inputs
        history, targets = self._history_and_targets(data)

        def body(history, xs, t):
            target, weight = xs
            prediction = apply_stepper(stepper, stack_history(history), target)
            loss = self._step_loss(weight, prediction, target)
            return push_history(history, self._cut(prediction, t)), loss

        _, loss = self._rollout_loss(
            body, history, (targets, self.time_level_weights), self.num_rollout_steps
        )
        return loss
