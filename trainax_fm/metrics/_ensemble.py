"""Probabilistic scores of an ensemble against observations, and a sample distance.

The ensemble metrics compare `M` members with one observation entry by entry: every
channel, spatial point, time step and batch entry is a separate scalar forecast. The
member axis is `ensemble_axis` of `ensemble`; the observation has the ensemble's shape
without that axis. `axis` (as in `numpy.mean`, counted on the observation's axes)
chooses which entries are averaged: `None` averages all of them into a scalar, a tuple
keeps the other axes (e.g. `axis=(1, 2)` on `(T, C, N)` gives one value per step).
"""

import math
from typing import Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_bool
from ._shapes import as_sample_sets, check_fraction, normalize_ensemble

Axis = Optional[Union[int, tuple[int, ...]]]


def _mean_pairwise_abs_difference(ensemble: Array, fair: bool) -> Array:
    """Mean of `|x_i - x_j|` over member pairs, via the sorted-sample identity.

    `sum_{i,j} |x_i - x_j| = 2 sum_r (2r - M - 1) x_(r)` with `x_(r)` sorted ascending
    (`r = 1..M`); the plain mean divides by `M**2`, the fair one by `M (M - 1)`.
    """
    num_members = ensemble.shape[0]
    ordered = jnp.sort(ensemble, axis=0)
    rank = jnp.arange(1, num_members + 1, dtype=ordered.dtype)
    weights = (2.0 * rank - num_members - 1.0).reshape((-1,) + (1,) * (ensemble.ndim - 1))
    total = 2.0 * jnp.sum(weights * ordered, axis=0)
    denominator = num_members * (num_members - 1) if fair else num_members**2
    return total / denominator


@eqx.filter_jit
def crps(
    ensemble: Float[Array, "*ensemble_and_entries"],
    observation: Float[Array, "*entries"],
    *,
    ensemble_axis: int = 0,
    fair: bool = True,
    axis: Axis = None,
) -> Float[Array, "*kept"]:
    """Continuous ranked probability score of an ensemble, in its energy form.

    Per entry `CRPS = E|X - y| - 0.5 E|X - X'|`, with `X, X'` members and `y` the
    observation. `fair=True` (the default) averages `|X - X'|` over the `M (M - 1)`
    pairs of distinct members: the "fair" CRPS, an unbiased estimate of the CRPS of the
    distribution the members are drawn from, so it does not penalise small ensembles.
    `fair=False` averages over all `M**2` pairs: the CRPS of the empirical
    distribution of the members. Lower is better; the unit is that of the data. The
    pairwise term costs `O(M log M)` per entry (a sort), not `O(M**2)`.

    **Arguments:**

    - `ensemble`: members stacked along `ensemble_axis`, e.g. `(M, T, C, *spatial)`.
    - `observation`: the ensemble's shape without the member axis.
    - `ensemble_axis`: the member axis of `ensemble`.
    - `fair`: the unbiased (True) or the plain empirical (False) form; the fair form
        needs `M >= 2`.
    - `axis`: observation axes to average over; `None` averages all entries, `()`
        returns the CRPS per entry.

    **Returns:**

    - The mean CRPS over `axis`.
    """
    fair = check_bool(fair, "fair")
    ensemble, observation = normalize_ensemble(ensemble, observation, ensemble_axis, "crps")
    if fair and ensemble.shape[0] < 2:
        raise ValueError(
            "crps: the fair CRPS needs at least 2 members, got an ensemble of "
            f"{ensemble.shape[0]}. Use fair=False for a single member."
        )
    skill = jnp.mean(jnp.abs(ensemble - observation[None]), axis=0)
    spread = _mean_pairwise_abs_difference(ensemble, fair)
    return jnp.mean(skill - 0.5 * spread, axis=axis)


@eqx.filter_jit
def spread_skill_ratio(
    ensemble: Float[Array, "*ensemble_and_entries"],
    observation: Float[Array, "*entries"],
    *,
    ensemble_axis: int = 0,
    axis: Axis = None,
) -> Float[Array, "*kept"]:
    """Spread-skill ratio: ensemble spread over the RMSE of the ensemble mean.

    `ratio = sqrt((M + 1) / M) * spread / skill` with `spread = sqrt(mean var)`, the
    unbiased (`ddof=1`) member variance averaged over the entries of `axis`, and
    `skill = sqrt(mean (ensemble mean - observation)**2)`. For a calibrated ensemble
    (observation and members exchangeable draws from one distribution of variance
    `sigma**2`) the mean squared error of the `M`-member mean is
    `sigma**2 (M + 1) / M`, so the factor `sqrt((M + 1) / M)` makes the ratio 1 in
    expectation for any ensemble size. Below 1: overconfident (too little spread);
    above 1: underconfident.

    **Arguments:**

    - `ensemble`: members stacked along `ensemble_axis`; at least 2 members.
    - `observation`: the ensemble's shape without the member axis.
    - `ensemble_axis`: the member axis of `ensemble`.
    - `axis`: observation axes over which variance and squared error are averaged
        before the roots are taken; `None` uses all entries.

    **Returns:**

    - The ratio, a scalar for `axis=None`.
    """
    ensemble, observation = normalize_ensemble(
        ensemble, observation, ensemble_axis, "spread_skill_ratio"
    )
    num_members = ensemble.shape[0]
    if num_members < 2:
        raise ValueError(
            "spread_skill_ratio: the ensemble spread needs at least 2 members, got "
            f"{num_members}."
        )
    variance = jnp.var(ensemble, axis=0, ddof=1)
    squared_error = jnp.square(jnp.mean(ensemble, axis=0) - observation)
    spread = jnp.sqrt(jnp.mean(variance, axis=axis))
    skill = jnp.sqrt(jnp.mean(squared_error, axis=axis))
    return math.sqrt((num_members + 1) / num_members) * spread / skill


