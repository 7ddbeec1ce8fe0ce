"""Long-run statistics of rollouts: do they stay on the reference's attractor?

Beyond a few Lyapunov times a chaotic rollout cannot follow its reference pointwise;
what can still be right is the distribution of its states and their spectrum, and
whether it stays bounded at all. These metrics compare those long-run properties; pass
rollouts of many steps and a `burn_in` that drops the transient start.
"""

import numbers

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._shapes import Trajectories, as_batched_pair, spatial_size
from ._spectrum import _shell_power


def _check_burn_in(burn_in, num_steps: int, name: str) -> int:
    if isinstance(burn_in, bool) or not isinstance(burn_in, numbers.Integral):
        raise TypeError(f"{name}: `burn_in` must be an integer, got {burn_in!r}.")
    if not 0 <= burn_in < num_steps:
        raise ValueError(
            f"{name}: `burn_in` must lie in 0 ... {num_steps - 1} (the trajectories have "
            f"{num_steps} steps), got {burn_in}."
        )
    return int(burn_in)


@eqx.filter_jit
def long_run_distribution_distance(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    burn_in: int = 0,
    num_quantiles: int = 100,
    batched: bool = False,
) -> Float[Array, ""]:
    """Distance between the long-run distributions of the values of two rollouts.

    Per channel, all entries of all states from step `burn_in` on (over time, space
    and the batch) form one empirical distribution; the distance is the
    1-Wasserstein distance between the prediction's and the reference's, computed
    from `num_quantiles` quantiles and divided by the reference's standard deviation
    (so 0.1 means a shift of a tenth of the natural spread), averaged over channels.
    For spatially homogeneous systems (Kuramoto-Sivashinsky, Lorenz-96) this is the
    one-point statistics of the attractor.

    A rollout with a non-finite entry makes the result `nan` or `inf`: measure
    [`trainax_fm.metrics.blow_up_fraction`][] and pass the bounded rollouts.

    **Arguments:**

    - `prediction`, `reference`: `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True` (same shapes; ODE states `(T, C)` work too).
    - `burn_in`: the number of leading steps left out.
    - `num_quantiles`: the resolution of the quantile estimate.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar `>= 0`.
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "long_run_distribution_distance"
    )
    burn_in = _check_burn_in(burn_in, prediction.shape[1], "long_run_distribution_distance")
    if (
        isinstance(num_quantiles, bool)
        or not isinstance(num_quantiles, numbers.Integral)
        or num_quantiles < 2
    ):
        raise ValueError(f"`num_quantiles` must be an integer >= 2, got {num_quantiles!r}.")
    levels = (jnp.arange(num_quantiles) + 0.5) / num_quantiles

    def per_channel(array):
        # (B, T, C, ...) -> (C, everything else)
        array = jnp.moveaxis(array[:, burn_in:], 2, 0)
        return array.reshape(array.shape[0], -1)

    predicted, referenced = per_channel(prediction), per_channel(reference)
    predicted_q = jnp.quantile(predicted, levels, axis=1)
    reference_q = jnp.quantile(referenced, levels, axis=1)
    scale = jnp.std(referenced, axis=1)
    return jnp.mean(jnp.mean(jnp.abs(predicted_q - reference_q), axis=0) / scale)


@eqx.filter_jit
def long_run_spectrum_error(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    burn_in: int = 0,
    batched: bool = False,
) -> Float[Array, ""]:
    """Mean absolute log10 ratio of the long-run energy spectra of two rollouts.

    The energy spectra ([`trainax_fm.metrics.energy_spectrum`][]) of all states from
    step `burn_in` on are averaged over time and batch; the error is the mean over the
    wavenumber shells `1 ... N//2` of `|log10(E_pred / E_ref)|` (0.3 is a factor of 2
    per shell on average). It shows blurred (missing small-scale energy) and noisy
    (piled-up) rollouts that pointwise errors cannot judge after decorrelation.

    **Arguments:**

    - `prediction`, `reference`: `(T, C, *spatial)` on a periodic grid, or
        `(B, T, C, *spatial)` with `batched=True`.
    - `burn_in`: the number of leading steps left out.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar `>= 0` (`nan`/`inf` if a rollout is not finite).
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "long_run_spectrum_error"
    )
    burn_in = _check_burn_in(burn_in, prediction.shape[1], "long_run_spectrum_error")
    num_points = spatial_size(prediction, "long_run_spectrum_error", "prediction", 2)
    num_spatial_dims = prediction.ndim - 3

    def mean_spectrum(array):
        power = _shell_power(array[:, burn_in:], num_points, num_spatial_dims)
        return jnp.mean(power, axis=(0, 1))[1:]

    tiny = jnp.finfo(prediction.dtype).tiny
    ratio = (mean_spectrum(prediction) + tiny) / (mean_spectrum(reference) + tiny)
    return jnp.mean(jnp.abs(jnp.log10(ratio)))


