"""Fourier-space metrics on periodic grids: energy spectrum, banded and Sobolev errors.

Fields live on a periodic grid with the same number of points `N` along each of the
`D` spatial axes (1D, 2D or 3D). Fourier coefficients are normalised by the number of
grid points, `u_hat = fftn(u) / N**D`, so that `sum_k |u_hat_k|**2 = mean_x u(x)**2`
(Parseval). Wavenumbers `k` are integers (cycles per domain); the *shell* of a mode is
`round(|k|)`.
"""

import math
import numbers
from typing import Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._shapes import State, Trajectories, as_batched_pair, spatial_size


def _integer_wavenumber_norm(num_points: int, num_spatial_dims: int) -> np.ndarray:
    """`|k|` on the full FFT grid, shape `(N,) * D` (static numpy)."""
    k = np.fft.fftfreq(num_points, d=1.0 / num_points)
    grids = np.meshgrid(*([k] * num_spatial_dims), indexing="ij")
    return np.sqrt(sum(g**2 for g in grids))


def _fourier_power(fields: Array, num_spatial_dims: int) -> Array:
    """`|u_hat|**2` summed over channels; `fields` is `(..., C, *spatial)`."""
    axes = tuple(range(-num_spatial_dims, 0))
    num_points_total = math.prod(fields.shape[-num_spatial_dims:])
    coefficients = jnp.fft.fftn(fields, axes=axes) / num_points_total
    return jnp.sum(jnp.abs(coefficients) ** 2, axis=-num_spatial_dims - 1)


def _shell_power(fields: Array, num_points: int, num_spatial_dims: int) -> Array:
    """Power per shell `0..N//2`; `fields` is `(..., C, *spatial)` -> `(..., N//2+1)`."""
    num_shells = num_points // 2 + 1
    shell = np.rint(_integer_wavenumber_norm(num_points, num_spatial_dims)).astype(int)
    # corner modes (round(|k|) > N//2) go to one extra bin that is dropped below
    shell = np.minimum(shell, num_shells).ravel()
    power = _fourier_power(fields, num_spatial_dims)
    power = power.reshape(power.shape[: power.ndim - num_spatial_dims] + (-1,))
    binned = jax.ops.segment_sum(
        jnp.moveaxis(power, -1, 0),
        jnp.asarray(shell),
        num_segments=num_shells + 1,
        indices_are_sorted=False,
    )
    return jnp.moveaxis(binned[:num_shells], 0, -1)


@eqx.filter_jit
def energy_spectrum(state: State) -> Float[Array, " num_shells"]:
    """Power per integer wavenumber shell of one periodic state, summed over channels.

    Entry `s` is `sum over modes k with round(|k|) == s` of `sum_c |u_hat_{c,k}|**2`,
    with coefficients normalised as in the module docstring, so `sin(2*pi*k*x/L)`
    (amplitude 1) puts `0.5` into shell `k`, and in 1D the spectrum sums to
    `sum_c mean_x u_c(x)**2`. Shells run from 0 (the mean) to `N//2` (Nyquist);
    in 2D/3D the corner modes with `round(|k|) > N//2` are left out.

    For a trajectory or a batch, `jax.vmap` it (e.g. `jax.vmap(energy_spectrum)(traj)`).

    **Arguments:**

    - `state`: one state `(C, *spatial)` on a periodic grid with `N` points along each
        of its 1, 2 or 3 spatial axes.

    **Returns:**

    - The spectrum, shape `(N//2 + 1,)`.
    """
    state = jnp.asarray(state)
    if state.ndim < 2:
        raise ValueError(
            f"energy_spectrum: `state` must be shaped (C, *spatial), got shape "
            f"{tuple(state.shape)}. For a single-channel field add a channel axis: "
            "`field[None]`."
        )
    num_points = spatial_size(state, "energy_spectrum", "state", 0)
    return _shell_power(state, num_points, state.ndim - 1)


