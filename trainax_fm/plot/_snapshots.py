"""A grid of 2D snapshots: rows prediction / reference (/ difference), columns times."""

import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._argument_checks import check_bool
from ._common import (
    check_channel,
    check_positive_number,
    check_vlim,
    new_figure,
    planar_view,
    save_figure,
    step_times,
    symmetric_limits,
    trajectory_and_reference,
)

_FUNC = "snapshots_2d"


def _time_indices(times: Any, num_steps: int, max_columns: int = 5) -> list[int]:
    """Checked time indices; `None` picks up to 5 evenly spaced ones, first and last."""
    if times is None:
        count = min(num_steps, max_columns)
        return sorted({int(round(v)) for v in np.linspace(0, num_steps - 1, count)})
    if isinstance(times, numbers.Integral) and not isinstance(times, bool):
        times = [times]
    try:
        times = list(times)
    except TypeError as err:
        raise TypeError(
            f"{_FUNC}: `times` must be None or a sequence of integer indices into the "
            f"time axis, got {times!r}."
        ) from err
    if not times:
        raise ValueError(f"{_FUNC}: `times` must hold at least one index, got none.")
    indices = []
    for value in times:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{_FUNC}: `times` must hold integer indices into the time axis (not "
                f"physical times), got {value!r}."
            )
        if not -num_steps <= value < num_steps:
            raise ValueError(
                f"{_FUNC}: `times` entry {value} is out of range for a trajectory of "
                f"{num_steps} steps (valid: {-num_steps} to {num_steps - 1})."
            )
        indices.append(int(value) % num_steps)
    return indices


def snapshots_2d(
    trajectory: Any,
    *,
    times: Optional[Sequence[int]] = None,
    reference: Any = None,
    channel: int = 0,
    difference: bool = False,
    cmap: str = "RdBu_r",
    vlim: Optional[tuple[float, float]] = None,
    dt: float = 1.0,
    include_init: bool = False,
    row_labels: Sequence[str] = ("prediction", "reference", "difference"),
    panel_size: float = 2.2,
    save: Any = None,
    slice_axis: int = -1,
    slice_at: Union[int, str] = "middle",
) -> Any:
    """Show a 2D rollout `(T, C, H, W)` as a grid of snapshots.

    Columns are the selected time steps; the rows are the prediction and, when given,
    the reference (and with `difference=True` the difference `prediction -
    reference`). A field `u[i, j]` is drawn with its first spatial axis `i`
    horizontal and its second `j` vertical, origin at the bottom left (the `"ij"`
    indexing of exponax). Prediction and reference share one colour scale, by
    default symmetric about zero (`[-m, m]`, `m` their largest finite absolute
    value); the difference row has its own symmetric scale.

    A 3D rollout `(T, C, X, Y, Z)` is shown as one plane of each snapshot: the slice
    `slice_at` across `slice_axis` (by default the middle slice across the last axis),
    or a projection along it (`slice_at="mean"` or `"max"`); the figure's title names
    the plane.

    **Arguments:**

    - `trajectory`: a 2D trajectory `(T, C, H, W)`, e.g. from `trainax_fm.rollout`, or
        a 3D one `(T, C, X, Y, Z)`.
    - `times`: integer indices into the time axis (negative count from the end);
        `None` picks up to 5 evenly spaced steps including the first and the last.
    - `reference`: the reference trajectory of the same shape, or `None`.
    - `channel`: the channel to show.
    - `difference`: also draw the difference row (needs `reference`).
    - `cmap`: the colormap of prediction and reference.
    - `vlim`: colour limits `(vmin, vmax)` of prediction and reference, or `None`.
    - `dt`: time between two consecutive states, for the column titles.
    - `include_init`: whether entry 0 is the initial condition (time 0); otherwise
        entry `t` is at time `(t + 1) * dt`.
    - `row_labels`: the labels of the prediction, reference and difference rows.
    - `panel_size`: the size of one panel in inches.
    - `save`: a path to write the figure to (PNG unless the suffix says otherwise),
        written atomically; `None` writes nothing.
    - `slice_axis`: for a 3D trajectory, the spatial axis (0, 1, 2 or negative) across
        which the field is cut or projected.
    - `slice_at`: for a 3D trajectory, the grid index of the slice along
        `slice_axis`, `"middle"` (default), or a projection: `"mean"` or `"max"`.

    **Returns:**

    - The `matplotlib.figure.Figure` holding the grid.

    **Raises:**

    - `ValueError` for a trajectory that is not `(T, C, H, W)` or `(T, C, X, Y, Z)`, a
        `slice_axis` or `slice_at` outside the 3D grid, a reference of
        another shape, `difference=True` without a reference, an out-of-range
        `times` entry or `channel`, or too few `row_labels`.
    """
    trajectory, reference = trajectory_and_reference(
        trajectory, reference, "trajectory", _FUNC, (4, 5), "(T, C, H, W) or (T, C, X, Y, Z)",
        "Pass one 2D or 3D trajectory: for a batch select a sample `trajectories[b]`; "
        "for a single state add a time axis `state[None]`; for 1D use `spacetime`.",
    )
    trajectory, reference, plane = planar_view(
        trajectory, reference, slice_axis, slice_at, _FUNC
    )
    difference = check_bool(difference, "difference")
    if difference and reference is None:
        raise ValueError(f"{_FUNC}: `difference=True` needs a `reference`.")
    channel = check_channel(channel, trajectory.shape[1], _FUNC)
    vlim = check_vlim(vlim, _FUNC)
    dt = check_positive_number(dt, "dt")
    panel_size = check_positive_number(panel_size, "panel_size")
    indices = _time_indices(times, trajectory.shape[0])
    step_time = step_times(trajectory.shape[0], dt, include_init)

    rows = [trajectory[indices, channel]]
    if reference is not None:
        rows.append(reference[indices, channel])
    if difference:
        rows.append(rows[0] - rows[1])
    row_labels = list(row_labels)
    if len(row_labels) < len(rows):
        raise ValueError(
            f"{_FUNC}: `row_labels` must hold at least {len(rows)} entries, got "
            f"{len(row_labels)}."
        )

    num_rows, num_cols = len(rows), len(indices)
    fig = new_figure((panel_size * num_cols + 1.2, panel_size * num_rows + 0.3))
    axes = fig.subplots(num_rows, num_cols, squeeze=False)
    low, high = vlim if vlim is not None else symmetric_limits(*rows[:2])
    images = []
    for r, fields in enumerate(rows):
        if r < 2:
            limits, colormap = (low, high), cmap
        else:
            limits, colormap = symmetric_limits(fields), "RdBu_r"
        for c, field in enumerate(fields):
            ax = axes[r, c]
            image = ax.imshow(
                field.T, origin="lower", cmap=colormap, vmin=limits[0],
                vmax=limits[1], interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {step_time[indices[c]]:g}")
            if c == 0:
                ax.set_ylabel(row_labels[r])
        images.append(image)
    fig.colorbar(images[0], ax=axes[: min(num_rows, 2)].ravel().tolist(), shrink=0.9)
    if difference:
        fig.colorbar(images[2], ax=axes[2].tolist(), shrink=0.9)
    if plane:
        fig.suptitle(plane)
    save_figure(fig, save)
    return fig
