import equinox as eqx

from .._argument_checks import check_bool
from .._rollout._training import apply_stepper, maybe_cut, state_at
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractRolloutConfiguration


class Residuum(AbstractRolloutConfiguration):
    r"""Residuum (physics-informed) training along the network rollout.

    Only the initial condition is used. The loss reduces the discrete residuum of each
    pair of consecutive predicted states:

    $$L = \sum_{t=0}^{R-1} w_t\, \ell\big(\mathcal{R}(\hat u_{t+1}, \hat u_t)\big)$$

    `residuum_fn(u_next, u_prev)` receives BATCHED states `(B, C, *spatial)` and is not
    vmapped (unlike steppers). On [`trainax_fm.ConditionedTrajectories`][] a residuum
    wrapped in a [`trainax_fm.ConditionedNetwork`][] is bound to the minibatch's
    constants, batched like the states (scalars `(B, P)`, fields `(B, F, *spatial)`):
    `ConditionedNetwork(f, combine=lambda u, s, c: (u, s, c))` calls
    `f((u_next, scalars, fields), u_prev)`.

    **Arguments:**

    - `num_rollout_steps`, `time_level_loss`, `cut_bptt`, `cut_bptt_every`,
        `time_level_weights`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][].
    - `cut_prev`: stop gradients through the previous state inside the residuum.
    - `cut_next`: stop gradients through the next state inside the residuum.
    """

    cut_prev: bool = eqx.field(default=False, static=True, kw_only=True)
    cut_next: bool = eqx.field(default=False, static=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        self.cut_prev = check_bool(self.cut_prev, "cut_prev")
        self.cut_next = check_bool(self.cut_next, "cut_next")

    @property
    def needs_residuum_fn(self) -> bool:
        return True

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        residuum_fn = inputs.residuum_fn

        def body(previous, weight, t):
            following = apply_stepper(stepper, previous, previous)
            residuum = residuum_fn(
                maybe_cut(following, self.cut_next), maybe_cut(previous, self.cut_prev)
            )
            loss = weight * self.time_level_loss(residuum)
            return self._cut(following, t), loss

        _, loss = self._rollout_loss(
            body, state_at(data, 0), self.time_level_weights, self.num_rollout_steps
        )
        return loss
