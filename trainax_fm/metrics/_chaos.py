"""Predictability horizon of chaotic rollouts: the valid prediction time."""

import numbers
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._correlation import _first_failure
from ._errors import _nrmse_per_sample
from ._shapes import Trajectories, as_batched_pair


@eqx.filter_jit
def valid_prediction_time(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    threshold: float = 0.5,
    dt: float = 1.0,
    lyapunov_exponent: Optional[float] = None,
    batched: bool = False,
) -> Float[Array, ""]:
    """Valid prediction time: how long the nRMSE stays at or below `threshold`.

    Per sample, the nRMSE curve `||pred_t - ref_t|| / ||ref_t||` (see
    [`trainax_fm.metrics.nrmse`][]) is scanned for its first step above `threshold`
    (`nan` counts as above); the number of steps before it (all `T` if it never
    crosses) is multiplied by `dt`. With the default rollout output (no initial
    condition; index `t` is the state at time `(t + 1) * dt`) this is the time of the
    last state before the first crossing; with the initial condition included it is
    the time of the first crossing. With `lyapunov_exponent` (`lambda`, per unit of
    time) the result is given in Lyapunov times, `t * lambda`. Batched: the mean over
    the batch of the per-sample times.

    Note the normalisation is by the reference state's norm, not by a climatological
    standard deviation; both agree for fields with zero mean and stationary variance.

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)` (ODE: `(T, C)`), or
        `(B, T, C, *spatial)` with `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `threshold`: the tolerated nRMSE (0.5 by default; 0.3-0.5 are common).
    - `dt`: the time between two consecutive states.
    - `lyapunov_exponent`: the largest Lyapunov exponent of the system, or `None` to
        return physical time.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar time (in units of `dt`, or Lyapunov times).
    """
    for value, name in ((threshold, "threshold"), (dt, "dt")):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"`{name}` must be positive, got {value}.")
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "valid_prediction_time"
    )
    error = _nrmse_per_sample(prediction, reference)
    num_valid = _first_failure(~(error <= threshold))
    time = jnp.mean(num_valid.astype(error.dtype)) * dt
    if lyapunov_exponent is not None:
        time = time * lyapunov_exponent
    return time
