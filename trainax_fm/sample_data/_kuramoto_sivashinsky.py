from typing import Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import check_key, check_real


def spectral_coarse_grain(
    u: Float[Array, "... fine"], coarse_points: int, num_spatial_dims: int
) -> Float[Array, "... coarse"]:
    """Keep the Fourier modes `|k_i| < coarse_points / 2` of each spatial axis, on a coarse grid.

    The last `num_spatial_dims` axes are periodic grids of equal size; the kept modes
    are sampled on `coarse_points` points per axis (the coarse Nyquist mode is zero),
    with the amplitude of the fine field.
    """
    fine_points = u.shape[-1]
    cutoff = coarse_points // 2 - 1
    fine_index = jnp.concatenate(
        [jnp.arange(cutoff + 1), jnp.arange(fine_points - cutoff, fine_points)]
    )
    spectrum = jnp.fft.fftn(u, axes=tuple(range(-num_spatial_dims, 0)))
    for axis in range(-num_spatial_dims, 0):
        kept = jnp.take(spectrum, fine_index, axis=axis)
        low, high = jnp.split(kept, [cutoff + 1], axis=axis)
        nyquist = jnp.zeros_like(jnp.take(kept, jnp.array([0]), axis=axis))
        spectrum = jnp.concatenate([low, nyquist, high], axis=axis)
    coarse = jnp.fft.ifftn(spectrum, axes=tuple(range(-num_spatial_dims, 0))).real
    return coarse * (coarse_points / fine_points) ** num_spatial_dims


def coarse_kuramoto_sivashinsky(
    num_samples: int = 20,
    temporal_horizon: int = 100,
    *,
    num_spatial_dims: int = 2,
    domain_extent: float = 60.0,
    fine_points: int = 64,
    coarse_points: int = 16,
    dt: float = 1.0,
    num_substeps: int = 10,
    num_warmup_steps: int = 100,
    key: Optional[PRNGKeyArray] = None,
) -> Float[Array, "num_samples temporal_horizon 1 *coarse"]:
    """Coarse-grained Kuramoto-Sivashinsky trajectories: a next state that is genuinely uncertain.

    The KS equation `u_t + |grad u|^2 / 2 + lap u + lap^2 u = 0` is solved with
    exponax (`exponax.stepper.KuramotoSivashinsky`, ETDRK2, dealiased) on the periodic
    domain `[0, domain_extent)^D` with `fine_points` points per axis, from random
    truncated Fourier series (modes up to 5, max-normalised), past `num_warmup_steps`
    emulator steps of transient. Every stored state is the fine state
    coarse-grained by spectral truncation to the modes `|k_i| < coarse_points / 2`
    on `coarse_points` points per axis. With the defaults (2D, `L = 60`, 64^2
    observed at 16^2) about a fifth of the energy sits in the discarded modes, so the
    next coarse state is not a function of the current coarse state: a probabilistic
    emulator must sample it, and a CPU trains on it in minutes.

    Needs exponax (`pip install "trainax_fm[pde]"`).

    **Arguments:**

    - `num_samples`: the number of trajectories `S`.
    - `temporal_horizon`: the stored states per trajectory `T` (index 0 is the state
        after the warm-up).
    - `num_spatial_dims`: `D`, 1 or 2 (3 works but is slow).
    - `domain_extent`: the side length `L` of the domain.
    - `fine_points`, `coarse_points`: points per axis of the solver and of the stored
        states (`4 <= coarse_points < fine_points`, both even).
    - `dt`: the time between stored states.
    - `num_substeps`: solver steps per stored step (solver step `dt / num_substeps`).
    - `num_warmup_steps`: stored-size steps discarded before the first state.
    - `key`: a JAX random key for the initial conditions (keyword, required).

    **Returns:**

    - Trajectories `(S, T, 1, coarse_points, ..., coarse_points)`.
    """
    name = "coarse_kuramoto_sivashinsky"
    check_key(key, name)
    num_samples = check_positive_int(num_samples, "num_samples")
    temporal_horizon = check_positive_int(temporal_horizon, "temporal_horizon")
    num_spatial_dims = check_positive_int(num_spatial_dims, "num_spatial_dims")
    fine_points = check_positive_int(fine_points, "fine_points")
    coarse_points = check_positive_int(coarse_points, "coarse_points", minimum=4)
    num_substeps = check_positive_int(num_substeps, "num_substeps")
    num_warmup_steps = check_positive_int(num_warmup_steps, "num_warmup_steps", minimum=0)
    check_real(domain_extent, "domain_extent", positive=True)
    check_real(dt, "dt", positive=True)
    if num_spatial_dims > 3:
        raise ValueError(f"`num_spatial_dims` must be 1, 2 or 3, got {num_spatial_dims}.")
    if coarse_points % 2 or fine_points % 2 or coarse_points >= fine_points:
        raise ValueError(
            "`coarse_points` and `fine_points` must be even with coarse_points < "
            f"fine_points, got coarse_points={coarse_points}, fine_points={fine_points}. "
            "For example fine_points=64, coarse_points=16."
        )
    try:
        import exponax
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{name} needs exponax: pip install 'trainax_fm[pde]' (or exponax)."
        ) from error

    solver = exponax.stepper.KuramotoSivashinsky(
        num_spatial_dims, float(domain_extent), fine_points, float(dt) / num_substeps
    )
    initial = exponax.ic.RandomTruncatedFourierSeries(num_spatial_dims, cutoff=5, max_one=True)
    u = exponax.build_ic_set(initial, num_points=fine_points, num_samples=num_samples, key=key)

    def stored_step(state, _=None):
        state = jax.lax.fori_loop(0, num_substeps, lambda i, w: jax.vmap(solver)(w), state)
        return state, state

    @jax.jit
    def run(state):
        state = jax.lax.fori_loop(0, num_warmup_steps, lambda i, w: stored_step(w)[0], state)
        _, later = jax.lax.scan(stored_step, state, length=temporal_horizon - 1)
        states = jnp.concatenate([state[None], later], axis=0)  # (T, S, 1, *fine)
        return spectral_coarse_grain(jnp.swapaxes(states, 0, 1), coarse_points, num_spatial_dims)

    # exponax's 2D nonlinearity relies on implicit rank promotion; allow it here so
    # that the generator also works for users who run JAX with strict promotion.
    with jax.numpy_rank_promotion("allow"):
        return run(u)
