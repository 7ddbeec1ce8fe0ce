"""Losses on the radially binned power spectra of a state (AMSE, spectral amplitude)."""

import abc
import math
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import BaseLoss
from ._utils import check_same_shape


def radial_bands(spatial_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The radial wavenumber band of every entry of an `fftn` of a grid.

    Mode `(k_1, ..., k_D)` (integer mode numbers, `jnp.fft.fftfreq(N) * N` per axis)
    falls into band `round(sqrt(k_1**2 + ... + k_D**2))`.

    **Arguments:**

    - `spatial_shape`: the grid `(N_1, ..., N_D)`.

    **Returns:**

    - `(bands, num_bands)`: an integer array of shape `spatial_shape` and the number of
        bands (the largest band plus one). Computed with NumPy: shapes are static.
    """
    modes = np.meshgrid(
        *(np.fft.fftfreq(n) * n for n in spatial_shape), indexing="ij"
    )
    radius = np.sqrt(sum(np.square(k) for k in modes))
    bands = np.rint(radius).astype(np.int32)
    return bands, int(bands.max()) + 1


class AbstractSpectralLoss(BaseLoss):
    """A loss that sums a per-band statistic of the power spectra of a state.

    Per channel, the state is Fourier transformed over its spatial axes (`fftn`, so a
    periodic grid is assumed) and normalised by the number of grid points `N`, so that by
    Parseval `sum over modes |X_k|**2 / N**2 = mean(x**2)`. Modes are grouped into radial
    wavenumber bands (`round(|k|)` in integer mode numbers), and per band `k`

    ```
    P_x(k) = sum |X|**2 / N**2,   P_y(k) = sum |Y|**2 / N**2,
    C(k) = sum Re(X conj(Y)) / N**2
    ```

    (prediction `x`, target `y`). With this normalisation
    `sum_k P_x + P_y - 2 C = mean((x - y)**2)`: the spectral losses are on the scale of
    `MSELoss`. The per-band terms are summed over bands and averaged over channels.

    `eps` is added to every band power under a square root, so the gradient is finite
    also where a band has no power (e.g. a zero prediction) or where the prediction
    equals the target.

    Subclasses implement `_band_terms`.
    """

    eps: float = eqx.field(static=True, default=1e-12, kw_only=True)

    def __check_init__(self):
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps)) or not (
            self.eps > 0
        ):
            raise ValueError(
                f"{type(self).__name__}: `eps` must be a finite number > 0 (it keeps the "
                f"square roots differentiable), got {self.eps!r}."
            )

    @abc.abstractmethod
    def _band_terms(
        self,
        power_prediction: Float[Array, "num_channels num_bands"],
        power_target: Float[Array, "num_channels num_bands"],
        cross: Float[Array, "num_channels num_bands"],
    ) -> Float[Array, "num_channels num_bands"]:
        """The loss of every band of every channel."""

    def band_spectra(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Float[Array, "num_channels ..."],
    ) -> tuple[
        Float[Array, "num_channels num_bands"],
        Float[Array, "num_channels num_bands"],
        Float[Array, "num_channels num_bands"],
    ]:
        """The band powers `P_x`, `P_y` and the cross spectrum `C` of one state pair.

        **Arguments:**

        - `prediction`, `target`: one state each, shape `(C, *spatial)` with at least one
            spatial axis.

        **Returns:**

        - `(P_x, P_y, C)`, each of shape `(C, num_bands)`.
        """
        name = type(self).__name__
        check_same_shape(name, prediction, target)
        spatial_shape = tuple(jnp.shape(prediction)[1:])
        if len(spatial_shape) == 0:
            raise ValueError(
                f"{name} bins the state's spectrum over its spatial axes, but the state "
                f"has shape {tuple(jnp.shape(prediction))} (channels only, no grid). Use "
                "MSELoss for ODE states."
            )
        bands, num_bands = radial_bands(spatial_shape)
        axes = tuple(range(1, 1 + len(spatial_shape)))
        size = math.prod(spatial_shape)
        x = jnp.fft.fftn(prediction, axes=axes) / size
        y = jnp.fft.fftn(target, axes=axes) / size
        flat_bands = jnp.asarray(bands.reshape(-1))

        def per_band(values):
            # (C, *spatial) -> (C, num_bands): sum the modes of each band.
            flat = values.reshape(values.shape[0], -1)
            return jax.vmap(
                lambda v: jax.ops.segment_sum(v, flat_bands, num_segments=num_bands)
            )(flat)

        return (
            per_band(jnp.square(jnp.abs(x))),
            per_band(jnp.square(jnp.abs(y))),
            per_band(jnp.real(x * jnp.conj(y))),
        )

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        if target is None:
            raise ValueError(
                f"{type(self).__name__} compares the spectrum of the prediction with the "
                "target's, so it needs a `target`; got `target=None`. To reduce a single "
                "state (e.g. a residuum) use MSELoss, MAELoss or RMSELoss."
            )
        power_prediction, power_target, cross = self.band_spectra(prediction, target)
        terms = self._band_terms(power_prediction, power_target, cross)
        return jnp.mean(jnp.sum(terms, axis=-1))

    def _amplitude_error(self, power_prediction, power_target):
        """`(sqrt(P_x) - sqrt(P_y))**2` per band."""
        return jnp.square(
            jnp.sqrt(power_prediction + self.eps) - jnp.sqrt(power_target + self.eps)
        )


class SpectralAmplitudeLoss(AbstractSpectralLoss):
    r"""The error of the spectral amplitudes alone: phase-blind.

    Per radial wavenumber band `k` (see `AMSELoss` for the bands and the normalisation)

    $$\ell = \frac{1}{C}\sum_c \sum_k \left(\sqrt{P_x(k)} - \sqrt{P_y(k)}\right)^2,$$

    the amplitude term of the AMSE. It is zero for any prediction with the target's
    energy in every band, whatever its phases, so on its own it only asks for the right
    spectrum (sharpness, no blur); add it to an `MSELoss` with a
    [`trainax_fm.loss.CompositeLoss`][] to also ask for the right state.

    **Arguments:**

    - `eps`: added to the band powers under the square root (default `1e-12`).
    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _band_terms(self, power_prediction, power_target, cross):
        del cross
        return self._amplitude_error(power_prediction, power_target)


class AMSELoss(AbstractSpectralLoss):
    r"""Adjusted MSE (AMSE, Subich et al. 2025): MSE without the double penalty.

    The MSE of a state splits per radial wavenumber band `k` into an amplitude and a
    decorrelation term,
    $\sum_k (\sqrt{P_x} - \sqrt{P_y})^2 + 2\sqrt{P_x P_y}\,(1 - \rho_k)$, with the band
    coherence $\rho_k = C(k) / \sqrt{P_x(k) P_y(k)}$. A forecast that cannot know the
    phase of the small scales minimises it by damping them (`P_x -> 0`): blur. The AMSE
    ("Fixing the double penalty in data-driven weather forecasting through a modified
    spherical harmonic loss function", Subich et al. 2025) weighs the decorrelation by
    the larger of the two powers instead,

    $$\ell = \frac{1}{C}\sum_c \sum_k \left(\sqrt{P_x} - \sqrt{P_y}\right)^2
    + 2\max(P_x, P_y)\,(1 - \rho_k),$$

    so damping a band no longer lowers its decorrelation cost and the right amplitude is
    always optimal. The paper bins spherical harmonics by total wavenumber; here the
    state lives on a periodic Cartesian grid with one, two or three (or more) spatial
    axes, and the modes of its `fftn` are binned by `round(|k|)` in integer mode numbers.
    Powers are normalised by the number of grid points so that the AMSE equals `MSELoss`
    whenever prediction and target have the same power in every band, and exceeds it
    otherwise.

    `eps` enters every square root (the amplitudes and the coherence's denominator), so
    the loss is differentiable everywhere, including at `prediction == target` (where
    it is `0` up to `O(eps)`).

    **Arguments:**

    - `eps`: added to the band powers under the square roots (default `1e-12`).
    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _band_terms(self, power_prediction, power_target, cross):
        coherence = cross / jnp.sqrt(
            (power_prediction + self.eps) * (power_target + self.eps)
        )
        decorrelation = 2.0 * jnp.maximum(power_prediction, power_target) * (
            1.0 - coherence
        )
        return self._amplitude_error(power_prediction, power_target) + decorrelation
