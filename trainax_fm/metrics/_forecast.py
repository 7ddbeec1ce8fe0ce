"""Forecast scores at cumulative horizons: MSE, MAE, sMAPE and Spearman correlation.

These are the scores of time-series forecasting (and of the zero-shot benchmarks of
chaotic-systems forecasters such as Panda and dysts): each is computed over the first
`h` forecast steps for a few horizons `h`, so one number per horizon says how good the
forecast is up to that lead time.
"""

import numbers
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._errors import _flat_states
from ._shapes import Trajectories, as_batched_pair

FORECAST_METRICS = ("mse", "mae", "smape", "spearman")


def _smape_terms(prediction: Array, reference: Array) -> Array:
    """`200 * |y - yhat| / (|y| + |yhat|)` per entry, 0 where both are 0."""
    difference = jnp.abs(prediction - reference)
    total = jnp.abs(prediction) + jnp.abs(reference)
    both_zero = total == 0
    return 200.0 * jnp.where(both_zero, 0.0, difference / jnp.where(both_zero, 1.0, total))


def _running_mean(per_step: Array) -> Array:
    """`(B, T) -> (B, T)`: entry `t` is the mean of the first `t + 1` steps."""
    steps = jnp.arange(1, per_step.shape[1] + 1, dtype=per_step.dtype)[None]
    return jnp.cumsum(per_step, axis=1) / steps


def running_smape(prediction: Array, reference: Array) -> Array:
    """`(B, T, N)` pairs -> `(B, T)`: the sMAPE of the first `t + 1` steps."""
    return _running_mean(jnp.mean(_smape_terms(prediction, reference), axis=-1))


@eqx.filter_jit
def smape(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, " time"]:
    """Symmetric mean absolute percentage error per time step, in percent (0 to 200).

    Per step `t`: `200 / n * sum_i |y_i - yhat_i| / (|y_i| + |yhat_i|)` over the `n`
    channel and spatial entries of the state (`y` the reference, `yhat` the
    prediction); an entry with `y = yhat = 0` contributes 0 (a perfect forecast of 0).
    The sMAPE over a horizon `h`, `200/h * sum_{t<h} ...` as in forecasting
    benchmarks, is the mean of the first `h` values (see
    [`trainax_fm.metrics.forecast_metrics`][]).

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)`, or `(B, T, C, *spatial)` with
        `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis; batched results are the
        mean over the batch.

    **Returns:**

    - The sMAPE per step, shape `(T,)`.
    """
    prediction, reference = as_batched_pair(prediction, reference, batched, "smape")
    prediction, reference = _flat_states(prediction, reference)
    return jnp.mean(jnp.mean(_smape_terms(prediction, reference), axis=-1), axis=0)


def _average_ranks(series: Array) -> Array:
    """Ranks (1-based) along the last axis, ties sharing their average rank."""
    below = jnp.sum(series[..., None, :] < series[..., :, None], axis=-1)
    equal = jnp.sum(series[..., None, :] == series[..., :, None], axis=-1)
    return below + (equal + 1) / 2


def _spearman_per_sample(prediction: Array, reference: Array) -> Array:
    """`(B, T, N)` -> `(B,)`: rank correlation over time per entry, mean over entries."""
    ranks_p = _average_ranks(jnp.swapaxes(prediction, 1, 2))  # (B, N, T)
    ranks_r = _average_ranks(jnp.swapaxes(reference, 1, 2))
    centred_p = ranks_p - jnp.mean(ranks_p, axis=-1, keepdims=True)
    centred_r = ranks_r - jnp.mean(ranks_r, axis=-1, keepdims=True)
    covariance = jnp.sum(centred_p * centred_r, axis=-1)
    norms = jnp.sqrt(jnp.sum(centred_p**2, axis=-1) * jnp.sum(centred_r**2, axis=-1))
    # A constant series has no order to correlate: nan, as scipy.stats.spearmanr.
    correlation = jnp.where(norms > 0, covariance / jnp.where(norms > 0, norms, 1.0), jnp.nan)
    return jnp.mean(correlation, axis=-1)