def octave_band_edges(num_points: int) -> tuple[int, ...]:
    """Default band edges of [`trainax_fm.metrics.spectral_error`][]: octaves.

    The edges are `1, 2, 4, ...` (every power of two below `N//2`) followed by
    `N//2 + 1`, so the bands are `{1}, {2, 3}, {4..7}, ...` and the last band reaches
    the Nyquist shell. The mean (shell 0) is left out.

    **Arguments:**

    - `num_points`: points `N >= 2` per spatial axis.

    **Returns:**

    - A tuple of increasing integer shell edges.
    """
    if isinstance(num_points, bool) or not isinstance(num_points, numbers.Integral):
        raise TypeError(f"`num_points` must be an int, got {num_points!r}.")
    if num_points < 2:
        raise ValueError(f"`num_points` must be at least 2, got {num_points}.")
    edges = [1]
    power = 2
    while power < num_points // 2:
        edges.append(power)
        power *= 2
    edges.append(num_points // 2 + 1)
    return tuple(edges)


@eqx.filter_jit
def spectral_error(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    band_edges: Optional[Sequence[int]] = None,
    batched: bool = False,
) -> Float[Array, "time num_bands"]:
    """Relative error per wavenumber band and time step.

    Band `j` holds the shells `s` (see [`trainax_fm.metrics.energy_spectrum`][]) with
    `band_edges[j] <= s < band_edges[j + 1]`. Per sample and step the band error is
    `sqrt(P_err / P_ref)`, where `P_err` and `P_ref` are the powers of
    `prediction - reference` and of `reference` inside the band, summed over channels.
    In 1D a single band `(0, N//2 + 1)` gives back the nRMSE. Batched: the mean over
    the batch. A band without reference power gives `inf`/`nan`.

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`, on a periodic grid with `N` points per spatial axis.
    - `reference`: the reference trajectory, same shape.
    - `band_edges`: increasing integer shell edges in `[0, N//2 + 1]` (at least two);
        `None` uses [`trainax_fm.metrics.octave_band_edges`][] (octaves, mean excluded).
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - The relative error, shape `(T, len(band_edges) - 1)`.
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "spectral_error"
    )
    num_points = spatial_size(prediction, "spectral_error", "prediction", 2)
    num_spatial_dims = prediction.ndim - 3
    num_shells = num_points // 2 + 1
    if band_edges is None:
        edges = octave_band_edges(num_points)
    else:
        edges = tuple(band_edges)
        if len(edges) < 2 or any(
            isinstance(e, bool) or not isinstance(e, numbers.Integral) for e in edges
        ):
            raise ValueError(
                "`band_edges` must be a sequence of at least two integers, got "
                f"{band_edges!r}."
            )
        if any(a >= b for a, b in zip(edges[:-1], edges[1:])) or not (
            0 <= edges[0] and edges[-1] <= num_shells
        ):
            raise ValueError(
                f"`band_edges` must increase strictly within [0, {num_shells}] "
                f"(N//2 + 1 for N={num_points}), got {tuple(edges)}."
            )
    membership = np.zeros((num_shells, len(edges) - 1), dtype=np.float32)
    for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        membership[low:high, band] = 1.0
    membership = jnp.asarray(membership)

    error_power = _shell_power(prediction - reference, num_points, num_spatial_dims)
    reference_power = _shell_power(reference, num_points, num_spatial_dims)
    ratio = jnp.sqrt((error_power @ membership) / (reference_power @ membership))
    return jnp.mean(ratio, axis=0)


@eqx.filter_jit
def sobolev_error(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    order: float = 1.0,
    domain_extent: float = 1.0,
    relative: bool = True,
    batched: bool = False,
) -> Float[Array, " time"]:
    """Error in the Sobolev norm `H^s` per time step, derivatives taken spectrally.

    With angular wavenumbers `kappa = 2*pi*k / L` the squared norm of a state is
    `mean_c sum_k (1 + |kappa|**2)**s |u_hat_{c,k}|**2`; for `s = 1` this equals
    `mean_c mean_x (u_c**2 + |grad u_c|**2)`, i.e. the squared error plus the squared
    gradient error, averaged over all channel and spatial entries. `s = 0` reduces to
    the RMSE (`relative=False`) or the nRMSE (`relative=True`). Batched: the mean over
    the batch of the per-sample values.

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`, on a periodic grid with `N` points per spatial axis.
    - `reference`: the reference trajectory, same shape.
    - `order`: the Sobolev order `s` (any real; 1 gives `H^1`).
    - `domain_extent`: the side length `L` of the periodic domain; it sets the scale
        of the derivatives.
    - `relative`: if True return `||pred - ref||_{H^s} / ||ref||_{H^s}`, else the
        absolute error norm.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - The error per step, shape `(T,)`.
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "sobolev_error"
    )
    num_points = spatial_size(prediction, "sobolev_error", "prediction", 2)
    num_spatial_dims = prediction.ndim - 3
    num_channels = prediction.shape[2]
    wavenumber = _integer_wavenumber_norm(num_points, num_spatial_dims)
    weights = jnp.power(
        1.0 + jnp.square(2.0 * jnp.pi * jnp.asarray(wavenumber) / domain_extent), order
    )

    def squared_norm(fields):
        power = _fourier_power(fields, num_spatial_dims)
        axes = tuple(range(-num_spatial_dims, 0))
        leading = tuple(range(power.ndim - weights.ndim))
        return jnp.sum(jnp.expand_dims(weights, leading) * power, axis=axes) / num_channels

    error = squared_norm(prediction - reference)
    if relative:
        error = error / squared_norm(reference)
    return jnp.mean(jnp.sqrt(error), axis=0)


@eqx.filter_jit
def h1_error(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    domain_extent: float = 1.0,
    relative: bool = True,
    batched: bool = False,
) -> Float[Array, " time"]:
    """Error in the `H^1` norm per time step: [`trainax_fm.metrics.sobolev_error`][]
    with `order=1`.

    The squared `H^1` norm of the error is its mean square plus the mean square of
    its (spectral) gradient, over all channel and spatial entries; it penalises blur
    that a plain RMSE barely sees.

    **Arguments:**

    - `prediction`, `reference`, `domain_extent`, `relative`, `batched`: as in
        [`trainax_fm.metrics.sobolev_error`][].

    **Returns:**

    - The error per step, shape `(T,)`.
    """
    return sobolev_error(
        prediction,
        reference,
        order=1.0,
        domain_extent=domain_extent,
        relative=relative,
        batched=batched,
    )
