import math
import numbers
from collections.abc import Sequence
from typing import Callable, Literal, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import BaseLoss
from ._utils import difference

Weight = Union[float, Callable[[Float[Array, ""]], Float[Array, ""]]]

_GRADIENTS = ("spectral", "finite_difference")

# Periodic central differences: d f / dx ~ sum_j c_j (f[i+j] - f[i-j]) / h.
_CENTRAL_DIFFERENCE_COEFFICIENTS = {
    2: (1.0 / 2.0,),
    4: (2.0 / 3.0, -1.0 / 12.0),
    6: (3.0 / 4.0, -3.0 / 20.0, 1.0 / 60.0),
}


def _check_weight(value, name: str) -> Weight:
    if callable(value):
        return value
    if isinstance(value, bool):
        raise TypeError(
            f"SobolevLoss: `{name}` must be a non-negative number or a callable of the "
            f"flow-matching time, got a bool ({value})."
        )
    if not isinstance(value, numbers.Real):
        # Accept concrete 0-d numpy/JAX arrays, nothing else (no strings).
        if not (
            isinstance(value, (np.ndarray, np.generic, jax.Array))
            and np.ndim(value) == 0
        ):
            raise TypeError(
                f"SobolevLoss: `{name}` must be a non-negative number or a callable "
                f"`t -> weight` of the flow-matching time, got {value!r} of type "
                f"{type(value).__name__}."
            )
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(
            f"SobolevLoss: `{name}` must be a finite number >= 0, got {value}."
        )
    return value


def _check_domain_extent(value) -> Union[float, tuple[float, ...]]:
    if value is None:
        return 2.0 * math.pi
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) == 0:
            raise ValueError(
                "SobolevLoss: `domain_extent` must be a positive number or a non-empty "
                "sequence of positive numbers (one per spatial axis), got an empty "
                "sequence."
            )
        return tuple(_check_domain_extent_number(v) for v in value)
    return _check_domain_extent_number(value)


def _check_domain_extent_number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "SobolevLoss: `domain_extent` must be a positive number (or one per spatial "
            f"axis), got {value!r} of type {type(value).__name__}."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"SobolevLoss: `domain_extent` must be a finite number > 0, got {value}."
        )
    return float(value)


