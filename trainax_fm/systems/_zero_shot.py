"""Zero-shot evaluation of a forecaster on held-out systems, against naive baselines."""

import csv
import dataclasses
import io
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._argument_checks import check_bool, check_positive_int
from .._rollout._inference import rollout
from .._stepper._block import BlockStepper
from ..metrics._chaos import valid_prediction_time
from ..metrics._forecast import FORECAST_METRICS, check_horizons, forecast_metrics
from ..metrics._long_run import power_spectrum_distance

FORECASTER = "forecaster"
BASELINES = ("repeat_last", "context_mean")
MEDIAN = "median"


@dataclasses.dataclass(frozen=True)
class ZeroShotTable:
    """Scores of a forecaster and two naive baselines per held-out system.

    Each value is the median over a system's forecast windows; the rows named
    `"median"` hold the median over systems of the per-system values. `nan` entries
    (e.g. the Spearman correlation of a constant baseline forecast) are left out of
    the medians.

    **Attributes:**

    - `models`: `("forecaster", "repeat_last", "context_mean")` (or the forecaster
        alone).
    - `systems`: the system names in order of first appearance, then `"median"`.
    - `columns`: `"<metric>@<h>"` for every metric of
        [`trainax_fm.metrics.forecast_metrics`][] and horizon `h`, then `"vpt"` (valid
        prediction time by running sMAPE, in `vpt_unit`) and `"spectrum"`
        ([`trainax_fm.metrics.power_spectrum_distance`][] over the whole forecast).
    - `values`: `(len(models), len(systems), len(columns))`, float64.
    - `num_windows`: forecast windows scored per system, `(len(systems) - 1,)`.
    - `vpt_unit`: `"Lyapunov times"`, `"time"` or `"steps"` (it may mix per system
        when only some have a Lyapunov exponent; then `"mixed"`, see `vpt_units`).
    - `vpt_units`: the unit of `vpt` per system (without the median row).
    """

    models: tuple[str, ...]
    systems: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray
    num_windows: tuple[int, ...]
    vpt_unit: str
    vpt_units: tuple[str, ...]

    def value(self, model: str, system: str, column: str) -> float:
        """One entry, e.g. `table.value("forecaster", "median", "smape@16")`."""
        for name, options, what in (
            (model, self.models, "model"),
            (system, self.systems, "system"),
            (column, self.columns, "column"),
        ):
            if name not in options:
                raise KeyError(f"Unknown {what} {name!r}; the table has {options}.")
        return float(
            self.values[
                self.models.index(model), self.systems.index(system), self.columns.index(column)
            ]
        )

    def _rows(self, precision: int) -> list[list[str]]:
        rows = []
        for m, model in enumerate(self.models):
            for s, system in enumerate(self.systems):
                rows.append(
                    [model, system]
                    + [f"{value:.{precision}g}" for value in self.values[m, s]]
                )
        return rows

    def to_markdown(self, *, precision: int = 4) -> str:
        """The table as GitHub Markdown, one row per model and system.

        **Arguments:**

        - `precision`: significant digits of the values.

        **Returns:**

        - The Markdown text (with a trailing newline).
        """
        precision = check_positive_int(precision, "precision")
        header = ["model", "system", *self.columns]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * 2 + ["---:"] * len(self.columns)) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows(precision)]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: Optional[str] = None, *, precision: int = 8) -> str:
        """The table as CSV (header `model,system,<columns>`), written to `path` if given.

        **Arguments:**

        - `path`: a file to write, or `None` to only return the text.
        - `precision`: significant digits of the values.

        **Returns:**

        - The CSV text.
        """
        precision = check_positive_int(precision, "precision")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["model", "system", *self.columns])
        writer.writerows(self._rows(precision))
        text = buffer.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as file:
                file.write(text)
        return text