@eqx.filter_jit
def spearman_correlation(
    prediction: Trajectories, reference: Trajectories, *, batched: bool = False
) -> Float[Array, ""]:
    """Spearman rank correlation over time, per channel, averaged over channels.

    For every channel (and spatial entry) the `T` predicted values and the `T`
    reference values are ranked over time (tied values share their average rank) and
    the Pearson correlation of the two rank series is taken; the result is the mean
    over channels (and over the batch). It rewards forecasts that rise and fall when
    the reference does, whatever their amplitude. A channel whose prediction or
    reference is constant over the `T` steps has no ranks to correlate and makes the
    result `nan` (as `scipy.stats.spearmanr`), e.g. a forecast that repeats the last
    state. Cost: `O(T^2)` comparisons per channel.

    **Arguments:**

    - `prediction`: a trajectory `(T, C, *spatial)` with `T >= 2`, or
        `(B, T, C, *spatial)` with `batched=True`.
    - `reference`: the reference trajectory, same shape.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A scalar in `[-1, 1]` (or `nan`).
    """
    prediction, reference = as_batched_pair(
        prediction, reference, batched, "spearman_correlation"
    )
    if prediction.shape[1] < 2:
        raise ValueError(
            "spearman_correlation: a correlation over time needs at least 2 steps, got "
            f"trajectories of shape {tuple(prediction.shape)} (batched={batched})."
        )
    prediction, reference = _flat_states(prediction, reference)
    return jnp.mean(_spearman_per_sample(prediction, reference))


def check_horizons(horizons, num_steps: int, name: str) -> tuple[int, ...]:
    """Horizons as a tuple of increasing ints in `1 ... num_steps`."""
    if isinstance(horizons, numbers.Integral) and not isinstance(horizons, bool):
        horizons = (horizons,)
    if not isinstance(horizons, Sequence) or len(horizons) == 0:
        raise TypeError(
            f"{name}: `horizons` must be a non-empty sequence of ints (e.g. (4, 8, 16)), "
            f"got {horizons!r}."
        )
    checked = []
    for horizon in horizons:
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral):
            raise TypeError(f"{name}: every horizon must be an int, got {horizon!r}.")
        if not 1 <= horizon <= num_steps:
            raise ValueError(
                f"{name}: horizon {horizon} lies outside 1 ... {num_steps} (the forecast "
                f"has {num_steps} steps); forecast longer or drop the horizon."
            )
        checked.append(int(horizon))
    if sorted(set(checked)) != checked:
        raise ValueError(f"{name}: `horizons` must increase strictly, got {tuple(checked)}.")
    return tuple(checked)


@eqx.filter_jit
def forecast_metrics(
    prediction: Trajectories,
    reference: Trajectories,
    horizons: Sequence[int],
    *,
    batched: bool = False,
) -> dict[str, Float[Array, " horizons"]]:
    """MSE, MAE, sMAPE and Spearman correlation of a forecast up to each horizon.

    For a horizon `h` every score covers the first `h` forecast steps (cumulative):

    - `"mse"`, `"mae"`: mean squared / absolute error over those steps and all entries;
    - `"smape"`: `200/h * sum_{t<h} mean_i |y_i - yhat_i| / (|y_i| + |yhat_i|)`, in
        percent (see [`trainax_fm.metrics.smape`][]);
    - `"spearman"`: [`trainax_fm.metrics.spearman_correlation`][] over those steps
        (`nan` for `h = 1`, where a rank correlation is undefined).

    Batched: the mean over the batch of the per-sample scores.

    **Arguments:**

    - `prediction`: the forecast `(T, C, *spatial)` (index 0 is the first forecast
        step), or `(B, T, C, *spatial)` with `batched=True`.
    - `reference`: the true continuation, same shape.
    - `horizons`: increasing Python ints in `1 ... T` (static), e.g. `(4, 8, 16)`.
    - `batched`: whether the leading axis is a batch axis.

    **Returns:**

    - A dict from the names above to arrays of one value per horizon, `(len(horizons),)`.
    """
    prediction, reference = as_batched_pair(prediction, reference, batched, "forecast_metrics")
    horizons = check_horizons(horizons, prediction.shape[1], "forecast_metrics")
    prediction, reference = _flat_states(prediction, reference)  # (B, T, N)
    error = prediction - reference
    mse = _running_mean(jnp.mean(jnp.square(error), axis=-1))
    mae = _running_mean(jnp.mean(jnp.abs(error), axis=-1))
    smape = running_smape(prediction, reference)
    index = jnp.asarray(horizons) - 1
    scores = {
        "mse": jnp.mean(mse[:, index], axis=0),
        "mae": jnp.mean(mae[:, index], axis=0),
        "smape": jnp.mean(smape[:, index], axis=0),
    }
    spearman = [
        jnp.mean(_spearman_per_sample(prediction[:, :h], reference[:, :h]))
        if h > 1
        else jnp.asarray(jnp.nan, prediction.dtype)
        for h in horizons
    ]
    scores["spearman"] = jnp.stack(spearman)
    return scores