class SobolevLoss(BaseLoss):
    """Sobolev (H^1-type) loss: error plus error-gradient mismatch of one state.

    For a state `e = prediction - target` (or `e = prediction` when `target=None`) of
    shape `(C, *spatial)` with one, two or three (or more) spatial axes,

    ```
    loss = alpha * mean(e**2) + beta * mean(|grad e|**2),
    |grad e|**2 = sum over spatial axes d of (d e / d x_d)**2,
    ```

    where the means run over all channel and grid entries. The gradient term penalises
    the mismatch of gradients that shows up as blur in fluid fields; `beta=0` gives
    `alpha * MSELoss`.

    The domain is periodic with `N_d` equispaced points and extent `L_d` per spatial
    axis (grid spacing `L_d / N_d`).

    - `gradient="spectral"` (default): exact derivative of the trigonometric
        interpolant. Per axis, a real FFT, multiplication by `i * 2*pi*k / L_d`, and an
        inverse FFT. For even `N_d` the Nyquist mode's derivative is set to zero (its
        derivative is not a real grid function). Only meaningful for periodic data.
    - `gradient="finite_difference"`: periodic central differences (`jnp.roll`) of
        accuracy order `fd_order` (2, 4 or 6).

    **Choice of `domain_extent`:** the default `None` means `2*pi` on every axis, so
    Fourier mode `k` has wavenumber `k` and the loss is the standard H^1 norm on the
    torus, `sum_k (alpha + beta*|k|**2) |e_k|**2` up to normalisation; its balance
    between the two terms does not depend on the resolution. Pass the physical extent
    (e.g. `1.0` for exponax/APEBench's unit domain) to get physical gradients; then mode
    `k` is weighted by `(2*pi*k/L)**2` and `beta` usually needs to be smaller.

    **Time-dependent weights:** `alpha` and `beta` may each be a callable `t -> scalar`
    of the flow-matching time `t` in `[0, 1]` (e.g. an optax schedule). Such a loss
    needs the time: call it as `loss(pred, target, time=t)` (`t` of shape `(B,)` or a
    scalar), or via `single_batch_at_time`. Calling it without a time raises a
    `ValueError`.

    A state without spatial axes (an ODE state `(C,)`) raises a `ValueError` at call
    time; use `MSELoss` for those.

    **Arguments:**

    - `alpha`: non-negative weight of the squared error, or a callable of the
        flow-matching time. Default `1.0`.
    - `beta`: non-negative weight of the squared gradient error, or a callable of the
        flow-matching time. Default `1.0`.
    - `gradient`: `"spectral"` (default) or `"finite_difference"`.
    - `domain_extent`: extent `L` of the periodic domain, a positive number or one per
        spatial axis; `None` (default) means `2*pi` (integer wavenumbers).
    - `fd_order`: accuracy order of the central differences, 2 (default), 4 or 6; only
        used with `gradient="finite_difference"`.
    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    alpha: Weight = eqx.field(static=True)
    beta: Weight = eqx.field(static=True)
    gradient: Literal["spectral", "finite_difference"] = eqx.field(static=True)
    domain_extent: Union[float, tuple[float, ...]] = eqx.field(static=True)
    fd_order: int = eqx.field(static=True)

    def __init__(
        self,
        alpha: Weight = 1.0,
        beta: Weight = 1.0,
        *,
        gradient: Literal["spectral", "finite_difference"] = "spectral",
        domain_extent: Union[None, float, Sequence[float]] = None,
        fd_order: int = 2,
        batch_reduction: Callable = jnp.mean,
    ):
        self.alpha = _check_weight(alpha, "alpha")
        self.beta = _check_weight(beta, "beta")
        if not isinstance(gradient, str) or gradient not in _GRADIENTS:
            raise ValueError(
                f"SobolevLoss: `gradient` must be one of {_GRADIENTS}, got {gradient!r}."
            )
        self.gradient = gradient
        self.domain_extent = _check_domain_extent(domain_extent)
        if (
            isinstance(fd_order, bool)
            or fd_order not in _CENTRAL_DIFFERENCE_COEFFICIENTS
        ):
            raise ValueError(
                "SobolevLoss: `fd_order` must be one of "
                f"{tuple(_CENTRAL_DIFFERENCE_COEFFICIENTS)}, got {fd_order!r}."
            )
        self.fd_order = int(fd_order)
        self.batch_reduction = batch_reduction

    def _extents(self, state_shape: tuple[int, ...]) -> tuple[float, ...]:
        num_spatial = len(state_shape) - 1
        if num_spatial < 1:
            raise ValueError(
                f"SobolevLoss needs a state with at least one spatial axis, shaped "
                f"(C, *spatial), but got a state of shape {tuple(state_shape)} (no "
                "spatial axes, e.g. an ODE state). There is no spatial gradient to "
                "penalise; use MSELoss instead."
            )
        if isinstance(self.domain_extent, tuple):
            if len(self.domain_extent) != num_spatial:
                raise ValueError(
                    f"SobolevLoss: `domain_extent` has {len(self.domain_extent)} "
                    f"entries but the state of shape {tuple(state_shape)} has "
                    f"{num_spatial} spatial axes; pass one extent per spatial axis or a "
                    "single number."
                )
            return self.domain_extent
        return (self.domain_extent,) * num_spatial

    def spatial_gradient(
        self, state: Float[Array, "num_channels ..."]
    ) -> Float[Array, "num_spatial_dims num_channels ..."]:
        """Periodic gradient of one state along every spatial axis.

        Uses the same method (`gradient`, `domain_extent`, `fd_order`) as the loss.

        **Arguments:**

        - `state`: one state of shape `(C, *spatial)` with at least one spatial axis.

        **Returns:**

        - The partial derivatives stacked on a new leading axis, shape
            `(D, C, *spatial)` with `D = len(spatial)`.
        """
        state = jnp.asarray(state)
        extents = self._extents(jnp.shape(state))
        if not jnp.issubdtype(state.dtype, jnp.inexact):
            state = state.astype(jnp.result_type(float))
        derivatives = []
        for axis, extent in enumerate(extents, start=1):
            if self.gradient == "spectral":
                derivatives.append(_spectral_derivative(state, axis, extent))
            else:
                derivatives.append(
                    _central_difference(state, axis, extent, self.fd_order)
                )
        return jnp.stack(derivatives)

    def _value(self, error, alpha, beta) -> Float[Array, ""]:
        # Checks the spatial axes even when the gradient term is skipped.
        self._extents(jnp.shape(error))
        value = alpha * jnp.mean(jnp.square(error))
        if not (isinstance(beta, float) and beta == 0.0):
            squared_gradient = jnp.sum(jnp.square(self.spatial_gradient(error)), axis=0)
            value = value + beta * jnp.mean(squared_gradient)
        return value

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        for name, weight in (("alpha", self.alpha), ("beta", self.beta)):
            if callable(weight):
                raise ValueError(
                    f"SobolevLoss: `{name}` is a function of the flow-matching time, "
                    "but the loss was called without a time. Call it as "
                    "`loss(prediction, target, time=t)` (or `single_batch_at_time`), "
                    f"or pass a constant `{name}`."
                )
        error = difference("SobolevLoss", prediction, target)
        return self._value(error, self.alpha, self.beta)

    def single_batch_at_time(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]],
        time: Float[Array, ""],
    ) -> Float[Array, ""]:
        alpha = _weight_at(self.alpha, "alpha", time)
        beta = _weight_at(self.beta, "beta", time)
        error = difference("SobolevLoss", prediction, target)
        return self._value(error, alpha, beta)


def _weight_at(weight: Weight, name: str, time) -> Union[float, Float[Array, ""]]:
    if not callable(weight):
        return weight
    value = jnp.asarray(weight(time))
    if value.shape != ():
        raise ValueError(
            f"SobolevLoss: the callable `{name}` must return a scalar for a scalar time, "
            f"got shape {value.shape}."
        )
    return value


def _spectral_derivative(
    state: Float[Array, "..."], axis: int, extent: float
) -> Float[Array, "..."]:
    num_points = state.shape[axis]
    wavenumbers = 2.0 * np.pi / extent * np.arange(num_points // 2 + 1)
    if num_points % 2 == 0:
        wavenumbers[-1] = 0.0  # the Nyquist mode has no real derivative
    broadcast_shape = [1] * state.ndim
    broadcast_shape[axis] = wavenumbers.size
    wavenumbers = jnp.asarray(wavenumbers.reshape(broadcast_shape), dtype=state.dtype)
    state_hat = jnp.fft.rfft(state, axis=axis)
    return jnp.fft.irfft(1j * wavenumbers * state_hat, n=num_points, axis=axis)


def _central_difference(
    state: Float[Array, "..."], axis: int, extent: float, order: int
) -> Float[Array, "..."]:
    spacing = extent / state.shape[axis]
    derivative = jnp.zeros_like(state)
    for shift, coefficient in enumerate(
        _CENTRAL_DIFFERENCE_COEFFICIENTS[order], start=1
    ):
        forward = jnp.roll(state, -shift, axis=axis)
        backward = jnp.roll(state, shift, axis=axis)
        derivative = derivative + coefficient * (forward - backward)
    return derivative / spacing
