import equinox as eqx

from .._argument_checks import check_bool
from .._rollout._training import apply_stepper, maybe_cut, state_at
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractReferenceRolloutConfiguration


class DivertedChainBranchOne(AbstractReferenceRolloutConfiguration):
    r"""Diverted-chain training with branches of one step.

    Only the initial condition of each window is used. At every step of the network
    rollout, the reference stepper advances the *current prediction* by one step and
    that is the target:

    $$L = \sum_{t=0}^{R-1} w_t\, \ell\big(f_\theta(\hat u_t),\, \mathcal{P}(\hat u_t)\big),
    \quad \hat u_0 = u_0,\ \hat u_{t+1} = f_\theta(\hat u_t)$$

    **Arguments:**

    - `num_rollout_steps`: number of steps `R` of the main chain.
    - `time_level_loss`, `cut_bptt`, `cut_bptt_every`, `time_level_weights`, `unroll`,
        `remat`: as in [`trainax_fm.configuration.Supervised`][].
    - `cut_div_chain`: stop gradients through the reference branch (the target).
    """

    cut_div_chain: bool = eqx.field(default=False, static=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        self.cut_div_chain = check_bool(self.cut_div_chain, "cut_div_chain")

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        ref_stepper = inputs.ref_stepper

        def body(prediction, weight, t):
            target = apply_stepper(ref_stepper, prediction, prediction, "ref_stepper")
            target = maybe_cut(target, self.cut_div_chain)
            prediction = apply_stepper(stepper, prediction, prediction)
            loss = self._step_loss(weight, prediction, target)
            return self._cut(prediction, t), loss

        _, loss = self._rollout_loss(
            body, state_at(data, 0), self.time_level_weights, self.num_rollout_steps
        )
        return loss
