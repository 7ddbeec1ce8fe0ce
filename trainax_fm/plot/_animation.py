"""Animated GIF of a 1D (line plot) or 2D (image) rollout."""

import os
import pathlib
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._argument_checks import check_positive_int
from .._atomic import atomic_path
from ._common import (
    _require_matplotlib,
    _require_pillow,
    check_channel,
    check_positive_number,
    check_vlim,
    new_figure,
    planar_view,
    step_times,
    symmetric_limits,
    trajectory_and_reference,
)

_FUNC = "animate_rollout"


def _line_limits(*fields: np.ndarray) -> tuple[float, float]:
    """Fixed y-limits over all frames: the finite data range plus a 5% margin."""
    values = np.concatenate([f[np.isfinite(f)] for f in fields])
    if values.size == 0:
        return -1.0, 1.0
    low, high = float(values.min()), float(values.max())
    margin = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    return low - margin, high + margin


def animate_rollout(
    trajectory: Any,
    path: Any,
    *,
    reference: Any = None,
    fps: float = 10,
    channel: int = 0,
    stride: int = 1,
    dt: float = 1.0,
    include_init: bool = False,
    cmap: str = "RdBu_r",
    vlim: Optional[tuple[float, float]] = None,
    titles: Sequence[str] = ("prediction", "reference"),
    dpi: float = 80,
    slice_axis: int = -1,
    slice_at: Union[int, str] = "middle",
) -> pathlib.Path:
    """Write an animated GIF of a rollout, one frame per (strided) time step.

    A 1D trajectory `(T, C, N)` is animated as a line plot of one channel over the
    grid index, with the reference as a dashed line; the y-limits are fixed over all
    frames. A 2D trajectory `(T, C, H, W)` is animated as an image (first spatial
    axis horizontal, origin at the bottom left), with the reference in a second panel
    and one colour scale shared by both and all frames (by default symmetric about
    zero). A 3D trajectory `(T, C, X, Y, Z)` is animated like a 2D one on one plane:
    the slice `slice_at` across `slice_axis` (by default the middle slice across the
    last axis) or a projection along it (`"mean"`, `"max"`). Frames are written with
    matplotlib's `PillowWriter` into a temporary file that replaces `path` only once
    complete.

    **Arguments:**

    - `trajectory`: a trajectory `(T, C, N)`, `(T, C, H, W)` or `(T, C, X, Y, Z)`.
    - `path`: the output file; its suffix must be `.gif`. Missing parent directories
        are created.
    - `reference`: the reference trajectory of the same shape, or `None`.
    - `fps`: frames per second.
    - `channel`: the channel to show.
    - `stride`: animate every `stride`-th time step (the last one is always shown).
    - `dt`: time between two consecutive states, for the frame titles.
    - `include_init`: whether entry 0 is the initial condition (time 0); otherwise
        entry `t` is at time `(t + 1) * dt`.
    - `cmap`: the colormap of 2D images.
    - `vlim`: the value limits `(vmin, vmax)` (y-axis in 1D, colours in 2D), or
        `None` to derive them from the data.
    - `titles`: panel titles of prediction and reference (2D).
    - `dpi`: resolution of the frames.
    - `slice_axis`: for a 3D trajectory, the spatial axis (0, 1, 2 or negative) across
        which the field is cut or projected.
    - `slice_at`: for a 3D trajectory, the grid index of the slice along
        `slice_axis`, `"middle"` (default), or a projection: `"mean"` or `"max"`.

    **Returns:**

    - The path of the written GIF, as a `pathlib.Path`.

    **Raises:**

    - `ImportError` if matplotlib or Pillow is missing.
    - `ValueError` for a trajectory that is not `(T, C, N)`, `(T, C, H, W)` or
        `(T, C, X, Y, Z)`, a `slice_axis` or `slice_at` outside the 3D grid, a
        reference of another shape, a path without a `.gif` suffix, or an invalid
        `channel`, `fps`, `stride` or `vlim`.
    """
    _require_matplotlib()
    _require_pillow()
    import matplotlib.animation  # noqa: F401  (after the check above)

    trajectory, reference = trajectory_and_reference(
        trajectory, reference, "trajectory", _FUNC, (3, 4, 5),
        "(T, C, N), (T, C, H, W) or (T, C, X, Y, Z)",
        "Pass one trajectory: for a batch select a sample `trajectories[b]`.",
    )
    trajectory, reference, plane = planar_view(
        trajectory, reference, slice_axis, slice_at, _FUNC
    )
    path = pathlib.Path(os.fspath(path))
    if path.suffix.lower() != ".gif":
        raise ValueError(
            f"{_FUNC}: `path` must end in '.gif' (an animated GIF is written), got "
            f"{str(path)!r}."
        )
    fps = check_positive_number(fps, "fps")
    stride = check_positive_int(stride, "stride")
    dt = check_positive_number(dt, "dt")
    dpi = check_positive_number(dpi, "dpi")
    vlim = check_vlim(vlim, _FUNC)
    channel = check_channel(channel, trajectory.shape[1], _FUNC)
    titles = list(titles)
    num_steps = trajectory.shape[0]
    times = step_times(num_steps, dt, include_init)
    frames = list(range(0, num_steps, stride))
    if frames[-1] != num_steps - 1:
        frames.append(num_steps - 1)

    prediction = trajectory[:, channel]
    target = None if reference is None else reference[:, channel]
    present = [prediction] + ([] if target is None else [target])

    if trajectory.ndim == 3:
        fig = new_figure((6.0, 3.5))
        ax = fig.add_subplot()
        grid = np.arange(prediction.shape[1])
        if target is not None:
            (reference_line,) = ax.plot(grid, target[frames[0]], "k--", linewidth=1.2,
                                        label="reference")
        (prediction_line,) = ax.plot(grid, prediction[frames[0]], linewidth=1.5,
                                     label="prediction")
        ax.set_ylim(*(vlim if vlim is not None else _line_limits(*present)))
        ax.set_xlim(grid[0], grid[-1])
        ax.set_xlabel("x (grid index)")
        if target is not None:
            ax.legend(loc="upper right")

        def update(t: int) -> None:
            prediction_line.set_ydata(prediction[t])
            if target is not None:
                reference_line.set_ydata(target[t])

    else:
        count = len(present)
        fig = new_figure((3.4 * count + 0.8, 3.6))
        axes = fig.subplots(1, count, squeeze=False)[0]
        low, high = vlim if vlim is not None else symmetric_limits(*present)
        images = []
        for i, (ax, field) in enumerate(zip(axes, present)):
            images.append(ax.imshow(field[frames[0]].T, origin="lower", cmap=cmap,
                                    vmin=low, vmax=high, interpolation="nearest"))
            ax.set_xticks([])
            ax.set_yticks([])
            if i < len(titles):
                ax.set_title(titles[i])
        fig.colorbar(images[0], ax=list(axes), shrink=0.9)

        def update(t: int) -> None:
            for image, field in zip(images, present):
                image.set_data(field[t].T)

    heading = fig.suptitle("")
    writer = matplotlib.animation.PillowWriter(fps=fps)
    with atomic_path(str(path), ".gif") as temporary:
        with writer.saving(fig, temporary, dpi):
            for t in frames:
                update(t)
                heading.set_text(f"t = {times[t]:g}, {plane}" if plane else f"t = {times[t]:g}")
                writer.grab_frame()
    return path
