"""`DiskTrajectories`: trajectories that stay in a file and are read window by window."""

import os
from typing import Optional, Sequence, Union

import equinox as eqx
import numpy as np
from jaxtyping import Int

from ._formats import FORMATS, OpenArray, open_array


class DiskTrajectories(eqx.Module):
    """Trajectories `(S, T, C, *spatial)` stored in a file, read on the host as needed.

    Pass it wherever trainax_fm takes `data_trajectories` (every trainer, a
    [`trainax_fm.TrajectorySubStacker`][]): training then reads the windows of each
    minibatch from the file on the host, in a background thread, while the previous
    update runs, and the device only ever holds minibatches. The minibatches are the
    same, in the same order, as with the data in memory (see
    [Data larger than memory](../how-to/data-on-disk.md)).

    It is a description (path, format, data set, shape), not an open file: it can be
    pickled, compared and hashed, and every process of a multi-process run opens the
    file by itself.

    Two other layouts are read as `(S, T, C, *spatial)`, rearranged per window read
    (the file is never loaded whole):

    - `channels_last=True`: an array stored `(S, T, *spatial, C)`.
    - `file_format="well"`: an HDF5 file in the_well's layout, one data set per field:
        `t0_fields/NAME` `(S, T, *spatial)` (scalars, one channel each),
        `t1_fields/NAME` `(S, T, *spatial, D)` (vectors, `D` channels) and
        `t2_fields/NAME` `(S, T, *spatial, D, D)` (tensors, `D * D` channels in
        row-major order), stacked on the channel axis in the order selected.

    **Arguments:**

    - `path`: the file (`.npy`), HDF5 file or zarr store.
    - `file_format`: `"npy"` (NumPy; windows read with `os.pread`), `"hdf5"` (h5py),
        `"zarr"` or `"well"` (per-field HDF5 groups, h5py).
    - `dataset`: the data set (HDF5) or array (zarr group) inside the file; `None` for
        a `.npy` file or a zarr store that is a single array. For `"well"`: the fields
        to stack, a sequence of names or one comma-separated string (`"density"`, or
        `"t1_fields/velocity"` where a name is in several groups); `None` stacks every
        field of `t0_fields`, then of `t1_fields`, each group in the order of its
        `field_names` attribute (sorted names without it). It is stored resolved, as
        `"t0_fields/density,t1_fields/velocity"`.
    - `trajectories`: use only trajectories `range(start, stop)` (`(start, stop)`);
        `None` uses all.
    - `num_time_steps`: use only the first snapshots of each trajectory; `None` uses all.
    - `channels_last`: the array is stored `(S, T, *spatial, C)`; each read moves the
        channel axis to where trainax_fm expects it. Not for `"well"`, whose fields
        are placed on channels by their group.
    - `rows`: use these trajectories, in this order, as the view's trajectories
        (indices among those of `trajectories`; repeats allowed), e.g. the index map
        of a [`trainax_fm.data.SystemMixture`][]; `None` uses all in file order.

    **Raises:**

    - `FileNotFoundError` for a missing file; `ValueError` for an unknown format, a
        data set or field name the file does not hold, an array that is not `(S, T, C,
        *spatial)` (`(S, T, *spatial, C)` with `channels_last`), fields of different
        `(S, T, *spatial)` or out-of-range `trajectories`/`num_time_steps`/`rows`;
        `TypeError` for a non-floating array.
    """

    path: str = eqx.field(static=True)
    file_format: str = eqx.field(static=True)
    dataset: Optional[str] = eqx.field(static=True)
    # The whole file as trainax_fm sees it, (S, T, C, *spatial) in any stored layout.
    file_shape: tuple[int, ...] = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    trajectories: tuple[int, int] = eqx.field(static=True)
    num_time_steps: int = eqx.field(static=True)
    channels_last: bool = eqx.field(static=True)
    # Indices in the file of the view's trajectories; `None`: range(*trajectories).
    rows: Optional[tuple[int, ...]] = eqx.field(static=True)

    def __init__(
        self,
        path: Union[str, os.PathLike],
        file_format: str = "npy",
        dataset: Optional[Union[str, Sequence[str]]] = None,
        *,
        trajectories: Optional[tuple[int, int]] = None,
        num_time_steps: Optional[int] = None,
        channels_last: bool = False,
        rows: Optional[Sequence[int]] = None,
    ):
        if file_format not in FORMATS:
            raise ValueError(
                f"`file_format` must be one of {FORMATS}, got {file_format!r}."
            )
        if not isinstance(channels_last, bool):
            raise TypeError(
                f"`channels_last` must be True or False, got {channels_last!r}."
            )
        if channels_last and file_format == "well":
            raise ValueError(
                "`channels_last=True` does not apply to file_format='well': its fields "
                "are placed on channels by their group (t0, t1, t2); drop channels_last."
            )
        dataset = _dataset_name(file_format, dataset)
        path = os.path.abspath(os.fspath(path))
        opened = open_array(file_format, path, dataset, channels_last)
        try:
            shape, dtype = opened.shape, opened.dtype
            if file_format == "well":  # the fields as resolved, in channel order
                dataset = ",".join(data.name.lstrip("/") for data in opened.datasets)
        finally:
            opened.close()
        where = f"{path!r}" + (f" (data set {dataset!r})" if dataset else "")
        if len(shape) < 3:
            layout = "(S, T, *spatial, C)" if channels_last else "(S, T, C, *spatial)"
            raise ValueError(
                f"the trajectories in {where} must be shaped {layout} (or (S, T, "
                f"C) for ODE states), got shape {shape} (rank {len(shape)}). Store them "
                "with a trajectory, a time and a channel axis."
            )
        if 0 in shape:
            raise ValueError(f"the trajectories in {where} are empty: shape {shape}.")
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(
                f"the trajectories in {where} must be floating point, got dtype {dtype}; "
                "store them as float32 (or float64)."
            )
        first, stop = (0, shape[0]) if trajectories is None else tuple(trajectories)
        if not (isinstance(first, int) and isinstance(stop, int) and 0 <= first < stop <= shape[0]):
            raise ValueError(
                f"`trajectories` must be (start, stop) with 0 <= start < stop <= "
                f"{shape[0]} (trajectories in {where}), got {trajectories!r}."
            )
        num_time_steps = shape[1] if num_time_steps is None else num_time_steps
        if not (isinstance(num_time_steps, int) and 1 <= num_time_steps <= shape[1]):
            raise ValueError(
                f"`num_time_steps` must be an integer in [1, {shape[1]}] (snapshots in "
                f"{where}), got {num_time_steps!r}."
            )
        self.path = path
        self.file_format = file_format
        self.dataset = dataset
        self.file_shape = shape
        self.dtype = str(dtype)
        self.trajectories = (first, stop)
        self.num_time_steps = num_time_steps
        self.channels_last = channels_last
        self.rows = None if rows is None else _check_rows(rows, stop - first, first, where)

    @property
    def num_trajectories(self) -> int:
        """`S`, the number of trajectories of this view."""
        first, stop = self.trajectories
        return stop - first if self.rows is None else len(self.rows)

    def file_rows(self) -> tuple[int, ...]:
        """The index in the file of each trajectory of this view, in view order."""
        return tuple(range(*self.trajectories)) if self.rows is None else self.rows

    @property
    def shape(self) -> tuple[int, ...]:
        """`(S, T, C, *spatial)` of the trajectories used."""
        return (self.num_trajectories, self.num_time_steps) + self.file_shape[2:]

    @property
    def ndim(self) -> int:
        return len(self.file_shape)

    def select(
        self, trajectories: Optional[tuple[int, int]] = None, num_time_steps: Optional[int] = None
    ) -> "DiskTrajectories":
        """A view of some of these trajectories (indices relative to this view).

        **Arguments:**

        - `trajectories`: `(start, stop)` among this view's trajectories.
        - `num_time_steps`: keep the first snapshots only.

        **Returns:**

        - A new `DiskTrajectories` on the same file.
        """
        first, stop = self.trajectories
        count = self.num_trajectories
        start, end = (0, count) if trajectories is None else trajectories
        if not 0 <= start < end <= count:
            raise ValueError(
                f"`trajectories` must be (start, stop) with 0 <= start < stop <= "
                f"{count}, got {trajectories!r}."
            )
        if self.rows is None:
            selection = {"trajectories": (first + start, first + end)}
        else:
            rows = tuple(row - first for row in self.rows[start:end])
            selection = {"trajectories": self.trajectories, "rows": rows}
        return DiskTrajectories(
            self.path, self.file_format, self.dataset,
            num_time_steps=self.num_time_steps if num_time_steps is None else num_time_steps,
            channels_last=self.channels_last,
            **selection,
        )

    def select_rows(self, rows: Sequence[int]) -> "DiskTrajectories":
        """A view of these trajectories in the order `rows` (indices relative to this
        view; repeats allowed), e.g. the index map of a mixture.

        **Arguments:**

        - `rows`: the view's trajectories to use, in order.

        **Returns:**

        - A new `DiskTrajectories` on the same file with `len(rows)` trajectories.
        """
        file_rows = self.file_rows()
        first = self.trajectories[0]
        relative = _check_rows(rows, len(file_rows), 0, f"this view of {self.path!r}")
        return DiskTrajectories(
            self.path, self.file_format, self.dataset,
            trajectories=self.trajectories,
            num_time_steps=self.num_time_steps,
            channels_last=self.channels_last,
            rows=tuple(file_rows[row] - first for row in relative),
        )

    def find_nonfinite(self, block_bytes: int = 64 * 2**20) -> Optional[tuple[int, int]]:
        """Where the first NaN/Inf of this view is, reading the file block by block.

        Training from disk does not scan the data (a NaN shows up as a non-finite
        loss); call this before a long run to find bad snapshots up front. The file
        is read once, in blocks of whole trajectories (or of snapshots of one
        trajectory, if a trajectory is larger) of at most `block_bytes`, so memory
        stays bounded whatever the size of the file.

        **Arguments:**

        - `block_bytes`: the most bytes read at once (at least one snapshot is read).

        **Returns:**

        - `(trajectory, time_index)` of the first snapshot holding a NaN or Inf, in
            the indices of the file (trajectories in file order, then time), or
            `None` if every value is finite.
        """
        if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
            raise ValueError(f"`block_bytes` must be a positive integer, got {block_bytes!r}.")
        snapshot = int(np.prod(self.file_shape[2:], dtype=np.int64)) * np.dtype(self.dtype).itemsize
        length = self.num_time_steps
        first, stop = self.trajectories
        with self.open() as reader:
            if self.rows is None and length * snapshot <= block_bytes:
                group = max(1, block_bytes // (length * snapshot))
                for begin in range(first, stop, group):
                    block = reader.opened.read_block(begin, min(begin + group, stop), 0, length)
                    hit = first_nonfinite(block)
                    if hit is not None:
                        return begin + hit[0], hit[1]
                return None
            # One trajectory at a time (long trajectories, or scattered rows), in blocks
            # of snapshots.
            trajectories = range(first, stop) if self.rows is None else sorted(set(self.rows))
            steps = max(1, block_bytes // snapshot)
            for trajectory in trajectories:
                for start in range(0, length, steps):
                    count = min(steps, length - start)
                    block = reader.opened.read_block(trajectory, trajectory + 1, start, count)
                    hit = first_nonfinite(block)
                    if hit is not None:
                        return trajectory, start + hit[1]
        return None

    def open(self) -> "WindowReader":
        """Open the file for reading windows (close the reader when done)."""
        return WindowReader(self)

    def read(self) -> np.ndarray:
        """All trajectories of this view as one in-memory NumPy array."""
        with self.open() as reader:
            first, stop = self.trajectories
            if self.rows is None:
                return np.ascontiguousarray(
                    reader.opened.read_block(first, stop, 0, self.num_time_steps)
                )
            # A row repeated in the view is read once.
            unique, inverse = np.unique(np.asarray(self.rows), return_inverse=True)
            blocks = [
                reader.opened.read_block(row, row + 1, 0, self.num_time_steps)[0]
                for row in unique.tolist()
            ]
            return np.ascontiguousarray(np.stack(blocks)[inverse])


def _dataset_name(
    file_format: str, dataset: Optional[Union[str, Sequence[str]]]
) -> Optional[str]:
    """The data set argument as one string: a field selection of a `"well"` file may
    be a sequence of names, joined by commas."""
    if dataset is None or isinstance(dataset, str):
        if file_format == "well" and dataset is not None and not all(dataset.split(",")):
            raise ValueError(
                f"`dataset` (the fields of a well file) must be names separated by "
                f"single commas, got {dataset!r}."
            )
        return dataset
    if file_format == "well" and not isinstance(dataset, (bytes, os.PathLike)):
        names = list(dataset)
        if names and all(isinstance(name, str) and name and "," not in name for name in names):
            return ",".join(names)
    raise TypeError(
        "`dataset` must be a data set name (str) or None"
        + (", or for file_format='well' a sequence of field names" if file_format == "well" else "")
        + f", got {dataset!r}."
    )


def _check_rows(rows, count: int, first: int, where: str) -> tuple[int, ...]:
    """`rows` (indices among `count` trajectories starting at file index `first`) as
    file indices."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) and not (
        isinstance(rows, np.ndarray) and rows.ndim == 1
    ):
        raise TypeError(
            f"`rows` must be a sequence of trajectory indices, got {type(rows).__name__}."
        )
    checked = []
    for row in rows:
        if isinstance(row, (bool, np.bool_)) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"`rows` must hold integers, got {row!r} in {where}.")
        if not 0 <= row < count:
            raise ValueError(
                f"`rows` must index the {count} trajectories selected in {where} "
                f"(0 <= row < {count}), got {int(row)}."
            )
        checked.append(first + int(row))
    if not checked:
        raise ValueError(f"`rows` must select at least one trajectory of {where}, got none.")
    return tuple(checked)


def first_nonfinite(trajectories: np.ndarray) -> Optional[tuple[int, int]]:
    """`(trajectory, time_index)` of the first snapshot of `(S, T, ...)` data that
    holds a NaN or Inf (trajectory first, then time), or `None`."""
    bad = ~np.isfinite(trajectories)
    per_snapshot = bad.reshape(bad.shape[:2] + (-1,)).any(axis=-1)
    hits = np.argwhere(per_snapshot)
    if not len(hits):
        return None
    return int(hits[0][0]), int(hits[0][1])


class WindowReader:
    """An open [`trainax_fm.data.DiskTrajectories`][] that reads windows.

    A context manager; one reader per thread (h5py and zarr handles are not shared).
    """

    def __init__(self, source: DiskTrajectories):
        self.source = source
        self.opened: OpenArray = open_array(
            source.file_format, source.path, source.dataset, source.channels_last
        )

    def read_windows(
        self, trajectory: Int[np.ndarray, " n"], start: Int[np.ndarray, " n"], length: int
    ) -> np.ndarray:
        """Windows `[trajectory[i], start[i] : start[i] + length]`, stacked `(n, length, ...)`."""
        first, rows = self.source.trajectories[0], self.source.rows
        out = np.empty((len(trajectory), length) + self.source.file_shape[2:], self.source.dtype)
        for i, (t, s) in enumerate(zip(trajectory.tolist(), start.tolist())):
            out[i] = self.opened.read_window(first + t if rows is None else rows[t], s, length)
        return out

    def close(self) -> None:
        self.opened.close()

    def __enter__(self) -> "WindowReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
