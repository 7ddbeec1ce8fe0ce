import equinox as eqx
import jax.tree_util as jtu

from .._rollout._training import apply_stepper, push_history, stack_history, time_major, time_slice
from ._base import Loss, Windows
from ._checks import CallInputs
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

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        del inputs
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
            loss = self._step_loss(weight, increment, true_increment)
            return push_history(history, self._cut(prediction, t)), loss

        xs = (targets, true_increments, self.time_level_weights)
        _, loss = self._rollout_loss(body, history, xs, num_steps)
        return loss
