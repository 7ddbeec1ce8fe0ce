import abc
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int
from .._rollout._training import apply_stepper, push_history, stack_history
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractHistoryConfiguration
from ._schedule import Schedule, evaluate_schedule, is_deterministic, parse_schedule


class AbstractTeacherForcing(AbstractHistoryConfiguration):
    """An unrolled rollout whose next inputs are chosen between truth and prediction
    (scheduled sampling) and then, optionally, pulled towards the truth.

    Subclasses declare `teacher_forcing_probability` and say in `_forcing` how strongly
    the input after each step is pulled towards the truth (or not at all).
    """

    teacher_forcing_probability: eqx.AbstractVar[Schedule]

    @abc.abstractmethod
    def _forcing(
        self, step: Optional[Array]
    ) -> Optional[tuple[Float[Array, ""], int]]:
        """`(alpha, n)`: after steps `n, 2n, ...` the input becomes
        `alpha * truth + (1 - alpha) * input`; `None` for no forcing."""

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
        forcing = self._forcing(inputs.step)
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
            if forcing is not None:
                alpha, every = forcing
                # `t` is traced in a scanned rollout: a strength of 0, not a branch.
                strength = jnp.where((t + 1) % every == 0, alpha, 0.0)
                next_input = jtu.tree_map(
                    lambda truth, z: (strength * truth + (1 - strength) * z).astype(
                        z.dtype
                    ),
                    target,
                    next_input,
                )
            return push_history(history, next_input), loss

        xs = (targets, self.time_level_weights, step_keys)
        _, loss = self._rollout_loss(body, history, xs, num_steps)
        return loss


class TeacherForcing(AbstractTeacherForcing):
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

    A random `key` is needed unless `p` is always 0 or 1. For inputs pulled only
    part of the way towards the truth, see
    [`trainax_fm.configuration.GeneralizedTeacherForcing`][].
    """

    teacher_forcing_probability: Schedule = eqx.field(
        default=1.0, static=True, kw_only=True
    )

    def __post_init__(self):
        super().__post_init__()
        self.teacher_forcing_probability = parse_schedule(self.teacher_forcing_probability)

    def _forcing(self, step: Optional[Array]) -> None:
        del step
        return None


class GeneralizedTeacherForcing(AbstractTeacherForcing):
    r"""Generalized teacher forcing: the rollout's state pulled part of the way to the truth.

    An unrolled rollout (as [`trainax_fm.configuration.Supervised`][]) in which, after
    every `n`-th step, the next input `z` is replaced by a convex combination with the
    true state (Hess et al. 2023, "Generalized Teacher Forcing for Learning Chaotic
    Dynamics"):

    $$z \leftarrow \alpha\, u_{\mathrm{true}} + (1 - \alpha)\, z .$$

    The gradient flows through `(1 - alpha) * z`, which damps the product of step
    Jacobians that makes back-propagation through chaotic rollouts explode, while the
    stepper still sees (partly) its own states. `alpha = 1` with `n = 1` is one-step
    training, `alpha = 0` the free rollout, `alpha = 1` with `n > 1` sparse teacher
    forcing (the truth every `n` steps). Annealing `alpha` from near 1 towards 0 over
    training (a schedule) moves from the one-step problem to the autoregressive one
    continuously.

    Scheduled sampling composes with it: with `teacher_forcing_probability = p > 0`,
    each window first takes the truth with probability `p` (as in
    [`trainax_fm.configuration.TeacherForcing`][]), then the forcing is applied.

    **Arguments:**

    - `num_rollout_steps`, `time_level_loss`, `cut_bptt`, `cut_bptt_every`,
        `time_level_weights`, `num_input_steps`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][].
    - `forcing_alpha`: `alpha` in `[0, 1]`: a float, a `"step:alpha,..."` string (the
        grammar of `TeacherForcing`'s probability), or a callable of the training
        step such as an optax schedule (`optax.linear_schedule(0.9, 0.0, 5000)`),
        evaluated at the update's `step`. Outside training (`step=None`) a string
        schedule uses its last value and a callable is an error.
    - `forcing_every`: `n`: the forcing acts after steps `n, 2n, 3n, ...`
        (default 1: after every step).
    - `teacher_forcing_probability`: `p` as in `TeacherForcing` (default 0: no
        scheduled sampling). A random `key` is needed unless `p` is always 0 or 1.
    """

    forcing_alpha: Schedule = eqx.field(static=True, kw_only=True)
    forcing_every: int = eqx.field(default=1, static=True, kw_only=True)
    teacher_forcing_probability: Schedule = eqx.field(
        default=0.0, static=True, kw_only=True
    )

    def __post_init__(self):
        super().__post_init__()
        self.forcing_alpha = parse_schedule(self.forcing_alpha, "forcing_alpha")
        self.forcing_every = check_positive_int(self.forcing_every, "forcing_every")
        self.teacher_forcing_probability = parse_schedule(self.teacher_forcing_probability)

    def forcing_strength(self, step: Optional[Array]) -> Float[Array, ""]:
        """`alpha` at training step `step` (the last value for `step=None`)."""
        return evaluate_schedule(self.forcing_alpha, step, "forcing_alpha")

    def _forcing(self, step: Optional[Array]) -> tuple[Float[Array, ""], int]:
        return self.forcing_strength(step), self.forcing_every
