from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import check_key, check_real
from ._integrate import rk4_step, warm_up_and_record


class _LorenzRK4Stepper(eqx.Module):
    """One classic Runge-Kutta-4 step of the Lorenz-63 system."""

    dt: float
    sigma: float
    rho: float
    beta: float

    def _rhs(self, u: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
        x, y, z = u[..., 0], u[..., 1], u[..., 2]
        return jnp.stack(
            [
                self.sigma * (y - x),
                x * (self.rho - z) - y,
                x * y - self.beta * z,
            ],
            axis=-1,
        )

    def __call__(self, u: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
        if jnp.ndim(u) < 1 or jnp.shape(u)[-1] != 3:
            raise ValueError(
                f"The Lorenz stepper expects a state of shape (3,) (or (..., 3)), got "
                f"shape {tuple(jnp.shape(u))}."
            )
        return rk4_step(self._rhs, u, self.dt)


def make_lorenz_stepper_rk4(
    dt: float = 0.01,
    *,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
) -> eqx.Module:
    """Time stepper of the Lorenz-63 system with the classic fourth-order Runge-Kutta.

    The system is `x' = sigma (y - x)`, `y' = x (rho - z) - y`, `z' = x y - beta z`.

    **Arguments:**

    - `dt`: time step size (> 0).
    - `sigma`, `rho`, `beta`: the system parameters (the chaotic defaults).

    **Returns:**

    - A callable `eqx.Module` mapping a state of shape `(3,)` to the state `dt` later.
        It also accepts a batch `(..., 3)` and is `jax.jit`/`jax.vmap` friendly, so it
        can serve as `ref_stepper`.
    """
    check_real(dt, "dt", positive=True)
    check_real(sigma, "sigma")
    check_real(rho, "rho")
    check_real(beta, "beta")
    return _LorenzRK4Stepper(dt=dt, sigma=sigma, rho=rho, beta=beta)


def lorenz_rk4(
    num_samples: int = 20,
    *,
    temporal_horizon: int = 1000,
    dt: float = 0.01,
    num_warmup_steps: int = 500,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    init_std: float = 1.0,
    key: Optional[PRNGKeyArray] = None,
) -> Float[Array, "num_samples temporal_horizon 3"]:
    """Trajectories of the Lorenz-63 system integrated with RK4.

    Initial conditions are `init_std * normal(key, (num_samples, 3))`. Each is
    advanced by `num_warmup_steps` steps to approach the attractor; those transient
    states are discarded and the next `temporal_horizon` states are returned.

    **Arguments:**

    - `num_samples`: number of independent trajectories.
    - `temporal_horizon`: number of stored states per trajectory.
    - `dt`: time step size (> 0).
    - `num_warmup_steps`: number of discarded transient steps (>= 0). With 0 the
        first stored state is the random initial condition itself.
    - `sigma`, `rho`, `beta`: the system parameters.
    - `init_std`: standard deviation of the random initial conditions (>= 0).
    - `key`: a `jax.random` key (keyword only, required).

    **Returns:**

    - An array of shape `(num_samples, temporal_horizon, 3)`; time index `t` holds the
        state after `num_warmup_steps + t` steps from the random initial condition.

    **Raises:**

    - `ValueError` for non-positive sizes, a negative `num_warmup_steps`, a
        non-positive `dt` or a negative `init_std`; `TypeError` for a missing key.
    """
    check_key(key, "lorenz_rk4")
    num_samples = check_positive_int(num_samples, "num_samples")
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    num_warmup_steps = check_positive_int(
        num_warmup_steps, "num_warmup_steps", minimum=0
    )
    check_real(init_std, "init_std", non_negative=True)
    stepper = make_lorenz_stepper_rk4(dt, sigma=sigma, rho=rho, beta=beta)

    initial_conditions = jax.random.normal(key, (num_samples, 3)) * init_std

    trajectories = warm_up_and_record(
        stepper, initial_conditions, num_warmup_steps, temporal_horizon
    )
    return jnp.swapaxes(trajectories, 0, 1)
