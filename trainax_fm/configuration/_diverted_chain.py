from typing import Optional

import equinox as eqx
from jaxtyping import Array, Float

from .._argument_checks import check_bool, check_positive_int, check_weights
from .._rollout._training import apply_stepper, maybe_cut, state_at
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractReferenceRolloutConfiguration


class DivertedChain(AbstractReferenceRolloutConfiguration):
    r"""Diverted-chain training with branches of `B` steps.

    Only the initial condition is used. The network rolls out a main chain; from each of
    its first `R - B + 1` states (`t = 0, ..., R - B`) a branch of `B` network steps is
    compared with `B` reference steps started from the same state:

    $$L = \sum_{t=0}^{R-B} w_t \sum_{b=0}^{B-1} v_b\,
    \ell\big(f_\theta^{b+1}(\hat u_t),\, \mathcal{P}^{b+1}(\hat u_t)\big)$$

    `B = 1` is [`trainax_fm.configuration.DivertedChainBranchOne`][]; `B = R` is
    supervised unrolled training against the reference simulator.

    **Arguments:**

    - `num_rollout_steps`: `R`.
    - `num_branch_steps`: `B <= R`.
    - `time_level_loss`, `cut_bptt`, `cut_bptt_every`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][]; within a branch the cut index is
        `t + b`.
    - `cut_div_chain`: stop gradients through the reference branches.
    - `time_level_weights`: weights `w_t`, one per branch (length `R`, entries beyond
        `R - B` are unused, as in trainax).
    - `branch_level_weights`: weights `v_b`, length `B`.
    """

    num_branch_steps: int = eqx.field(default=1, static=True)
    cut_div_chain: bool = eqx.field(default=False, static=True, kw_only=True)
    branch_level_weights: Optional[Float[Array, " num_branch_steps"]] = eqx.field(
        default=None, kw_only=True
    )

    def __post_init__(self):
        super().__post_init__()
        num_branch_steps = check_positive_int(self.num_branch_steps, "num_branch_steps")
        if num_branch_steps > self.num_rollout_steps:
            raise ValueError(
                f"`num_branch_steps` ({num_branch_steps}) must be <= `num_rollout_steps` "
                f"({self.num_rollout_steps}): a branch cannot be longer than the chain."
            )
        self.num_branch_steps = num_branch_steps
        self.cut_div_chain = check_bool(self.cut_div_chain, "cut_div_chain")
        self.branch_level_weights = check_weights(
            self.branch_level_weights,
            num_branch_steps,
            "branch_level_weights",
            "branch step (`num_branch_steps`)",
        )

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        ref_stepper = inputs.ref_stepper
        num_branches = self.num_rollout_steps - self.num_branch_steps + 1
        unroll = self._unrolled(num_branches * self.num_branch_steps)

        def branch(main_state, t):
            def branch_body(carry, weight, b):
                prediction, reference = carry
                prediction = apply_stepper(stepper, prediction, main_state)
                reference = apply_stepper(ref_stepper, reference, main_state, "ref_stepper")
                loss = self._step_loss(weight, prediction, reference)
                return (self._cut(prediction, t + b), reference), loss

            start = (main_state, maybe_cut(main_state, self.cut_div_chain))
            _, loss = self._rollout_loss(
                branch_body,
                start,
                self.branch_level_weights,
                self.num_branch_steps,
                unroll=unroll,
            )
            return loss

        def main_body(main_state, weight, t):
            loss = weight * branch(main_state, t)
            main_state = apply_stepper(stepper, main_state, main_state)
            return self._cut(main_state, t), loss

        # remat acts inside the branches, where the activations are.
        _, loss = self._rollout_loss(
            main_body,
            state_at(data, 0),
            self.time_level_weights[:num_branches],
            num_branches,
            unroll=unroll,
            remat=False,
        )
        return loss
