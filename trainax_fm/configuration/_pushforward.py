import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._rollout._training import apply_stepper, loop, state_at, time_slice, time_major
from .._argument_checks import check_bool, check_positive_int
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractRolloutConfiguration


class Pushforward(AbstractRolloutConfiguration):
    r"""The pushforward trick (Brandstetter et al. 2022): train from the stepper's own
    slightly wrong states without backpropagating through how they were made.

    The stepper first takes `K = num_pushforward_steps` steps from the initial
    condition *without gradient* (its parameters and the pushed states are cut), then
    `R = num_rollout_steps` supervised steps from the pushed state, compared with the
    data that follow:

    $$\tilde u = \mathrm{sg}\big(f_\theta^{K}(u_0)\big),\qquad
    L = \sum_{t=0}^{R-1} w_t\, \ell\big(f_\theta^{t+1}(\tilde u),\, u_{K+t+1}\big)$$

    The stepper thus learns to correct the input distribution shift that its own
    errors cause, at the cost of `K` forward passes and no extra memory. `K = 0` is
    [`trainax_fm.configuration.Supervised`][].

    With `random_pushforward=True` every window draws its own number of pushed steps
    `k` uniformly from `{0, ..., K}`: its chain starts from the truth `u_{K-k}` and is
    pushed `k` steps, so every window still ends at time `K` and all shapes are static
    (one compile); `k = 0` windows are plain one-step training. This needs a `key`.

    **Arguments:**

    - `num_rollout_steps`: `R`, the supervised steps after the push.
    - `num_pushforward_steps`: `K` (>= 0), the steps taken without gradient (the
        maximum when `random_pushforward`).
    - `random_pushforward`: draw `k` per window instead of always pushing `K` steps.
    - `time_level_loss`, `cut_bptt`, `cut_bptt_every`, `time_level_weights`, `unroll`,
        `remat`: as in [`trainax_fm.configuration.Supervised`][], for the `R`
        supervised steps.

    Windows hold `K + R + 1` snapshots.
    """

    num_pushforward_steps: int = eqx.field(default=1, static=True, kw_only=True)
    random_pushforward: bool = eqx.field(default=False, static=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        self.num_pushforward_steps = check_positive_int(
            self.num_pushforward_steps, "num_pushforward_steps", minimum=0
        )
        self.random_pushforward = check_bool(self.random_pushforward, "random_pushforward")

    @property
    def required_window_length(self) -> int:
        return self.num_pushforward_steps + self.num_rollout_steps + 1

    @property
    def needs_key(self) -> bool:
        return self.random_pushforward and self.num_pushforward_steps > 0

    def _push(self, stepper, data, key):
        """The state after the gradient-free push, `(B, C, *spatial)`."""
        num_push = self.num_pushforward_steps
        start = state_at(data, 0)
        if num_push == 0:
            return start
        # Frozen parameters: the push is primal-only work, nothing to differentiate.
        params, static = eqx.partition(stepper, eqx.is_inexact_array)
        frozen = eqx.combine(jax.lax.stop_gradient(params), static)
        truths = time_major(time_slice(data, 1, num_push + 1))
        if self.random_pushforward:
            batch_size = jtu.tree_leaves(data)[0].shape[0]
            pushed_steps = jax.random.randint(key, (batch_size,), 0, num_push + 1)
        else:
            pushed_steps = None

        def body(state, truth, t):
            prediction = apply_stepper(frozen, state, truth)
            if pushed_steps is None:
                return prediction, None
            # Window b starts from the truth u_{K-k_b}: before that its chain follows
            # the data, from there on the stepper.
            use_stepper = t >= num_push - pushed_steps
            following = jtu.tree_map(
                lambda p, u: jnp.where(
                    use_stepper.reshape((-1,) + (1,) * (p.ndim - 1)), p, u
                ),
                prediction,
                truth,
            )
            return following, None

        pushed, _ = loop(
            body, start, truths, num_push, unroll=self._unrolled(num_push)
        )
        return jax.lax.stop_gradient(pushed)

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        num_push, num_steps = self.num_pushforward_steps, self.num_rollout_steps
        targets = self._targets(
            data,
            num_push + 1,
            num_push + num_steps + 1,
            f"1 initial state + {num_push} pushed + {num_steps} targets",
        )
        pushed = self._push(stepper, data, inputs.key)

        def body(state, xs, t):
            target, weight = xs
            prediction = apply_stepper(stepper, state, target)
            loss = self._step_loss(weight, prediction, target)
            return self._cut(prediction, t), loss

        _, loss = self._rollout_loss(
            body, pushed, (targets, self.time_level_weights), num_steps
        )
        return loss
