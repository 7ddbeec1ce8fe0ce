from typing import Optional, Union

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import CallInputs, Loss, Windows, call_configuration
from ._wrapper import AbstractWrapperConfiguration
from ._rollout_base import AbstractRolloutConfiguration
from ._schedule import evaluate_schedule, parse_schedule


class RolloutCurriculum(AbstractWrapperConfiguration):
    r"""A rollout length that grows over training, compiled once at its maximum.

    The wrapped rollout configuration is built with the final (largest) length
    `R_max`; at training step `s` only its first `R(s)` time levels count, the others
    get weight zero:

    $$L_s = \sum_{t=0}^{R_\max-1} \mathbb{1}[t < R(s)]\, w_t\, \ell_t$$

    `R(s)` uses the grammar of the teacher-forcing schedule: `"s1:R1,s2:R2,...,sk:Rk"`
    means `R1` for steps `< s1`, `R_i` for `s_{i-1} <= step < s_i` and `Rk` from
    `s_{k-1}` on; outside training (`step=None`) the last length counts.

    **Masked weights or one program per length.** The whole run is one compiled
    update with static shapes, so nothing recompiles when the length changes, the
    schedule may change it every few updates, and every trainer and engine option
    works unchanged. The price is that the masked levels are still computed: for a
    few long phases of heavy steps, a list of [`trainax_fm.Stage`][]s with one
    `Supervised(R_i)` each (one compile per length, every stage at its own cost) is
    faster. The docs page "Which methodology when" measures both (1 -> 2 -> 4 -> 8
    over 2000 updates of a small ConvNet on the CPU: 79 s masked, 73 s staged
    including four compiles).

    **Arguments:**

    - `configuration`: a rollout configuration (`Supervised`, `TeacherForcing`,
        `Pushforward`, ...) with `num_rollout_steps = R_max` and one time level per
        rollout step.
    - `num_rollout_steps`: the schedule of `R(s)`: a `"step:length,..."` string, or an
        integer (constant). Every length lies in `1 ... R_max`.
    """

    configuration: AbstractRolloutConfiguration
    num_rollout_steps: Union[float, tuple] = eqx.field(static=True)

    def __init__(
        self,
        configuration: AbstractRolloutConfiguration,
        num_rollout_steps: Union[str, int],
    ):
        if not isinstance(configuration, AbstractRolloutConfiguration):
            raise TypeError(
                "`configuration` must be a rollout configuration with "
                "`num_rollout_steps` (e.g. Supervised(8)), got "
                f"{type(configuration).__name__}."
            )
        maximum = configuration.num_rollout_steps
        if configuration.time_level_weights.shape[0] != maximum:
            raise ValueError(
                f"RolloutCurriculum masks one time level per rollout step, but "
                f"{type(configuration).__name__} has "
                f"{configuration.time_level_weights.shape[0]} time levels for "
                f"{maximum} rollout steps; wrap a configuration such as Supervised, "
                "TeacherForcing, Pushforward or Residuum."
            )
        if callable(num_rollout_steps):
            raise TypeError(
                "`num_rollout_steps` must be a 'step:length,...' string or an integer, "
                "got a callable."
            )

        def check_lengths(values, name):
            for value in values:
                if value != int(value) or not 1 <= value <= maximum:
                    raise ValueError(
                        f"`{name}` lengths must be integers in 1 ... {maximum} (the "
                        f"wrapped configuration's num_rollout_steps), got {value}."
                    )

        self.configuration = configuration
        self.num_rollout_steps = parse_schedule(
            num_rollout_steps, "num_rollout_steps", check_lengths
        )

    def length(self, step: Optional[int]) -> Float[Array, ""]:
        """The rollout length `R(step)` (the last one for `step=None`)."""
        return evaluate_schedule(self.num_rollout_steps, step, "num_rollout_steps")

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        weights = self.configuration.time_level_weights
        active = jnp.arange(weights.shape[0]) < self.length(inputs.step)
        masked = eqx.tree_at(
            lambda c: c.time_level_weights,
            self.configuration,
            jnp.where(active, weights, jnp.zeros_like(weights)),
        )
        return call_configuration(masked, stepper, data, inputs)
