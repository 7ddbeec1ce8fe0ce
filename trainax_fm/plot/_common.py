"""Shared helpers of the plotting subpackage: lazy imports, checks, figures, saving.

Nothing here imports matplotlib at module import time; every public plot function
calls [`_require_matplotlib`][] first.
"""

import math
import numbers
import os
import warnings
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np

from .._argument_checks import check_bool
from .._atomic import atomic_path

INSTALL_HINT = 'pip install "trainax_fm[plot]"'


def _require_matplotlib() -> Any:
    """Import matplotlib and `matplotlib.figure`, or raise an `ImportError` with a hint.

    **Returns:**

    - The `matplotlib` module.
    """
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "trainax_fm.plot needs matplotlib, which could not be imported "
            f"({err}). Install the plotting extra with `{INSTALL_HINT}` (or "
            "`pip install matplotlib`)."
        ) from err
    return matplotlib


def _require_pillow() -> Any:
    """Import Pillow (for GIF animations), or raise an `ImportError` with a hint."""
    try:
        import PIL
        import PIL.Image  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "Writing a GIF animation needs Pillow, which could not be imported "
            f"({err}). It normally comes with matplotlib; install it with "
            f"`pip install pillow` or `{INSTALL_HINT}`."
        ) from err
    return PIL


# --- argument checks ----------------------------------------------------------------


def as_real_array(value: Any, name: str, func: str) -> np.ndarray:
    """Convert an array-like (numpy, JAX, nested lists) to a float64 numpy array."""
    if np.iscomplexobj(value):
        raise TypeError(
            f"{func}: `{name}` must be real-valued, got a complex array; plot its "
            "real part, imaginary part or modulus explicitly."
        )
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{func}: `{name}` must be a real-valued array, got {type(value).__name__} "
            f"that cannot be converted ({err})."
        ) from err
    return array


def check_rank(
    array: np.ndarray,
    ranks: Sequence[int],
    name: str,
    func: str,
    layout: str,
    hint: str = "",
) -> None:
    """Raise a `ValueError` naming `name` unless `array.ndim` is one of `ranks`."""
    if array.ndim not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{func}: `{name}` must be shaped {layout} (rank {expected}), got shape "
            f"{tuple(array.shape)} (rank {array.ndim}).{' ' + hint if hint else ''}"
        )


def check_same_shape(reference: np.ndarray, prediction: np.ndarray, func: str) -> None:
    """Raise a `ValueError` unless `reference` is shaped like `prediction`."""
    if reference.shape != prediction.shape:
        raise ValueError(
            f"{func}: `reference` must have the shape of the prediction "
            f"{tuple(prediction.shape)}, got shape {tuple(reference.shape)}."
        )


