import numbers
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int, check_weights
from .._rollout._training import (
    Unroll,
    apply_stepper,
    check_unroll,
    loop,
    push_history,
    required_length_error,
    resolve_unroll,
    stack_history,
    time_major,
    time_slice,
    window_length,
)
from .._stepper._protocol import needs_key
from ..metrics._ensemble import _mean_pairwise_abs_difference
from ._base import Loss, Windows
from ._checks import AbstractCheckedConfiguration, CallInputs


def check_crps_alpha(value) -> float:
    """`value` as a float in `(0, 1]`, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`crps_alpha` must be a float in (0, 1], got {value!r}.")
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"`crps_alpha` must lie in (0, 1], got {value}: 1 is the fair CRPS, values "
            "slightly below 1 (e.g. 0.95) the almost-fair CRPS of AIFS-CRPS."
        )
    return float(value)


def almost_fair_crps(
    members: Float[Array, " members *entries"],
    observation: Float[Array, " *entries"],
    crps_alpha: float = 1.0,
) -> Float[Array, ""]:
    r"""The almost-fair CRPS of `M` members against an observation, averaged over entries.

    Per entry, with `ε = (1 - α) / M`,

    $$\mathrm{afCRPS}_\alpha = \frac{1}{M}\sum_i |x_i - y|
      - \frac{1 - \varepsilon}{2M(M-1)}\sum_{i \ne j} |x_i - x_j|
      = \alpha\,\mathrm{fCRPS} + (1 - \alpha)\,\mathrm{CRPS},$$

    `α = 1` the fair CRPS, `α → 0` the CRPS of the members' empirical distribution.
    """
    num_members = members.shape[0]
    skill = jnp.mean(jnp.abs(members - observation[None]), axis=0)
    # sum_{i != j} |x_i - x_j| / (M (M - 1)), by the sorted-sample identity.
    fair_spread = _mean_pairwise_abs_difference(members, fair=True)
    epsilon = (1.0 - crps_alpha) / num_members
    return jnp.mean(skill - 0.5 * (1.0 - epsilon) * fair_spread)


class CRPSEnsemble(AbstractCheckedConfiguration):
    r"""CRPS-trained ensembles (FGN, AIFS-CRPS, CRPS-LAM): train a stochastic stepper so
    that its samples are distributed like the next states of the data.

    For every window, `M = num_members` members are rolled out `R = num_rollout_steps`
    steps from the initial condition in one vmapped pass (member `m` draws its noise
    from `jax.random.split(key, M)[m]`), with gradient through every step. Each step is
    scored with the almost-fair CRPS (Lang et al. 2024) against the data, per location
    (every channel and grid point a scalar forecast), averaged over locations and the
    batch:

    $$L = \sum_{t=1}^{R} w_t\, \overline{\mathrm{afCRPS}_\alpha}
      \big(\{f_\theta^{t}(u_0;\xi^{m})\}_{m \le M},\ u_t\big),\qquad
      \mathrm{afCRPS}_\alpha = \frac{1}{M}\sum_i |x_i - y|
      - \frac{1 - \varepsilon}{2M(M-1)}\sum_{i \ne j}|x_i - x_j|,\
      \varepsilon = \frac{1-\alpha}{M}.$$

    `crps_alpha = 1` (the default) is the fair CRPS, an unbiased estimate of the CRPS
    of the stepper's distribution for any `M`, so its minimiser is the true conditional
    distribution and not an ensemble that is too wide to make up for being small;
    `crps_alpha < 1` is `α fCRPS + (1 - α) CRPS`, which AIFS-CRPS uses (α = 0.95) to keep
    members from collapsing onto each other when the fair term is degenerate.

    The `stepper` must be stochastic (`needs_key = True`), e.g.
    [`trainax_fm.NoiseInputStepper`][]; a sample costs one network evaluation per
    member per step. Each member step calls it on every window with its own key.
    A `key` is required.

    **Arguments:**

    - `num_rollout_steps`: `R`, the autoregressive steps of every member.
    - `num_members`: `M` (>= 2), members per window.
    - `crps_alpha`: `α` in `(0, 1]`; 1 is the fair CRPS, below 1 the almost-fair CRPS.
    - `num_input_steps`: `H`, past states the stepper sees (stacked on the channel
        axis); windows hold `H + R` snapshots.
    - `time_level_weights`: `R` weights `w_t` (default all ones).
    - `unroll`: `True` for a Python loop at trace time, `False` for a `lax.scan`,
        `"auto"` to unroll rollouts of up to 32 steps.
    """

    num_rollout_steps: int = eqx.field(static=True)
    num_members: int = eqx.field(static=True)
    crps_alpha: float = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    time_level_weights: Float[Array, " num_rollout_steps"]
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        num_rollout_steps: int = 1,
        *,
        num_members: int = 4,
        crps_alpha: float = 1.0,
        num_input_steps: int = 1,
        time_level_weights: Optional[Float[Array, " num_rollout_steps"]] = None,
        unroll: Unroll = "auto",
    ):
        self.num_rollout_steps = check_positive_int(num_rollout_steps, "num_rollout_steps")
        self.num_members = check_positive_int(num_members, "num_members", minimum=2)
        self.crps_alpha = check_crps_alpha(crps_alpha)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.time_level_weights = check_weights(
            time_level_weights,
            self.num_rollout_steps,
            "time_level_weights",
            "rollout step (`num_rollout_steps`)",
        )
        self.unroll = check_unroll(unroll)

    @property
    def required_window_length(self) -> int:
        return self.num_input_steps + self.num_rollout_steps

    @property
    def needs_key(self) -> bool:
        return True

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        if not needs_key(stepper):
            raise TypeError(
                "CRPSEnsemble trains a stochastic stepper, one that declares "
                f"`needs_key = True`, but got a {type(stepper).__name__} that does not: "
                "its members would all coincide. Wrap the network, e.g. "
                "`tx.NoiseInputStepper(network, num_noise_channels=k)`."
            )
        num_history, num_steps = self.num_input_steps, self.num_rollout_steps
        if window_length(data) < num_history + num_steps:
            raise required_length_error(
                type(self).__name__,
                num_history + num_steps,
                window_length(data),
                f"{num_history} initial state(s) + {num_steps} targets",
            )
        history = time_slice(data, 0, num_history)
        targets = time_major(time_slice(data, num_history, num_history + num_steps))
        batch_size = jtu.tree_leaves(data)[0].shape[0]

        def member(member_key):
            def body(history, xs, t):
                target, step_key = xs
                prediction = apply_stepper(
                    stepper,
                    stack_history(history),
                    target,
                    keys=jax.random.split(step_key, batch_size),
                )
                return push_history(history, prediction), prediction

            step_keys = jax.random.split(member_key, num_steps)
            _, predictions = loop(
                body,
                history,
                (targets, step_keys),
                num_steps,
                unroll=resolve_unroll(self.unroll, num_steps),
            )
            return predictions

        # One vmapped pass over the members: (M, R, B, ...) per leaf.
        ensembles = jax.vmap(member)(jax.random.split(inputs.key, self.num_members))
        losses = [
            jax.vmap(lambda m, y: almost_fair_crps(m, y, self.crps_alpha), in_axes=(1, 0))(
                members, observation
            )
            for members, observation in zip(jtu.tree_leaves(ensembles), jtu.tree_leaves(targets))
        ]
        return jnp.sum(self.time_level_weights * sum(losses))