def default_horizons(prediction_length: int, forecast_length: int) -> tuple[int, ...]:
    """The horizons `(1, 2, 4, ...) * prediction_length` that fit in `forecast_length`.

    **Arguments:**

    - `prediction_length`: the states a forecaster predicts per call.
    - `forecast_length`: the states forecast in all.

    **Returns:**

    - The increasing horizons in steps; `(forecast_length,)` if even one block does
        not fit.
    """
    prediction_length = check_positive_int(prediction_length, "prediction_length")
    forecast_length = check_positive_int(forecast_length, "forecast_length")
    horizons, multiple = [], 1
    while multiple * prediction_length <= forecast_length:
        horizons.append(multiple * prediction_length)
        multiple *= 2
    return tuple(horizons) or (forecast_length,)


def _window_starts(num_time_steps: int, span: int, num_windows: int) -> np.ndarray:
    """Up to `num_windows` evenly spaced, distinct starts of windows of `span` steps."""
    last = num_time_steps - span
    return np.unique(np.round(np.linspace(0, last, num_windows)).astype(int))


def _per_system(name: str, value, systems: Sequence[str], what: str) -> dict[str, float]:
    """A scalar or a mapping system -> value, as a dict over `systems`."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(systems))
        if unknown:
            raise ValueError(
                f"`{name}` names systems that are not in `systems`: {unknown}; it must map "
                f"system names to {what}."
            )
        items = dict(value)
    else:
        items = {system: value for system in systems}
    for system, entry in items.items():
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real) or not entry > 0:
            raise ValueError(
                f"`{name}` must be positive {what} (a number or a mapping from system "
                f"names), got {entry!r} for {system!r}."
            )
    return {system: float(entry) for system, entry in items.items()}


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan slices stay nan
        return np.nanmedian(values, axis=axis)


def zero_shot_table(
    forecaster: Callable,
    trajectories: Float[Array, "num_trajectories time channels"],
    systems: Sequence[str],
    *,
    context_length: int,
    prediction_length: int,
    forecast_length: Optional[int] = None,
    horizons: Optional[Sequence[int]] = None,
    num_windows: int = 4,
    lyapunov_exponents: Optional[Union[float, Mapping[str, float]]] = None,
    dt: Optional[Union[float, Mapping[str, float]]] = None,
    vpt_threshold: float = 30.0,
    baselines: bool = True,
    batch_size: Optional[int] = None,
) -> ZeroShotTable:
    """Score a forecaster zero-shot on held-out systems, with naive baselines.

    From every trajectory, `num_windows` evenly spaced windows of `context_length +
    forecast_length` steps are cut (fewer if the trajectory is short). The forecaster
    sees the first `context_length` states and is rolled out on a sliding context
    ([`trainax_fm.BlockStepper.sliding`][], [`trainax_fm.rollout`][]) for
    `forecast_length` states; the forecast is scored against the window's remaining
    states with [`trainax_fm.metrics.forecast_metrics`][] at `horizons`, the valid
    prediction time by running sMAPE
    ([`trainax_fm.metrics.valid_prediction_time`][] with `criterion="smape"`) and the
    [`trainax_fm.metrics.power_spectrum_distance`][] of the whole forecast. Each score
    is the median over a system's windows, and a last row holds the median over
    systems. Two baselines are scored the same way: `repeat_last` (the last context
    state, held) and `context_mean` (the mean of the context, held).

    Call it with a catalogue's test split: its `(S, T, C)` trajectories and their
    per-trajectory system names.

    **Arguments:**

    - `forecaster`: maps `(context_length*C,)` to `(prediction_length*C,)` (e.g.
        [`trainax_fm.networks.PatchForecaster`][]), or a [`trainax_fm.BlockStepper`][]
        whose `num_context_steps` is `context_length`.
    - `trajectories`: `(S, T, C)` held-out trajectories.
    - `systems`: `S` system names, one per trajectory (several trajectories may share
        one system).
    - `context_length`, `prediction_length`: the forecaster's context and block size.
    - `forecast_length`: states to forecast per window (default: `8*prediction_length`
        or what fits in `T - context_length`).
    - `horizons`: increasing step counts in `1 ... forecast_length`; default
        `(1, 2, 4, ...) * prediction_length`.
    - `num_windows`: windows per trajectory.
    - `lyapunov_exponents`: the maximal Lyapunov exponent, one number or a mapping
        from system names; with `dt`, a system's `vpt` is in Lyapunov times.
    - `dt`: the time step, one number or a mapping from system names; without it
        `vpt` counts steps.
    - `vpt_threshold`: the running sMAPE (percent) at which a forecast stops being
        valid.
    - `baselines`: whether to score the two baselines.
    - `batch_size`: windows rolled out at once (default: all).

    **Returns:**

    - A [`trainax_fm.systems.ZeroShotTable`][] with `to_markdown()` and `to_csv()`.
    """
    trajectories = np.asarray(trajectories)
    if trajectories.ndim != 3:
        raise ValueError(
            "zero_shot_table: `trajectories` must be shaped (S, T, C) (ODE trajectories), "
            f"got {trajectories.shape}."
        )
    num_trajectories, num_time_steps, num_channels = trajectories.shape
    if isinstance(systems, str) or not isinstance(systems, Sequence):
        raise TypeError(
            "zero_shot_table: `systems` must be a sequence of system names, one per "
            f"trajectory, got {type(systems).__name__}."
        )
    if len(systems) != num_trajectories:
        raise ValueError(
            f"zero_shot_table: `systems` has {len(systems)} names but `trajectories` has "
            f"S = {num_trajectories} trajectories; pass one name per trajectory."
        )
    systems = [str(system) for system in systems]
    if MEDIAN in systems:
        raise ValueError(
            f"zero_shot_table: a system is named {MEDIAN!r}, the name of the table's row "
            "of medians over systems; rename it."
        )
    context_length = check_positive_int(context_length, "context_length")
    prediction_length = check_positive_int(prediction_length, "prediction_length")
    num_windows = check_positive_int(num_windows, "num_windows")
    baselines = check_bool(baselines, "baselines")
    room = num_time_steps - context_length
    if room < 2:
        raise ValueError(
            f"zero_shot_table: trajectories of T = {num_time_steps} steps leave "
            f"{room} step(s) to forecast after a context of {context_length}; at least 2 "
            "are needed. Use longer trajectories or a shorter context."
        )
    if forecast_length is None:
        forecast_length = min(8 * prediction_length, room)
    forecast_length = check_positive_int(forecast_length, "forecast_length", minimum=2)
    if forecast_length > room:
        raise ValueError(
            f"zero_shot_table: `forecast_length` ({forecast_length}) + `context_length` "
            f"({context_length}) exceeds the trajectories' T = {num_time_steps} steps; "
            f"forecast at most {room} steps."
        )
    if horizons is None:
        horizons = default_horizons(prediction_length, forecast_length)
    horizons = check_horizons(horizons, forecast_length, "zero_shot_table")
    if isinstance(vpt_threshold, bool) or not isinstance(vpt_threshold, numbers.Real) or not (
        vpt_threshold > 0
    ):
        raise ValueError(f"`vpt_threshold` must be a positive number, got {vpt_threshold!r}.")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    names = list(dict.fromkeys(systems))
    exponents = _per_system("lyapunov_exponents", lyapunov_exponents, names, "exponents")
    steps = _per_system("dt", dt, names, "time steps")

    if isinstance(forecaster, BlockStepper):
        if forecaster.num_context_steps != context_length:
            raise ValueError(
                f"zero_shot_table: the BlockStepper sees {forecaster.num_context_steps} "
                f"states but `context_length` is {context_length}."
            )
        if forecaster.num_output_steps != prediction_length:
            raise ValueError(
                f"zero_shot_table: the BlockStepper predicts {forecaster.num_output_steps} "
                f"states per call but `prediction_length` is {prediction_length}."
            )
        stepper = forecaster
    elif callable(forecaster):
        stepper = BlockStepper.sliding(forecaster, prediction_length, context_length)
    else:
        raise TypeError(
            f"zero_shot_table: `forecaster` must be callable, got {type(forecaster).__name__}."
        )

    # Every window of every trajectory, with the system it belongs to.
    span = context_length + forecast_length
    windows, owners = [], []
    for index in range(num_trajectories):
        for start in _window_starts(num_time_steps, span, num_windows):
            windows.append(trajectories[index, start : start + span])
            owners.append(systems[index])
    windows = jnp.asarray(np.stack(windows))
    contexts, futures = windows[:, :context_length], windows[:, context_length:]

    num_calls = math.ceil(forecast_length / prediction_length)
    forecasts = {FORECASTER: _roll_out(stepper, contexts, num_calls, batch_size)}
    forecasts[FORECASTER] = forecasts[FORECASTER][:, :forecast_length]
    if baselines:
        forecasts["repeat_last"] = jnp.broadcast_to(contexts[:, -1:], futures.shape)
        forecasts["context_mean"] = jnp.broadcast_to(
            jnp.mean(contexts, axis=1, keepdims=True), futures.shape
        )

    columns = [f"{metric}@{h}" for metric in FORECAST_METRICS for h in horizons]
    columns += ["vpt", "spectrum"]
    models = tuple(forecasts)
    values = np.full((len(models), len(names) + 1, len(columns)), np.nan)
    owners = np.asarray(owners)
    vpt_units = []
    for s, system in enumerate(names):
        rate = exponents.get(system) if system in steps else None
        vpt_scale = steps.get(system, 1.0) * (rate if rate is not None else 1.0)
        vpt_units.append(
            "Lyapunov times" if rate is not None else "time" if system in steps else "steps"
        )
        mask = owners == system
        for m, model in enumerate(models):
            scores = _window_scores(
                forecasts[model][mask], futures[mask], horizons, float(vpt_threshold)
            )
            scores[:, -2] *= vpt_scale
            values[m, s] = _nanmedian(scores, axis=0)
    values[:, -1] = _nanmedian(values[:, :-1], axis=1)
    units = set(vpt_units)
    return ZeroShotTable(
        models=models,
        systems=tuple(names) + (MEDIAN,),
        columns=tuple(columns),
        values=values,
        num_windows=tuple(int(np.sum(owners == system)) for system in names),
        vpt_unit=units.pop() if len(units) == 1 else "mixed",
        vpt_units=tuple(vpt_units),
    )


def _roll_out(stepper, contexts, num_calls: int, batch_size: Optional[int]):
    """Sliding-context forecasts `(N, num_calls*k, C)` of all windows, in chunks."""
    num = contexts.shape[0]
    if batch_size is None or batch_size >= num:
        return rollout(
            stepper, contexts, num_calls, num_input_steps=contexts.shape[1], batched=True
        )
    # Pad to whole chunks so every chunk has the same shape (one compilation).
    padded = -(-num // batch_size) * batch_size
    contexts = jnp.concatenate(
        [contexts, jnp.broadcast_to(contexts[:1], (padded - num,) + contexts.shape[1:])]
    )
    chunks = [
        rollout(
            stepper,
            contexts[start : start + batch_size],
            num_calls,
            num_input_steps=contexts.shape[1],
            batched=True,
        )
        for start in range(0, padded, batch_size)
    ]
    return jnp.concatenate(chunks)[:num]


def _window_scores(forecasts, futures, horizons, threshold: float) -> np.ndarray:
    """`(N, num_columns)` scores, one row per window (vpt in steps)."""

    def one(forecast, future):
        metrics = forecast_metrics(forecast, future, horizons)
        vpt = valid_prediction_time(forecast, future, criterion="smape", threshold=threshold)
        spectrum = power_spectrum_distance(forecast, future)
        return jnp.concatenate(
            [metrics[name] for name in FORECAST_METRICS] + [vpt[None], spectrum[None]]
        )

    return np.asarray(jax.vmap(one)(forecasts, futures), dtype=np.float64)
