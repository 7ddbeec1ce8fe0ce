import numbers
from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import check_key, check_real


def _random_fourier_ic(
    num_points: int, highest_mode: int, key: PRNGKeyArray
) -> Float[Array, " num_points"]:
    """One random truncated sine/cosine series on the periodic grid, zero mean.

    The key is split into a sine, a cosine and an (unused) offset key so that the
    draws coincide with those of trainax 0.0.2.
    """
    sine_key, cosine_key, _offset_key = jax.random.split(key, 3)
    sine_amplitudes = jax.random.uniform(
        sine_key, (highest_mode,), minval=-1.0, maxval=1.0
    )
    cosine_amplitudes = jax.random.uniform(
        cosine_key, (highest_mode,), minval=-1.0, maxval=1.0
    )
    grid = jnp.linspace(0.0, 2 * jnp.pi, num_points + 1)[:-1]
    # Accumulate mode by mode (same summation order as trainax, so the numbers agree
    # to the last bits rather than only to a tolerance).
    u = 0.0
    for mode in range(1, highest_mode + 1):
        u = u + (
            sine_amplitudes[mode - 1] * jnp.sin(mode * grid)
            + cosine_amplitudes[mode - 1] * jnp.cos(mode * grid)
        )
    return u


def _random_fourier_ics(
    num_points: int, highest_mode: int, keys: PRNGKeyArray
) -> Float[Array, "num_samples num_points"]:
    """One `_random_fourier_ic` per key of the stack `keys`."""
    return jax.vmap(lambda k: _random_fourier_ic(num_points, highest_mode, k))(keys)


def _phase_shift_factor(num_points: int, cfl) -> Array:
    """Fourier multiplier that translates a periodic signal by `cfl` grid cells."""
    angular_wavenumbers = jnp.fft.rfftfreq(num_points) * num_points * 2 * jnp.pi
    return jnp.exp(-1j * angular_wavenumbers * (cfl / num_points))


def advection_1d_periodic(
    num_points: int = 30,
    num_samples: int = 20,
    *,
    cfl: float = 0.75,
    highest_init_mode: int = 5,
    temporal_horizon: int = 100,
    key: Optional[PRNGKeyArray] = None,
) -> Float[Array, "num_samples temporal_horizon 1 num_points"]:
    """Trajectories of linear advection on the periodic domain `[0, 2pi)`.

    Each initial condition is a random band-limited series
    `sum_{k=1}^{M} a_k sin(k x) + b_k cos(k x)` with amplitudes `a_k, b_k` drawn
    uniformly from `[-1, 1]` and `M = highest_init_mode`, sampled on the grid
    `x_j = 2pi j / num_points`. One time step translates the state by `cfl` grid cells
    to the right, computed by a phase shift of the Fourier coefficients, so the data
    carries no discretisation error as long as `M < num_points / 2`. (At
    `M = num_points / 2` the Nyquist mode is only advected exactly for integer `cfl`.)

    The random draws match those of `trainax.sample_data.advection_1d_periodic` for
    the same `key`.

    **Arguments:**

    - `num_points`: number of grid points `N`.
    - `num_samples`: number of independent trajectories.
    - `cfl`: shift per time step in grid cells (the Courant number); may be
        fractional or negative.
    - `highest_init_mode`: highest wavenumber `M` in the initial condition; must not
        exceed `num_points // 2`.
    - `temporal_horizon`: number of stored snapshots per trajectory, the initial
        condition included.
    - `key`: a `jax.random` key (keyword only, required).

    **Returns:**

    - An array of shape `(num_samples, temporal_horizon, 1, num_points)` whose time
        index `t` holds the state after `t` steps (index 0 is the initial condition);
        the singleton axis is the channel.

    **Raises:**

    - `ValueError` for non-positive sizes or a `highest_init_mode` above
        `num_points // 2`; `TypeError` for a missing key or wrongly typed argument.
    """
    check_key(key, "advection_1d_periodic")
    num_points = check_positive_int(num_points, "num_points")
    num_samples = check_positive_int(num_samples, "num_samples")
    highest_init_mode = check_positive_int(highest_init_mode, "highest_init_mode")
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    check_real(cfl, "cfl")
    if highest_init_mode > num_points // 2:
        raise ValueError(
            f"`highest_init_mode` must be at most `num_points // 2` = "
            f"{num_points // 2} so that the initial condition is resolved on the grid "
            f"(no aliasing), got {highest_init_mode}. Lower `highest_init_mode` or "
            f"raise `num_points` to at least {2 * highest_init_mode}."
        )

    sample_keys = jax.random.split(key, num_samples)
    initial_conditions = _random_fourier_ics(num_points, highest_init_mode, sample_keys)
    if isinstance(cfl, numbers.Real):
        # A Python number is baked into the compiled rollout (computed in double
        # precision on the host, as trainax does), one compilation per value.
        trajectories = _rollout_static_cfl(initial_conditions, cfl, temporal_horizon)
    else:
        trajectories = _rollout_dynamic_cfl(initial_conditions, cfl, temporal_horizon)
    # (T, S, N) -> (S, T, 1, N)
    return jnp.swapaxes(trajectories, 0, 1)[:, :, None, :]


def _rollout(
    initial_conditions: Float[Array, "num_samples num_points"],
    cfl,
    temporal_horizon: int,
) -> Float[Array, "temporal_horizon num_samples num_points"]:
    num_points = initial_conditions.shape[-1]

    def advance(u, _):
        phase = _phase_shift_factor(num_points, cfl)
        # `phase` is one row of Fourier factors: broadcast it over the samples.
        spectrum = jnp.fft.rfft(u, axis=-1) * phase[None, :]
        u_next = jnp.fft.irfft(spectrum, n=num_points, axis=-1)
        return u_next, u

    # The scan emits the state *before* each step, so index 0 is the IC.
    _, trajectories = jax.lax.scan(
        advance, initial_conditions, None, length=temporal_horizon
    )
    return trajectories


_rollout_static_cfl = jax.jit(_rollout, static_argnums=(1, 2))
_rollout_dynamic_cfl = jax.jit(_rollout, static_argnums=(2,))
