"""Pointwise error metrics per time step: MSE, RMSE, nRMSE and their aggregate."""

import numbers
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._shapes import Trajectories, as_batched_pair


def _flat_states(prediction: Array, reference: Array) -> tuple[Array, Array]:
    """`(B, T, C, *spatial)` -> `(B, T, C*prod(spatial))`."""
    shape = prediction.shape[:2] + (-1,)
    return prediction.reshape(shape), reference.reshape(shape)


@eqx.filter_jit
def mse(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, " time"]:
    """Mean squared error per time step.

    Channels and space are combined jointly: the mean of `(prediction - reference)**2`
    over all channel and spatial entries of a state (as `trainax_fm.loss.MSELoss`).

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis; batched results are the
        mean over the batch.

    **Returns:**

    - The MSE per step, shape `(T,)`.
    """
    prediction, reference = as_batched_pair(prediction, reference, batched, "mse")
    prediction, reference = _flat_states(prediction, reference)
    return jnp.mean(jnp.mean(jnp.square(prediction - reference), axis=-1), axis=0)


@eqx.filter_jit
def rmse(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, " time"]:
    """Root mean squared error per time step.

    Per sample and step: the square root of the mean of `(prediction - reference)**2`
    over all channel and spatial entries. Batched: the mean of these per-sample RMSEs
    (not the root of the batch MSE).

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - The RMSE per step, shape `(T,)`.
    """
    prediction, reference = as_batched_pair(prediction, reference, batched, "rmse")
    prediction, reference = _flat_states(prediction, reference)
    per_sample = jnp.sqrt(jnp.mean(jnp.square(prediction - reference), axis=-1))
    return jnp.mean(per_sample, axis=0)


def _nrmse_per_sample(prediction: Array, reference: Array) -> Array:
    """`(B, T, C, *spatial)` pair -> per-sample nRMSE `(B, T)`."""
    prediction, reference = _flat_states(prediction, reference)
    error = jnp.sqrt(jnp.sum(jnp.square(prediction - reference), axis=-1))
    scale = jnp.sqrt(jnp.sum(jnp.square(reference), axis=-1))
    return error / scale


@eqx.filter_jit
def nrmse(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, " time"]:
    """Normalized root mean squared error per time step (APEBench's nRMSE).

    Per sample and step: `||prediction - reference|| / ||reference||`, the Euclidean
    norms taken over all channel and spatial entries jointly. Batched: the mean over
    the batch of the per-sample values. A zero prediction scores exactly 1; a zero
    reference state gives `inf` (or `nan` if the prediction is zero too).

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - The nRMSE per step, shape `(T,)`.
    """
    prediction, reference = as_batched_pair(prediction, reference, batched, "nrmse")
    return jnp.mean(_nrmse_per_sample(prediction, reference), axis=0)


@eqx.filter_jit
def geometric_mean_nrmse(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    num_steps: Optional[int] = None,
    batched: bool = False,
) -> Float[Array, ""]:
    """APEBench's aggregate rollout score: geometric mean of the nRMSE curve.

    First the batch-mean nRMSE per step (see [`trainax_fm.metrics.nrmse`][]), then
    `exp(mean(log(nrmse[:num_steps])))` over the first `num_steps` steps. A step with
    zero error makes the result zero.

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`. Index 0 should be the first predicted state (drop the initial
        condition if the rollout included it).
    - `reference`: the reference trajectory, same shape.
    - `num_steps`: number `K` of leading steps to aggregate (`1 <= K <= T`); `None`
        uses all `T` steps.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar.
    """
    curve = nrmse(prediction, reference, batched=batched)
    num_total = curve.shape[0]
    if num_steps is not None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral):
            raise TypeError(f"`num_steps` must be an int or None, got {num_steps!r}.")
        if not 1 <= num_steps <= num_total:
            raise ValueError(
                f"`num_steps` must lie in [1, {num_total}] (the trajectories have "
                f"{num_total} steps), got {num_steps}."
            )
        curve = curve[: int(num_steps)]
    return jnp.exp(jnp.mean(jnp.log(curve)))
