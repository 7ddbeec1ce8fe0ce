"""Validation curves of a run, with the best model marked."""

from typing import Any, Optional, Sequence

import numpy as np

from .._argument_checks import check_bool
from .._state._validation_history import ValidationHistory
from ._common import check_band, figure_and_axes, finish_curve_plot, plot_median_band

_FUNC = "validation_history"


def validation_history(
    history: Any,
    *,
    metrics: Optional[Sequence[str]] = None,
    log: bool = True,
    band: Optional[tuple[float, float]] = (0.25, 0.75),
    ax: Any = None,
    save: Any = None,
    title: Optional[str] = None,
) -> Any:
    """Plot every validation metric against the update count and mark the best model.

    **Arguments:**

    - `history`: a [`trainax_fm.ValidationHistory`][] (e.g. `result.validation`).
        With seeds each metric is drawn as the median over seeds with a quantile band.
    - `metrics`: the metrics to draw (default: all).
    - `log`: logarithmic value axis.
    - `band`: the quantile band over seeds, or `None`.
    - `ax`: a matplotlib Axes to draw into; `None` creates a new figure.
    - `save`: a path to write the figure to, atomically; `None` writes nothing.
    - `title`: an optional axes title.

    **Returns:**

    - The `matplotlib.figure.Figure`; the best step of the monitored metric is a
        dotted vertical line (one per seed).
    """
    if not isinstance(history, ValidationHistory):
        raise TypeError(
            f"{_FUNC}: `history` must be a trainax_fm.ValidationHistory (the "
            f"`validation` of a TrainResult or TrainState), got {type(history).__name__}."
        )
    log = check_bool(log, "log")
    band = check_band(band)
    names = list(history.values) if metrics is None else list(metrics)
    unknown = sorted(set(names) - set(history.values))
    if unknown:
        raise ValueError(
            f"{_FUNC}: {unknown} are not validation metrics of this run; it has "
            f"{sorted(history.values)}."
        )
    if history.num_validations == 0:
        raise ValueError(f"{_FUNC}: the history holds no validation yet.")
    fig, ax = figure_and_axes(ax, figsize=(6.0, 4.0))
    steps = np.asarray(history.steps)
    for name in names:
        runs = np.asarray(history.values[name]).reshape(-1, steps.shape[0])
        label = f"{name} (best model by this)" if name == history.monitor else name
        plot_median_band(ax, steps, runs, band if runs.shape[0] > 1 else None, label)
    for best in np.atleast_1d(np.asarray(history.best_step)):
        if best >= 0:
            ax.axvline(best, linestyle=":", color="k", linewidth=1.0)
    return finish_curve_plot(
        fig, ax, xlabel="update", ylabel="validation value", title=title,
        show_legend=True, save=save, log_y=log,
    )
