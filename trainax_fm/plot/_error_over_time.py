"""Error metrics along the rollout, one curve per method, with seed statistics."""

from typing import Any, Optional, Sequence

from .._argument_checks import check_bool
from ._common import (
    as_real_array,
    check_band,
    check_positive_number,
    curve_entries,
    figure_and_axes,
    finish_curve_plot,
    normalize_labels,
    plot_median_band,
    step_times,
)

_FUNC = "error_over_time"


def error_over_time(
    errors: Any,
    *,
    labels: Optional[Sequence[str]] = None,
    dt: float = 1.0,
    ylabel: str = "nRMSE",
    xlabel: str = "time",
    log: bool = False,
    band: Optional[tuple[float, float]] = (0.25, 0.75),
    include_init: bool = False,
    ax: Any = None,
    save: Any = None,
    title: Optional[str] = None,
) -> Any:
    """Plot a per-step error (e.g. [`trainax_fm.metrics.nrmse`][]) over rollout time.

    Each method gives one curve `(T,)`, or `(seeds, T)` for several independent runs
    (seeds, training repetitions), drawn as the median over seeds with a shaded
    quantile `band`. Entry `t` is placed at time `(t + 1) * dt`, matching the default
    rollout output without the initial condition; with `include_init=True` at
    `t * dt`.

    **Arguments:**

    - `errors`: a mapping `method name -> array` (the keys are the labels), a list of
        arrays, or one array (a list of floats is one curve); each array is `(T,)`
        or `(seeds, T)`. Methods may have different `T`.
    - `labels`: one label per array when `errors` is a list or one array; `None`
        numbers several methods and draws no legend for one.
    - `dt`: the time between two consecutive states.
    - `ylabel`: the label of the error axis.
    - `xlabel`: the label of the time axis.
    - `log`: logarithmic error axis.
    - `band`: lower and upper quantile of the band over seeds, or `None`.
    - `include_init`: whether entry 0 is the initial condition (time 0).
    - `ax`: a matplotlib Axes to draw into; `None` creates a new figure.
    - `save`: a path to write the figure to (PNG unless the suffix says otherwise),
        written atomically; `None` writes nothing.
    - `title`: an optional axes title.

    **Returns:**

    - The `matplotlib.figure.Figure` holding the plot.

    **Raises:**

    - `ValueError` for arrays that are not `(T,)` or `(seeds, T)`, empty arrays, a
        label count that does not match, or an invalid `dt`/`band`.
    """
    log = check_bool(log, "log")
    include_init = check_bool(include_init, "include_init")
    dt = check_positive_number(dt, "dt")
    band = check_band(band)
    entries, names, labels = curve_entries(errors, labels, _FUNC, "errors")
    show_legend = labels is not None or len(entries) > 1
    labels = normalize_labels(labels, len(entries), _FUNC, "method")

    curves = []
    for entry, name in zip(entries, names):
        array = as_real_array(entry, name, _FUNC)
        if array.ndim not in (1, 2):
            raise ValueError(
                f"{_FUNC}: `{name}` must be shaped (T,) or (seeds, T), got shape "
                f"{tuple(array.shape)} (rank {array.ndim}). Reduce other axes first, "
                "e.g. with `batched=True` in the metric."
            )
        if array.size == 0:
            raise ValueError(
                f"{_FUNC}: `{name}` is empty (shape {tuple(array.shape)})."
            )
        curves.append(array.reshape(-1, array.shape[-1]))

    fig, ax = figure_and_axes(ax, figsize=(6.0, 4.0))
    for number, (label, runs) in enumerate(zip(labels, curves)):
        label = f"method {number}" if label is None else label
        if runs.shape[0] > 1:
            label = f"{label} (median of {runs.shape[0]})"
        times = step_times(runs.shape[1], dt, include_init)
        plot_median_band(ax, times, runs, band, label)
    return finish_curve_plot(
        fig, ax, xlabel=xlabel, ylabel=ylabel, title=title, show_legend=show_legend,
        save=save, log_y=log,
    )
