"""What the built-in ODE generators share: one RK4 step, and a warmed-up rollout."""

from collections.abc import Callable

import equinox as eqx
import jax
from jaxtyping import Array, Float, PyTree


def rk4_step(
    rhs: Callable[[Float[Array, "..."]], Float[Array, "..."]],
    u: Float[Array, "..."],
    dt: float,
) -> Float[Array, "..."]:
    """One classic Runge-Kutta-4 step of the autonomous system `u' = rhs(u)`.

    **Arguments:**

    - `rhs`: the right-hand side, a function of the state.
    - `u`: the state (any shape `rhs` accepts, batched or not).
    - `dt`: the step size.

    **Returns:**

    - The state `dt` later, shaped like `u`.
    """
    k1 = rhs(u)
    k2 = rhs(u + 0.5 * dt * k1)
    k3 = rhs(u + 0.5 * dt * k2)
    k4 = rhs(u + dt * k3)
    return u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@eqx.filter_jit
def warm_up_and_record(
    stepper: Callable[[PyTree], PyTree],
    initial_conditions: Float[Array, "num_samples ..."],
    num_warmup_steps: int,
    temporal_horizon: int,
) -> Float[Array, "temporal_horizon num_samples ..."]:
    """Advance a batch of states `num_warmup_steps` steps onto the attractor (discarded),
    then record the next `temporal_horizon` states.

    Python numbers (the sizes, and the stepper's parameters when given as such) are
    static under `eqx.filter_jit`, so they enter the computation as constants.

    **Arguments:**

    - `stepper`: one step of the whole batch, `u -> stepper(u)`.
    - `initial_conditions`: the batch of initial states.
    - `num_warmup_steps`: the transient steps (>= 0).
    - `temporal_horizon`: the recorded states (>= 1).

    **Returns:**

    - The states, time first: index `t` holds the state after `num_warmup_steps + t`
        steps.
    """
    warmed, _ = jax.lax.scan(
        lambda u, _: (stepper(u), None), initial_conditions, None, length=num_warmup_steps
    )
    # The scan emits the state *before* each step, so index 0 is the warmed-up state.
    _, trajectories = jax.lax.scan(
        lambda u, _: (stepper(u), u), warmed, None, length=temporal_horizon
    )
    return trajectories