@eqx.filter_jit
def interval_coverage(
    ensemble: Float[Array, "*ensemble_and_entries"],
    observation: Float[Array, "*entries"],
    level: float = 0.9,
    *,
    ensemble_axis: int = 0,
    axis: Axis = None,
) -> Float[Array, "*kept"]:
    """Fraction of observation entries inside the ensemble's central interval.

    Per entry the interval runs from the `(1 - level) / 2` to the `(1 + level) / 2`
    quantile of the members (linear interpolation, `jnp.quantile`); both ends count as
    inside. A calibrated ensemble covers about `level` of the entries (slightly less
    for small `M`, whose empirical quantiles are too narrow on average).

    **Arguments:**

    - `ensemble`: members stacked along `ensemble_axis`.
    - `observation`: the ensemble's shape without the member axis.
    - `level`: the nominal coverage, strictly between 0 and 1.
    - `ensemble_axis`: the member axis of `ensemble`.
    - `axis`: observation axes to average over; `None` gives one fraction.

    **Returns:**

    - The covered fraction, in `[0, 1]`.
    """
    ensemble, observation = normalize_ensemble(
        ensemble, observation, ensemble_axis, "interval_coverage"
    )
    level = check_fraction(level, "level")
    lower = jnp.quantile(ensemble, (1.0 - level) / 2.0, axis=0)
    upper = jnp.quantile(ensemble, (1.0 + level) / 2.0, axis=0)
    inside = (observation >= lower) & (observation <= upper)
    return jnp.mean(inside.astype(ensemble.dtype), axis=axis)


# Above this many difference entries (N * N * D) the distance matrix is built one block
# of rows at a time instead of in a single broadcast.
_MAX_BROADCAST_ENTRIES = 2**24


def _safe_norm(differences: Array) -> Array:
    """Euclidean norm over the last axis with a finite gradient at zero."""
    squared = jnp.sum(jnp.square(differences), axis=-1)
    positive = squared > 0.0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def _pairwise_distances(points: Array) -> Array:
    """Euclidean distance matrix of the rows of `points` `(K, D)`.

    Differences are formed explicitly (accurate also for nearly equal samples rather
    than via a Gram matrix); large inputs are processed in blocks of rows to bound
    memory.
    """
    num, dim = points.shape
    if num * num * dim <= _MAX_BROADCAST_ENTRIES:
        return _safe_norm(points[:, None, :] - points[None, :, :])
    block = max(1, _MAX_BROADCAST_ENTRIES // (num * dim))
    return jax.lax.map(
        lambda row: _safe_norm(row[None, :] - points), points, batch_size=min(block, num)
    )


@eqx.filter_jit
def energy_distance(
    samples: Float[Array, " num_samples *event"],
    other_samples: Float[Array, " num_other *event"],
    *,
    unbiased: bool = True,
) -> Float[Array, ""]:
    """Squared energy distance between two sets of samples.

    `D**2 = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||` with `X, X'` drawn from
    `samples`, `Y, Y'` from `other_samples`, and `||.||` the Euclidean norm of a whole
    sample (all its entries flattened). It is zero exactly when the two distributions
    agree, so it compares generated states with samples of the true distribution.
    `unbiased=True` averages the within-set terms over distinct pairs only (a
    U-statistic: unbiased, zero in expectation for equal distributions, may be
    slightly negative); `unbiased=False` includes the zero self-distances (a
    V-statistic: always `>= 0`, biased upwards).

    **Arguments:**

    - `samples`: `N` samples stacked on axis 0, any event shape.
    - `other_samples`: `M` samples with the same event shape.
    - `unbiased`: see above; needs `N, M >= 2`.

    **Returns:**

    - A scalar.
    """
    unbiased = check_bool(unbiased, "unbiased")
    samples, other_samples = as_sample_sets(samples, other_samples, "energy_distance")
    num_a, num_b = samples.shape[0], other_samples.shape[0]
    if unbiased and (num_a < 2 or num_b < 2):
        raise ValueError(
            "energy_distance: the unbiased estimate needs at least 2 samples per set, "
            f"got {num_a} and {num_b}. Use unbiased=False."
        )
    points = jnp.concatenate(
        [samples.reshape(num_a, -1), other_samples.reshape(num_b, -1)], axis=0
    )
    distances = _pairwise_distances(points)  # self-distances are exactly zero
    cross = jnp.mean(distances[:num_a, num_a:])
    within_a = jnp.sum(distances[:num_a, :num_a])
    within_b = jnp.sum(distances[num_a:, num_a:])
    if unbiased:
        within_a = within_a / (num_a * (num_a - 1))
        within_b = within_b / (num_b * (num_b - 1))
    else:
        within_a = within_a / num_a**2
        within_b = within_b / num_b**2
    return 2.0 * cross - within_a - within_b
