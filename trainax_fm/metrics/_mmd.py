"""Maximum mean discrepancy between two sets of samples (multi-bandwidth Gaussian)."""

from typing import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._shapes import as_sample_sets

DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def check_bandwidths(bandwidths: Sequence[float]) -> tuple[float, ...]:
    """Return the bandwidths as a tuple of floats, or raise if any is not positive."""
    try:
        values = tuple(float(b) for b in bandwidths)
    except (TypeError, ValueError):
        raise TypeError(
            f"`bandwidths` must be a sequence of positive floats, got {bandwidths!r}."
        ) from None
    if not values or any(not b > 0 for b in values):
        raise ValueError(
            f"`bandwidths` must be a non-empty sequence of positive floats, got {values}."
        )
    return values


def squared_mmd(
    samples: Float[Array, "num_samples dim"],
    other_samples: Float[Array, "num_other dim"],
    bandwidths: tuple[float, ...],
) -> Float[Array, ""]:
    """The biased (V-statistic) squared MMD of flattened samples; differentiable."""
    dim = samples.shape[1]
    points = jnp.concatenate([samples, other_samples], axis=0)
    squared_norms = jnp.sum(points * points, axis=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * points @ points.T
    # Mean squared difference per entry, so bandwidths do not depend on the state size.
    squared = jnp.maximum(squared, 0.0) / dim
    kernel = sum(jnp.exp(-squared / (2.0 * b**2)) for b in bandwidths)
    num = samples.shape[0]
    within = jnp.mean(kernel[:num, :num])
    other_within = jnp.mean(kernel[num:, num:])
    cross = jnp.mean(kernel[:num, num:])
    return within + other_within - 2.0 * cross


@eqx.filter_jit
def mmd(
    samples: Float[Array, " num_samples *event"],
    other_samples: Float[Array, " num_other *event"],
    *,
    bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS,
) -> Float[Array, ""]:
    r"""Squared maximum mean discrepancy with a sum of Gaussian kernels.

    $$\mathrm{MMD}^2 = \overline{k(x, x')} + \overline{k(y, y')} - 2\,\overline{k(x, y)},
    \qquad k(x, y) = \sum_{\sigma} \exp\!\Big(-\frac{\lVert x - y\rVert^2}{2 \sigma^2 D}\Big)$$

    with means over all pairs (the biased V-statistic: exactly zero for identical
    sample sets, never negative) and `D` the number of entries of one sample, so a
    bandwidth `σ` is measured per entry: on standardised data `σ ≈ 1` is the typical
    distance. Several bandwidths cover several scales at once (DySLIM, Schiff et al.
    2024). This is the regulariser of
    [`trainax_fm.configuration.InvariantMeasureMMD`][].

    **Arguments:**

    - `samples`: `N` samples stacked on axis 0, any event shape.
    - `other_samples`: `M` samples with the same event shape.
    - `bandwidths`: the kernel bandwidths `σ` (positive).

    **Returns:**

    - A scalar `>= 0` (up to rounding).
    """
    bandwidths = check_bandwidths(bandwidths)
    samples, other_samples = as_sample_sets(samples, other_samples, "mmd")
    return squared_mmd(
        samples.reshape(samples.shape[0], -1),
        other_samples.reshape(other_samples.shape[0], -1),
        bandwidths,
    )
