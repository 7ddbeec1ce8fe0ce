from typing import ClassVar

import equinox as eqx
import jax.tree_util as jtu

from .._argument_checks import check_positive_int
from .._rollout._training import apply_stepper, state_at
from ._base import Loss, Windows
from ._checks import CallInputs
from ._rollout_base import AbstractReferenceRolloutConfiguration


class MixChainPostPhysics(AbstractReferenceRolloutConfiguration):
    r"""Mix chain: `R` network steps followed by `P` reference steps, all against data.

    $$L = \sum_{t=0}^{R+P-1} w_t\, \ell\big(\tilde u_{t+1},\, u_{t+1}\big),\quad
    \tilde u_{t+1} = \begin{cases} f_\theta(\tilde u_t) & t < R \\
    \mathcal{P}(\tilde u_t) & t \ge R \end{cases}$$

    Gradients flow through the reference steps back into the network steps, so the
    network learns states the simulator continues well from.

    **Arguments:**

    - `num_rollout_steps`: network steps `R`.
    - `num_post_physics_steps`: reference steps `P`.
    - `time_level_weights`: `R + P` weights.
    - `time_level_loss`, `cut_bptt`, `cut_bptt_every`, `unroll`, `remat`: as in
        [`trainax_fm.configuration.Supervised`][] (cuts act on the network steps only).
    """

    num_post_physics_steps: int = eqx.field(default=1, static=True)

    _levels_name: ClassVar[str] = "time level (`num_rollout_steps + num_post_physics_steps`)"

    def _num_time_levels(self) -> int:
        return self.num_rollout_steps + self.num_post_physics_steps

    def __post_init__(self):
        # Checked first: the weights' length depends on it.
        self.num_post_physics_steps = check_positive_int(
            self.num_post_physics_steps, "num_post_physics_steps"
        )
        super().__post_init__()

    @property
    def required_window_length(self) -> int:
        return self.num_rollout_steps + self.num_post_physics_steps + 1

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        num_net, num_ref = self.num_rollout_steps, self.num_post_physics_steps
        targets = self._targets(
            data,
            1,
            num_net + num_ref + 1,
            f"initial condition + {num_net} network + {num_ref} reference targets",
        )

        def network_body(state, xs, t):
            target, weight = xs
            state = apply_stepper(stepper, state, target)
            return self._cut(state, t), self._step_loss(weight, state, target)

        def reference_body(state, xs, t):
            target, weight = xs
            state = apply_stepper(inputs.ref_stepper, state, target, "ref_stepper")
            return state, self._step_loss(weight, state, target)

        def split(part: slice):
            return jtu.tree_map(lambda a: a[part], targets), self.time_level_weights[part]

        state, network_loss = self._rollout_loss(
            network_body, state_at(data, 0), split(slice(None, num_net)), num_net
        )
        _, reference_loss = self._rollout_loss(
            reference_body,
            state,
            split(slice(num_net, None)),
            num_ref,
            first_time=num_net,
        )
        return network_loss + reference_loss

