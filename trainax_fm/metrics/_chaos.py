"""Predictability horizon of chaotic rollouts: the valid prediction time."""

import numbers
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._correlation import _first_failure
from ._errors import _flat_states, _nrmse_per_sample
from ._forecast import running_smape
from ._shapes import Trajectories, as_batched_pair

_DEFAULT_THRESHOLDS = {"nrmse": 0.5, "smape": 30.0}


@eqx.filter_jit
def valid_prediction_time(
    prediction: Trajectories,
    reference: Trajectories,
    *,
    threshold: Optional[float] = None,
    dt: float = 1.0,
    lyapunov_exponent: Optional[float] = None,
    batched: bool = False,
    criterion: str = "nrmse",
) -> Float[Array, ""]:
    """Valid prediction time: how long the forecast error stays at or below `threshold`.

    Per sample, an error curve over the steps is scanned for its first step above
    `threshold` (`nan` counts as above); the number of steps before it (all `T` if it
    never crosses) is multiplied by `dt`. The error curve is, by `criterion`:

    - `"nrmse"` (default threshold 0.5): the nRMSE per step
        `||pred_t - ref_t|| / ||ref_t||` (see [`trainax_fm.metrics.nrmse`][]);
    - `"smape"` (default threshold 30, in percent): the running sMAPE, the sMAPE of the
        first `t + 1` steps `200/(t+1) * sum_{s<=t} mean_i |y - yhat| / (|y| + |yhat|)`
        (see [`trainax_fm.metrics.smape`][]), the criterion of the zero-shot
        benchmarks of chaotic-systems forecasters (dysts, Panda).
 With the default rollout output (no initial
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
    - `threshold`: the tolerated error; `None` for the criterion's default (nRMSE 0.5;
        0.3-0.5 are common; sMAPE 30).
    - `dt`: the time between two consecutive states.
    - `lyapunov_exponent`: the largest Lyapunov exponent of the system, or `None` to
        return physical time.
    - `batched`: whether the leading axis is a batch axis.
    - `criterion`: `"nrmse"` or `"smape"`, the error curve (see above).

    **Returns:**

    - A scalar time (in units of `dt`, or Lyapunov times).
    """
    if not isinstance(criterion, str) or criterion not in _DEFAULT_THRESHOLDS:
        raise ValueError(
            f"`criterion` must be one of {tuple(_DEFAULT_THRESHOLDS)}, got {criterion!r}."
        )
    if threshold is None:
        threshold = _DEFAULT_THRESHOLDS[criterion]
    for value, name in ((threshold, "threshold"), (dt, "dt")):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"`{name}` must be positive, got {value}.")
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "valid_prediction_time"
    )
    if criterion == "nrmse":
        error = _nrmse_per_sample(prediction, reference)
    else:
        error = running_smape(*_flat_states(prediction, reference))
    num_valid = _first_failure(~(error <= threshold))
    time = jnp.mean(num_valid.astype(error.dtype)) * dt
    if lyapunov_exponent is not None:
        time = time * lyapunov_exponent
    return time
