"""Pattern correlation per time step and the time it stays high."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._shapes import Trajectories, as_batched_pair


@eqx.filter_jit
def pearson_correlation(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, " time"]:
    """Pearson correlation between prediction and reference per time step.

    Per sample and step, all channel and spatial entries of the state are flattened
    into one vector; both vectors are centred by their own mean and the correlation is
    `<p, r> / (||p|| ||r||)`. Batched: the mean over the batch of the per-sample values
    (as PDE-Refiner does before computing the high-correlation time). Identical states
    give 1; a constant state gives `nan`.

    States without spatial axes (ODE states `(C,)`, e.g. Lorenz-63) are refused: the
    correlation of the few components of one state says nothing about the prediction
    (on most of the Lorenz attractor `z` exceeds `x` and `y`, so almost any two of its
    points correlate highly, and a flat prediction keeps a high correlation for the
    whole rollout). Score such states with [`trainax_fm.metrics.nrmse`][] or
    [`trainax_fm.metrics.valid_prediction_time`][].

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)` with at least one spatial axis,
        or `(B, T, C, *spatial)` with `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - The correlation per step, shape `(T,)`, values in `[-1, 1]`.
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "pearson_correlation"
    )
    if prediction.ndim < 4:
        state_shape = tuple(prediction.shape[2:])
        raise ValueError(
            f"pearson_correlation: the states have shape {state_shape} (no spatial "
            "axis), but the pattern correlation needs fields `(C, *spatial)`: over the "
            f"{state_shape[0]} component(s) of one ODE state it measures nothing. Score "
            "ODE states with `nrmse` or `valid_prediction_time` instead; for a 1D field "
            "stored without its channel axis, add one: `u[..., None, :]`."
        )
    shape = prediction.shape[:2] + (-1,)
    prediction = prediction.reshape(shape)
    reference = reference.reshape(shape)
    prediction = prediction - jnp.mean(prediction, axis=-1, keepdims=True)
    reference = reference - jnp.mean(reference, axis=-1, keepdims=True)
    covariance = jnp.sum(prediction * reference, axis=-1)
    norms = jnp.sqrt(
        jnp.sum(jnp.square(prediction), axis=-1) * jnp.sum(jnp.square(reference), axis=-1)
    )
    return jnp.mean(covariance / norms, axis=0)


@eqx.filter_jit
def high_correlation_time(
    correlation: Float[Array, "*batch time"], threshold: float = 0.8
) -> Int[Array, "*batch"]:
    """Number of leading steps whose correlation stays at or above `threshold`.

    This is the index of the first step with `correlation < threshold` (`nan` counts
    as below), or `T` if the curve never drops below. The unit is steps: multiply by
    the time step `dt` for physical time. With the default rollout output (no initial
    condition), index `t` holds the state after `t + 1` steps, so the result is the
    number of steps that stayed highly correlated.

    **Arguments:**

    - `correlation`: a correlation curve over the last axis, e.g. the output of
        [`trainax_fm.metrics.pearson_correlation`][]; leading axes are kept.
    - `threshold`: the correlation level (PDE-Refiner uses 0.8).

    **Returns:**

    - Integer array with the leading shape of `correlation`.
    """
    correlation = jnp.asarray(correlation)
    if correlation.ndim < 1:
        raise ValueError(
            "high_correlation_time: `correlation` must have a time axis (last axis), "
            f"got a scalar of shape {tuple(correlation.shape)}."
        )
    return _first_failure(~(correlation >= threshold))


def _first_failure(failed: Array) -> Array:
    """Index of the first True along the last axis, or its length if none is True."""
    num_steps = failed.shape[-1]
    first = jnp.argmax(failed, axis=-1)
    return jnp.where(jnp.any(failed, axis=-1), first, num_steps).astype(jnp.int32)
