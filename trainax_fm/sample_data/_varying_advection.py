from functools import partial
from typing import Optional

import jax
from jaxtyping import PRNGKeyArray

from .._argument_checks import check_positive_int
from ..data._conditioned import ConditionedTrajectories
from ._advection import _random_fourier_ics, _rollout
from ._checks import check_key, check_real


def advection_1d_varying_speed(
    num_points: int = 30,
    num_samples: int = 20,
    *,
    min_cfl: float = 0.25,
    max_cfl: float = 1.0,
    highest_init_mode: int = 5,
    temporal_horizon: int = 100,
    key: Optional[PRNGKeyArray] = None,
) -> ConditionedTrajectories:
    """Linear advection whose speed varies across trajectories: data for a
    parameter-conditioned emulator.

    As [`trainax_fm.sample_data.advection_1d_periodic`][], but trajectory `s` moves
    `cfl_s` grid cells per step, with `cfl_s` drawn uniformly from
    `[min_cfl, max_cfl]`; the speed is returned as the trajectory's constant scalar.
    An emulator must read it to predict the next state (the same initial condition
    moves differently), so train a [`trainax_fm.ConditionedNetwork`][] on it.

    **Arguments:**

    - `num_points`, `num_samples`, `highest_init_mode`, `temporal_horizon`: as in
        `advection_1d_periodic`.
    - `min_cfl`, `max_cfl`: the range of the per-trajectory Courant numbers.
    - `key`: a `jax.random` key (keyword only, required).

    **Returns:**

    - A [`trainax_fm.ConditionedTrajectories`][] with trajectories
      `(num_samples, temporal_horizon, 1, num_points)` and `constant_scalars`
      `(num_samples, 1)` holding each trajectory's `cfl`.
    """
    check_key(key, "advection_1d_varying_speed")
    num_points = check_positive_int(num_points, "num_points")
    num_samples = check_positive_int(num_samples, "num_samples")
    highest_init_mode = check_positive_int(highest_init_mode, "highest_init_mode")
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    check_real(min_cfl, "min_cfl")
    check_real(max_cfl, "max_cfl")
    if not min_cfl <= max_cfl:
        raise ValueError(
            f"`min_cfl` ({min_cfl}) must not exceed `max_cfl` ({max_cfl})."
        )
    if highest_init_mode > num_points // 2:
        raise ValueError(
            f"`highest_init_mode` must be at most `num_points // 2` = {num_points // 2}, "
            f"got {highest_init_mode}; lower it or raise `num_points`."
        )
    ic_key, speed_key = jax.random.split(key)
    initial_conditions = _random_fourier_ics(
        num_points, highest_init_mode, jax.random.split(ic_key, num_samples)
    )
    speeds = jax.random.uniform(speed_key, (num_samples,), minval=min_cfl, maxval=max_cfl)
    trajectories = _rollout_each(initial_conditions, speeds, temporal_horizon)
    return ConditionedTrajectories(trajectories[:, :, None, :], speeds[:, None])


@partial(jax.jit, static_argnums=(2,))
def _rollout_each(initial_conditions, speeds, temporal_horizon: int):
    """`(S, N)` initial conditions, `(S,)` speeds -> `(S, T, N)`."""
    one = lambda u, cfl: _rollout(u[None], cfl, temporal_horizon)[:, 0]  # noqa: E731
    return jax.vmap(one)(initial_conditions, speeds)