@eqx.filter_jit
def power_spectrum_distance(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    burn_in: int = 0,
    batched: bool = False,
) -> Float[Array, ""]:
    """Hellinger distance between the temporal power spectra of two long rollouts.

    Per channel (and spatial entry), the series from step `burn_in` on minus its mean
    is Fourier transformed over time; its power `|X(f)|^2`, averaged over the batch
    and normalised to sum 1 over the frequencies `f = 0 ... T'//2`, is a distribution
    `p` (prediction) or `q` (reference). The distance per channel is the Hellinger
    distance `sqrt(1 - sum_f sqrt(p_f q_f))` in `[0, 1]` (0: same spectral shape,
    1: disjoint frequencies), averaged over channels. Unlike pointwise errors it judges
    rollouts of chaotic ODEs after they decorrelated from the reference: whether they
    oscillate with the right time scales (the spectrum comparison of dysts' and Panda's
    long-horizon evaluations). A channel that is constant in prediction or reference
    has no spectral shape and gives distance 1.

    **Arguments:**

    - `prediction`, `reference`: `(T, C, *spatial)` (ODE: `(T, C)`), or
        `(B, T, C, *spatial)` with `batched=True` (same shapes).
    - `burn_in`: the number of leading steps left out (at least 2 steps must remain).
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar in `[0, 1]` (`nan` if a rollout is not finite).
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "power_spectrum_distance"
    )
    burn_in = _check_burn_in(burn_in, prediction.shape[1], "power_spectrum_distance")
    if prediction.shape[1] - burn_in < 2:
        raise ValueError(
            f"power_spectrum_distance: a spectrum over time needs at least 2 steps after "
            f"`burn_in={burn_in}`, but the trajectories have {prediction.shape[1]} steps."
        )

    def spectrum(array):
        series = array[:, burn_in:].reshape(array.shape[0], array.shape[1] - burn_in, -1)
        series = series - jnp.mean(series, axis=1, keepdims=True)
        power = jnp.mean(jnp.abs(jnp.fft.rfft(series, axis=1)) ** 2, axis=0)  # (F, N)
        total = jnp.sum(power, axis=0, keepdims=True)
        return power / jnp.where(total > 0, total, 1.0)

    overlap = jnp.sum(jnp.sqrt(spectrum(prediction) * spectrum(reference)), axis=0)
    return jnp.mean(jnp.sqrt(jnp.maximum(1.0 - overlap, 0.0)))


@eqx.filter_jit
def blow_up_fraction(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    factor: float = 10.0,
    batched: bool = False,
) -> Float[Array, ""]:
    """Fraction of rollouts that blow up: a non-finite entry, or one whose magnitude
    exceeds `factor` times the largest magnitude of the reference batch.

    **Arguments:**

    - `prediction`, `reference`: `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`.
    - `factor`: how far beyond the reference's range counts as blown up (> 0).
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar in `[0, 1]` (0 or 1 for a single rollout).
    """
    if isinstance(factor, numbers.Real) and not factor > 0:
        raise ValueError(f"blow_up_fraction: `factor` must be > 0, got {factor}.")
    prediction, reference = as_batched_pair(prediction, reference, batched, "blow_up_fraction")
    bound = factor * jnp.max(jnp.abs(reference))
    flat = prediction.reshape(prediction.shape[0], -1)
    # `~(|x| <= bound)` is also true for nan.
    blown = jnp.any(~(jnp.abs(flat) <= bound), axis=1)
    return jnp.mean(blown.astype(prediction.dtype))
