"""Space-time image of a 1D rollout, next to its reference and their difference."""

from typing import Any, Optional, Sequence

from .._argument_checks import check_bool
from ._common import (
    check_axes,
    check_channel,
    check_positive_number,
    check_vlim,
    new_figure,
    root_figure,
    save_figure,
    step_times,
    symmetric_limits,
    trajectory_and_reference,
)

_FUNC = "spacetime"


def _titles(titles: Any, count: int) -> list:
    """Three titles (prediction, reference, difference), or `None` for no titles."""
    if titles is None:
        return [None] * count
    if isinstance(titles, str):
        titles = [titles]
    titles = list(titles)
    if len(titles) < count:
        raise ValueError(
            f"{_FUNC}: `titles` must hold at least {count} entries (prediction, "
            f"reference, difference), got {len(titles)}."
        )
    return titles[:count]


def spacetime(
    prediction: Any,
    reference: Any = None,
    *,
    channel: int = 0,
    cmap: str = "RdBu_r",
    titles: Optional[Sequence[str]] = ("prediction", "reference", "difference"),
    vlim: Optional[tuple[float, float]] = None,
    time_axis: str = "horizontal",
    dt: float = 1.0,
    domain_extent: Optional[float] = None,
    include_init: bool = False,
    axes: Any = None,
    save: Any = None,
) -> Any:
    """Show a 1D rollout `(T, C, N)` as a space-time image.

    One channel is drawn as an image of time against space. With `time_axis=
    "horizontal"` (the default, as in exponax/APEBench) time runs left to right and
    space bottom to top, and the panels are stacked vertically; with `"vertical"`
    time runs bottom to top and space left to right, and the panels sit side by side.

    With a `reference`, three panels are drawn: prediction, reference and the
    difference `prediction - reference`. Prediction and reference share one colour
    scale and colourbar (by default symmetric about zero, `[-m, m]` with `m` their
    largest finite absolute value; set `vlim` otherwise); the difference has its own
    symmetric scale and colourbar, since it is usually much smaller. Non-finite
    values (a diverged rollout) are left blank.

    Entry `t` of the time axis is at time `(t + 1) * dt` (the default rollout output
    without the initial condition) or `t * dt` with `include_init=True`; grid point
    `i` is at `i * domain_extent / N` (or at index `i` when `domain_extent` is
    `None`), as on a periodic grid without its right end point.

    **Arguments:**

    - `prediction`: a 1D trajectory `(T, C, N)`, e.g. from `trainax_fm.rollout`.
    - `reference`: the reference trajectory of the same shape, or `None`.
    - `channel`: the channel to show (negative counts from the end).
    - `cmap`: the colormap of the prediction and reference (the difference always
        uses `"RdBu_r"`).
    - `titles`: the panel titles (prediction, reference, difference), or `None`.
    - `vlim`: colour limits `(vmin, vmax)` of prediction and reference, or `None`.
    - `time_axis`: `"horizontal"` or `"vertical"` (see above).
    - `dt`: the time between two consecutive states.
    - `domain_extent`: the length `L` of the periodic domain, or `None` for grid
        indices.
    - `include_init`: whether entry 0 of the trajectories is the initial condition.
    - `axes`: a sequence of 1 (no reference) or 3 matplotlib Axes to draw into;
        `None` creates a new figure.
    - `save`: a path to write the figure to (PNG unless the suffix says otherwise),
        written atomically; `None` writes nothing.

    **Returns:**

    - The `matplotlib.figure.Figure` holding the panels.

    **Raises:**

    - `ValueError` for a trajectory that is not `(T, C, N)`, a reference of another
        shape, an invalid `channel`, `time_axis`, `vlim`, `dt` or `domain_extent`,
        or a wrong number of `axes` or `titles`.
    """
    prediction, reference = trajectory_and_reference(
        prediction, reference, "prediction", _FUNC, (3,), "(T, C, N)",
        "Pass one 1D trajectory: for a batch select a sample `trajectories[b]`; "
        "for 2D fields use `snapshots_2d`.",
    )
    channel = check_channel(channel, prediction.shape[1], _FUNC)
    vlim = check_vlim(vlim, _FUNC)
    dt = check_positive_number(dt, "dt")
    include_init = check_bool(include_init, "include_init")
    if domain_extent is not None:
        domain_extent = check_positive_number(domain_extent, "domain_extent")
    if time_axis not in ("horizontal", "vertical"):
        raise ValueError(
            f"{_FUNC}: `time_axis` must be 'horizontal' or 'vertical', got "
            f"{time_axis!r}."
        )
    horizontal = time_axis == "horizontal"

    fields = [prediction[:, channel]]
    if reference is not None:
        fields += [reference[:, channel], fields[0] - reference[:, channel]]
    titles = _titles(titles, len(fields))

    num_steps, num_points = fields[0].shape
    times = step_times(num_steps, dt, include_init)
    spacing = 1.0 if domain_extent is None else domain_extent / num_points
    time_edges = (times[0] - dt / 2, times[-1] + dt / 2)
    space_edges = (-spacing / 2, (num_points - 0.5) * spacing)
    if horizontal:
        extent = time_edges + space_edges
    else:
        extent = space_edges + time_edges
    space_label = "x (grid index)" if domain_extent is None else "x"

    if axes is None:
        count = len(fields)
        if horizontal:
            fig = new_figure((7.0, 2.2 * count + 0.4))
            axes = fig.subplots(count, 1, sharex=True, squeeze=False)[:, 0]
        else:
            fig = new_figure((3.2 * count + 1.0, 4.0))
            axes = fig.subplots(1, count, sharey=True, squeeze=False)[0]
        axes = list(axes)
    else:
        axes = check_axes(axes, len(fields), _FUNC)
        fig = root_figure(axes[0])

    low, high = vlim if vlim is not None else symmetric_limits(*fields[:2])
    images = []
    for index, (ax, field, title) in enumerate(zip(axes, fields, titles)):
        if index < 2:
            limits, colormap = (low, high), cmap
        else:
            limits, colormap = symmetric_limits(field), "RdBu_r"
        image = ax.imshow(
            field.T if horizontal else field,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap=colormap,
            vmin=limits[0],
            vmax=limits[1],
            interpolation="nearest",
        )
        images.append(image)
        if title is not None:
            ax.set_title(title)
        if horizontal:
            ax.set_ylabel(space_label)
        else:
            ax.set_xlabel(space_label)
    if horizontal:
        axes[-1].set_xlabel("time")
    else:
        axes[0].set_ylabel("time")
    fig.colorbar(images[0], ax=axes[:2])
    if len(images) == 3:
        fig.colorbar(images[2], ax=axes[2])
    save_figure(fig, save)
    return fig
