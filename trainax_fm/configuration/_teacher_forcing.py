import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._rollout._training import apply_stepper, push_history, stack_history
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractHistoryConfiguration
from ._schedule import Schedule, evaluate_schedule, is_deterministic, parse_schedule


class TeacherForcing(AbstractHistoryConfiguration):
    r"""Scheduled sampling: an unrolled rollout whose inputs are sometimes the truth.

    Like [`trainax_fm.configuration.Supervised`][], but after each step the next input
    is, independently for every window, the true state `u_{t+1}` with probability `p`
    and the prediction otherwise. `p = 1` is one-step training on every pair of the
    window, `p = 0` is the full unrolled rollout. Lowering `p` over training moves from
    the easy one-step problem to the autoregressive one.

    **Arguments:**

    - `num_rollout_steps`, `time_level_loss`, `cut_bptt`, `cut_bptt_every`,
        `time_level_weights`, `num_input_steps`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][].
    - `teacher_forcing_probability`: `p` as a float, as a schedule string
        `"s1:p1,s2:p2,...,sk:pk"` (`p1` for steps `< s1`, `p_i` for
        `s_{i-1} <= step < s_i`, `pk` from `s_{k-1}` on), or a callable mapping the
        training step to `p`. Outside training (`step=None`) a string schedule uses its
        last value.

    A random `key` is needed unless `p` is always 0 or 1.
    """

    teacher_forcing_probability: Schedule = eqx.field(
        default=1.0, static=True, kw_only=True
    )

    def __post_init__(self):
        super().__post_init__()
        self.teacher_forcing_probability = parse_schedule(self.teacher_forcing_probability)

    @property
    def needs_key(self) -> bool:
        return not is_deterministic(self.teacher_forcing_probability)

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        key = inputs.key
        history, targets = self._history_and_targets(data)
        num_steps = self.num_rollout_steps
        probability = evaluate_schedule(
            self.teacher_forcing_probability, inputs.step, "teacher_forcing_probability"
        )
        if key is None:
            step_keys = jnp.zeros((num_steps,))  # placeholders; draws are not needed
        else:
            step_keys = jax.random.split(key, num_steps)
        batch_size = jtu.tree_leaves(data)[0].shape[0]

        def body(history, xs, t):
            target, weight, step_key = xs
            prediction = apply_stepper(stepper, stack_history(history), target)
            loss = self._step_loss(weight, prediction, target)
            prediction = self._cut(prediction, t)
            if key is None:
                use_truth = jnp.full((batch_size,), probability >= 0.5)
            else:
                use_truth = jax.random.uniform(step_key, (batch_size,)) < probability
            next_input = jtu.tree_map(
                lambda truth, pred: jnp.where(
                    use_truth.reshape((-1,) + (1,) * (pred.ndim - 1)), truth, pred
                ),
                target,
                prediction,
            )
            return push_history(history, next_input), loss

        xs = (targets, self.time_level_weights, step_keys)
        _, loss = self._rollout_loss(body, history, xs, num_steps)
        return loss