def trajectory_and_reference(
    trajectory: Any,
    reference: Any,
    name: str,
    func: str,
    ranks: Sequence[int],
    layout: str,
    hint: str,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Check a rollout and its optional reference, as the rollout plots take them.

    **Arguments:**

    - `trajectory`: the rollout, named `name` in errors, shaped `layout` (one of
        `ranks`); `hint` says how to fix a wrong rank.
    - `reference`: `None` or an array-like of the same shape.
    - `func`: the plotting function, named in errors.

    **Returns:**

    - `(trajectory, reference)` as float64 numpy arrays (`reference` may be `None`).
    """
    trajectory = as_real_array(trajectory, name, func)
    check_rank(trajectory, ranks, name, func, layout, hint)
    if reference is not None:
        reference = as_real_array(reference, "reference", func)
        check_same_shape(reference, trajectory, func)
    return trajectory, reference


_SLICE_POSITIONS = ("middle", "mean", "max")


def planar_view(
    trajectory: np.ndarray,
    reference: Optional[np.ndarray],
    slice_axis: Any,
    slice_at: Any,
    func: str,
) -> tuple[np.ndarray, Optional[np.ndarray], str]:
    """Reduce a 3D trajectory `(T, C, X, Y, Z)` (and its reference) to a plane.

    Images show planes, so one spatial axis of a 3D field is cut or projected away:
    `slice_at` is a grid index along `slice_axis` (negative counts from the end),
    `"middle"` for the middle slice, `"mean"` for the average along the axis (a
    projection), or `"max"` for the maximum along it (a maximum-intensity projection).
    Trajectories of rank 3 or 4 are returned unchanged.

    **Arguments:**

    - `trajectory`, `reference`: the checked rollout and its optional reference.
    - `slice_axis`: the spatial axis (0, 1, 2 or negative) across which to cut.
    - `slice_at`: an int, `"middle"`, `"mean"` or `"max"`.
    - `func`: the plotting function, named in errors.

    **Returns:**

    - `(trajectory, reference, caption)`: the planar arrays `(T, C, A, B)` (the two
        remaining axes in their order) and a short caption such as `"z = 4"` or
        `"mean over y"`; the caption is `""` for data that is not 3D.
    """
    if trajectory.ndim != 5:
        return trajectory, reference, ""
    if isinstance(slice_axis, bool) or not isinstance(slice_axis, numbers.Integral):
        raise TypeError(f"{func}: `slice_axis` must be an int, got {slice_axis!r}.")
    if not -3 <= slice_axis < 3:
        raise ValueError(
            f"{func}: `slice_axis` must be a spatial axis of the 3D field (0, 1, 2 or "
            f"-3..-1), got {slice_axis}."
        )
    axis = 2 + slice_axis % 3
    name = "xyz"[slice_axis % 3]
    size = trajectory.shape[axis]

    def reduce(array: Optional[np.ndarray], index: Optional[int]) -> Optional[np.ndarray]:
        if array is None:
            return None
        if index is not None:
            return np.take(array, index, axis=axis)
        return np.mean(array, axis=axis) if slice_at == "mean" else np.max(array, axis=axis)

    if isinstance(slice_at, str):
        if slice_at not in _SLICE_POSITIONS:
            raise ValueError(
                f"{func}: `slice_at` must be a grid index or one of {_SLICE_POSITIONS}, "
                f"got {slice_at!r}."
            )
        index = size // 2 if slice_at == "middle" else None
    elif isinstance(slice_at, numbers.Integral) and not isinstance(slice_at, bool):
        if not -size <= slice_at < size:
            raise ValueError(
                f"{func}: `slice_at={slice_at}` is outside the {size} points of axis "
                f"{name}."
            )
        index = int(slice_at) % size
    else:
        raise TypeError(
            f"{func}: `slice_at` must be an int or one of {_SLICE_POSITIONS}, got "
            f"{slice_at!r}."
        )
    caption = f"{name} = {index}" if index is not None else f"{slice_at} over {name}"
    return reduce(trajectory, index), reduce(reference, index), caption


def check_positive_number(value: Any, name: str) -> float:
    """Return a finite, strictly positive real as a float, or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite positive number, got {value}.")
    return float(value)


def _float_pair(value: Any, expected: str) -> tuple[float, float]:
    """`value` as two floats; else a `ValueError` that says `expected` and what came."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{expected}, got {value!r}.") from err
    return low, high


def check_band(band: Any) -> Optional[tuple[float, float]]:
    """Check a quantile band `(low, high)` with `0 <= low < high <= 1`, or `None`."""
    if band is None:
        return None
    low, high = _float_pair(band, "`band` must be None or a pair of quantiles (low, high)")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(
            f"`band` must satisfy 0 <= low < high <= 1, got ({low}, {high})."
        )
    return low, high


def check_channel(channel: Any, num_channels: int, func: str) -> int:
    """Check a channel index (negative counts from the end) and return it as >= 0."""
    if isinstance(channel, bool) or not isinstance(channel, numbers.Integral):
        raise TypeError(f"{func}: `channel` must be an int, got {channel!r}.")
    if not -num_channels <= channel < num_channels:
        raise ValueError(
            f"{func}: `channel` must lie in [{-num_channels}, {num_channels - 1}] for "
            f"{num_channels} channel(s), got {channel}."
        )
    return int(channel) % num_channels


def check_vlim(vlim: Any, func: str) -> Optional[tuple[float, float]]:
    """Check colour limits `(vmin, vmax)` with `vmin < vmax`, or `None`."""
    if vlim is None:
        return None
    low, high = _float_pair(vlim, f"{func}: `vlim` must be None or a pair (vmin, vmax)")
    if not low < high:
        raise ValueError(f"{func}: `vlim` must have vmin < vmax, got ({low}, {high}).")
    return low, high


def normalize_labels(labels: Any, count: int, func: str, what: str) -> list[str]:
    """Return `count` labels: the given ones (checked) or `None` -> `[None] * count`."""
    if labels is None:
        return [None] * count
    if isinstance(labels, str):
        labels = [labels]
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(
            f"{func}: `labels` must have one entry per {what} ({count}), got "
            f"{len(labels)} labels."
        )
    return [str(label) for label in labels]


def split_mapping(data: Any, labels: Any, func: str, argname: str) -> tuple[list, Any]:
    """Turn a mapping `label -> data` into `(values, labels)`; else pass through."""
    if isinstance(data, Mapping):
        if labels is not None:
            raise ValueError(
                f"{func}: `{argname}` is a mapping whose keys are the labels; do not "
                "pass `labels` as well."
            )
        return list(data.values()), [str(key) for key in data.keys()]
    return data, labels


def is_scalar_sequence(data: Any) -> bool:
    """True for a non-empty list/tuple whose entries are all scalars (e.g. floats)."""
    return (
        isinstance(data, (list, tuple))
        and len(data) > 0
        and all(np.ndim(entry) == 0 for entry in data)
    )


def curve_entries(
    data: Any, labels: Any, func: str, argname: str
) -> tuple[list, list[str], Any]:
    """The curves of a curve plot as `(entries, names, labels)`.

    `data` is one array, a list of arrays, a plain list of floats (one curve) or a
    mapping `label -> array`; `names` say how each entry is called in error messages.
    """
    entries, labels = split_mapping(data, labels, func, argname)
    if is_scalar_sequence(entries):  # a plain list of floats is one curve
        entries = np.asarray(entries)
    if not isinstance(entries, (list, tuple)):
        return [entries], [argname], labels
    if not entries:
        raise ValueError(f"{func}: `{argname}` is empty: pass at least one curve.")
    if isinstance(data, Mapping):
        names = [f"{argname}[{label!r}]" for label in labels]
    else:
        names = [f"{argname}[{i}]" for i in range(len(entries))]
    return list(entries), names, labels


def plot_median_band(
    ax: Any, x: np.ndarray, runs: np.ndarray, band: Optional[tuple[float, float]], label
) -> None:
    """The median over runs `(R, T)` as a line, the quantile `band` shaded around it."""
    median, low, high = quantile_curves(runs, band)
    (line,) = ax.plot(x, median, label=label, linewidth=1.2)
    if low is not None:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.25, linewidth=0)


def finish_curve_plot(
    fig: Any,
    ax: Any,
    *,
    xlabel: str,
    ylabel: str,
    title: Optional[str],
    show_legend: bool,
    save: Any,
    log_x: bool = False,
    log_y: bool = False,
) -> Any:
    """Scales, labels, title, grid and legend of a curve plot; save it; return `fig`."""
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if show_legend:
        ax.legend()
    save_figure(fig, save)
    return fig


def symmetric_limits(*arrays: np.ndarray) -> tuple[float, float]:
    """`(-m, m)` with `m` the largest finite absolute value (1 if there is none)."""
    values = [np.abs(a[np.isfinite(a)]) for a in arrays]
    values = [v for v in values if v.size]
    top = max((float(v.max()) for v in values), default=0.0)
    if top == 0.0:
        top = 1.0
    return -top, top


def quantile_curves(
    runs: np.ndarray, band: Optional[tuple[float, float]]
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Median and band quantiles over runs `(R, T)`, ignoring `nan` (padding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
        median = np.nanmedian(runs, axis=0)
        if band is None or runs.shape[0] < 2:
            return median, None, None
        low = np.nanquantile(runs, band[0], axis=0)
        high = np.nanquantile(runs, band[1], axis=0)
    return median, low, high


def stack_runs(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack 1D runs of possibly different lengths into `(R, T_max)`, padding `nan`."""
    length = max(run.shape[0] for run in runs)
    out = np.full((len(runs), length), np.nan)
    for i, run in enumerate(runs):
        out[i, : run.shape[0]] = run
    return out


def step_times(num: int, dt: float, include_init: Any) -> np.ndarray:
    """Times of rollout entries: `(t + 1) dt`, or `t dt` with the initial state."""
    include_init = check_bool(include_init, "include_init")
    offset = 0 if include_init else 1
    return (np.arange(num) + offset) * dt


# --- figures ------------------------------------------------------------------------


def new_figure(figsize: Optional[tuple[float, float]] = None) -> Any:
    """A `matplotlib.figure.Figure` with the constrained layout, outside pyplot."""
    matplotlib = _require_matplotlib()
    return matplotlib.figure.Figure(figsize=figsize, layout="constrained")


def figure_and_axes(ax: Any, figsize: Optional[tuple[float, float]] = None):
    """Return `(figure, ax)`: a new single-axes figure, or the root figure of `ax`."""
    _require_matplotlib()
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return root_figure(ax), ax


def root_figure(ax: Any) -> Any:
    """The top-level figure holding `ax` (also when `ax` lives in a subfigure)."""
    try:
        return ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10 has no `root`
        fig = ax.figure
        return getattr(fig, "figure", None) or fig


def check_axes(axes: Any, count: int, func: str) -> list:
    """Check a user-given sequence of `count` Axes."""
    try:
        axes = list(np.ravel(np.asarray(axes, dtype=object)))
    except TypeError as err:
        raise TypeError(f"{func}: `axes` must be a sequence of Axes.") from err
    if len(axes) != count:
        raise ValueError(
            f"{func}: `axes` must hold one Axes per panel ({count}), got {len(axes)}."
        )
    return axes


def save_figure(fig: Any, save: Any, *, dpi: Optional[float] = None) -> None:
    """Write `fig` to `save` atomically: into a temporary file, then `os.replace`.

    The format follows the file suffix (PNG when there is none). Missing parent
    directories are created. `save=None` does nothing.
    """
    if save is None:
        return
    path = os.fspath(save)
    suffix = os.path.splitext(path)[1]
    fmt = suffix[1:].lower() if suffix else "png"
    with atomic_path(path, suffix or ".png") as temporary:
        fig.savefig(temporary, format=fmt, dpi=dpi)


