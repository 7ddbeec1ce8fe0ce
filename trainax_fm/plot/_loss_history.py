"""Training-loss curves, with median and quantile band over seeds."""

from typing import Any, Optional, Sequence

import numpy as np

from .._argument_checks import check_bool, check_positive_int
from ._common import (
    as_real_array,
    check_band,
    curve_entries,
    figure_and_axes,
    finish_curve_plot,
    normalize_labels,
    plot_median_band,
    stack_runs,
)

_FUNC = "loss_history"


def _runs_of(entry: Any, name: str) -> list[np.ndarray]:
    """The runs of one entry: a 1D history is one run, a 2D array is one run per row."""
    array = as_real_array(entry, name, _FUNC)
    if array.ndim == 1:
        runs = [array]
    elif array.ndim == 2:
        runs = list(array)
    else:
        raise ValueError(
            f"{_FUNC}: `{name}` must be one loss history (steps,) or several runs "
            f"(runs, steps), got shape {tuple(array.shape)} (rank {array.ndim})."
        )
    if any(run.shape[0] == 0 for run in runs) or not runs:
        raise ValueError(f"{_FUNC}: `{name}` is empty (shape {tuple(array.shape)}).")
    return runs


def loss_history(
    histories: Any,
    *,
    labels: Optional[Sequence[str]] = None,
    log: bool = True,
    band: Optional[tuple[float, float]] = (0.25, 0.75),
    every: int = 1,
    ax: Any = None,
    save: Any = None,
    title: Optional[str] = None,
) -> Any:
    """Plot training-loss histories against the update count.

    Histories are grouped into *methods*, each drawn as one line:

    - one 1D array `(steps,)` (or a list of floats): a single run;
    - a 2D array `(runs, steps)`, e.g. the loss history of a `jax.vmap`-ed trainer
        over seeds: one method with several runs;
    - a list whose entries are 1D or 2D arrays: one method per entry, except that
        entries sharing the same label are pooled into one method;
    - a mapping `label -> array`: the keys are the labels.

    A method with several runs is drawn as the median over runs with a shaded
    quantile `band` (seed statistics); runs of different lengths (e.g. stopped early)
    are padded, and each point uses the runs that reached it. Recorded entry `i` is
    placed at update `i * every`, matching the trainers' `record_loss_every` (the
    first record is update 0).

    **Arguments:**

    - `histories`: the loss histories, as listed above (NumPy or JAX arrays).
    - `labels`: one legend label per list entry (repeated labels pool runs); `None`
        draws no legend for a single method and numbers several methods.
    - `log`: logarithmic loss axis (non-positive values are then not shown).
    - `band`: the lower and upper quantile of the band over runs, or `None` for no
        band.
    - `every`: updates between two recorded losses (`record_loss_every`).
    - `ax`: a matplotlib Axes to draw into; `None` creates a new figure.
    - `save`: a path to write the figure to (PNG unless the suffix says otherwise),
        written atomically; `None` writes nothing.
    - `title`: an optional axes title.

    **Returns:**

    - The `matplotlib.figure.Figure` holding the plot.

    **Raises:**

    - `ValueError` for arrays that are not 1D/2D or empty, a label count that does not
        match the number of entries, or an invalid `band`.
    """
    log = check_bool(log, "log")
    every = check_positive_int(every, "every")
    band = check_band(band)
    entries, names, labels = curve_entries(histories, labels, _FUNC, "histories")
    groups = [_runs_of(entry, name) for entry, name in zip(entries, names)]
    labels = normalize_labels(labels, len(groups), _FUNC, "entry of `histories`")

    # pool entries that share a label, keeping the order of first appearance
    pooled: dict = {}
    for index, (label, runs) in enumerate(zip(labels, groups)):
        key = ("unlabelled", index) if label is None else label
        pooled.setdefault(key, []).extend(runs)
    show_legend = len(pooled) > 1 or any(label is not None for label in labels)

    fig, ax = figure_and_axes(ax, figsize=(6.0, 4.0))
    for number, (key, runs) in enumerate(pooled.items()):
        label = f"run {number}" if isinstance(key, tuple) else key
        stacked = stack_runs(runs)
        steps = np.arange(stacked.shape[1]) * every
        if len(runs) > 1:
            label = f"{label} (median of {len(runs)})"
        plot_median_band(ax, steps, stacked, band, label)
    return finish_curve_plot(
        fig, ax, xlabel="update", ylabel="loss", title=title, show_legend=show_legend,
        save=save, log_y=log,
    )
