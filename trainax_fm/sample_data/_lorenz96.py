from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import check_key, check_real
from ._integrate import rk4_step, warm_up_and_record


class _Lorenz96RK4Stepper(eqx.Module):
    """One classic Runge-Kutta-4 step of the Lorenz-96 system along the last axis."""

    dt: float
    forcing: float

    def _rhs(self, u: Float[Array, "... n"]) -> Float[Array, "... n"]:
        # du_i/dt = (u_{i+1} - u_{i-2}) u_{i-1} - u_i + F, indices periodic.
        following = jnp.roll(u, -1, axis=-1)
        second_previous = jnp.roll(u, 2, axis=-1)
        previous = jnp.roll(u, 1, axis=-1)
        return (following - second_previous) * previous - u + self.forcing

    def __call__(self, u: Float[Array, "... n"]) -> Float[Array, "... n"]:
        if jnp.ndim(u) < 1 or jnp.shape(u)[-1] < 4:
            raise ValueError(
                "The Lorenz-96 stepper expects a state (1, N) (or (..., N)) with N >= 4 "
                f"points on the last axis, got shape {tuple(jnp.shape(u))}."
            )
        return rk4_step(self._rhs, u, self.dt)


def make_lorenz96_stepper_rk4(dt: float = 0.05, *, forcing: float = 8.0) -> eqx.Module:
    """Time stepper of the Lorenz-96 system with the classic fourth-order Runge-Kutta.

    The system is `u_i' = (u_{i+1} - u_{i-2}) u_{i-1} - u_i + F` on a periodic ring of
    `N` variables (any `N >= 4`); with `F = 8` it is chaotic (largest Lyapunov
    exponent about 1.7 per time unit for `N = 40`).

    **Arguments:**

    - `dt`: time step size (> 0); 0.05 is the common choice (RK4 is stable there).
    - `forcing`: the constant forcing `F`.

    **Returns:**

    - A callable `eqx.Module` mapping a state `(1, N)` (or any `(..., N)`) to the
        state `dt` later; `jax.jit`/`jax.vmap` friendly, so it can be a `ref_stepper`.
    """
    check_real(dt, "dt", positive=True)
    check_real(forcing, "forcing")
    return _Lorenz96RK4Stepper(dt=dt, forcing=forcing)


def lorenz96_rk4(
    num_samples: int = 20,
    *,
    num_points: int = 40,
    temporal_horizon: int = 1000,
    dt: float = 0.05,
    forcing: float = 8.0,
    num_warmup_steps: int = 1000,
    init_std: float = 1.0,
    key: Optional[PRNGKeyArray] = None,
) -> Float[Array, "num_samples temporal_horizon 1 num_points"]:
    """Trajectories of the Lorenz-96 system of any dimension, integrated with RK4.

    Initial conditions are `F + init_std * normal(key, (num_samples, 1, num_points))`
    (a perturbed fixed point). Each is advanced by `num_warmup_steps` steps onto the
    attractor; those transient states are discarded and the next `temporal_horizon`
    states are returned. The state is a periodic 1D field with one channel, so
    convolutional steppers and the spectral metrics apply.

    **Arguments:**

    - `num_samples`: number of independent trajectories.
    - `num_points`: the dimension `N` (>= 4).
    - `temporal_horizon`: number of stored states per trajectory.
    - `dt`: time step size (> 0).
    - `forcing`: the forcing `F` (8 is chaotic).
    - `num_warmup_steps`: number of discarded transient steps (>= 0).
    - `init_std`: standard deviation of the perturbation of the initial conditions.
    - `key`: a `jax.random` key (keyword only, required).

    **Returns:**

    - An array `(num_samples, temporal_horizon, 1, num_points)`; time index `t` holds
        the state after `num_warmup_steps + t` steps.
    """
    check_key(key, "lorenz96_rk4")
    num_samples = check_positive_int(num_samples, "num_samples")
    num_points = check_positive_int(num_points, "num_points", minimum=4)
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    num_warmup_steps = check_positive_int(num_warmup_steps, "num_warmup_steps", minimum=0)
    check_real(init_std, "init_std", non_negative=True)
    stepper = make_lorenz96_stepper_rk4(dt, forcing=forcing)
    initial = forcing + init_std * jax.random.normal(key, (num_samples, 1, num_points))
    trajectories = warm_up_and_record(stepper, initial, num_warmup_steps, temporal_horizon)
    return jnp.swapaxes(trajectories, 0, 1)
