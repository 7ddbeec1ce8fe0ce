"""Open trajectories stored in a `.npy` file, an HDF5 data set, a zarr array or the
per-field HDF5 groups of the_well.

Each format is read through its own engine (NumPy and `os.pread`, h5py, zarr); what the
rest of trainax_fm sees is an object with the shape `(S, T, C, *spatial)` that reads
windows and blocks of trajectories in that layout, and can be closed. Layouts that
differ on disk (channels last, one data set per field) are rearranged per read, so
opening a file never loads it.
"""

import os
from typing import Any, Optional, Sequence

import numpy as np

FORMATS = ("npy", "hdf5", "zarr", "well")
INSTALL_HINT = {"hdf5": "pip install h5py", "zarr": "pip install zarr",
                "well": "pip install h5py"}
# the_well's groups of fields and the number of trailing component axes of each.
WELL_GROUPS = {"t0_fields": 0, "t1_fields": 1, "t2_fields": 2}
WELL_DEFAULT_GROUPS = ("t0_fields", "t1_fields")


class OpenArray:
    """A stored array `(S, T, C, *spatial)` opened for reading, with what keeps it open.

    **Arguments:**

    - `array`: the array-like object (`np.memmap`, `h5py.Dataset`, `zarr.Array`).
    - `handle`: the open file to close afterwards, or `None`.
    """

    def __init__(self, array: Any, handle: Any = None):
        self.array = array
        self.handle = handle

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def read_window(self, trajectory: int, start: int, length: int) -> np.ndarray:
        """Snapshots `start : start + length` of `trajectory`, `(length, C, *spatial)`."""
        return self.array[trajectory, start : start + length]

    def read_block(self, first: int, stop: int, start: int, length: int) -> np.ndarray:
        """Snapshots `start : start + length` of trajectories `first : stop`."""
        return np.asarray(self.array[first:stop, start : start + length])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class NpyArray(OpenArray):
    """A `.npy` file: a memory map for its layout and whole-array reads, and one
    `os.pread` per window.

    Reading windows through the memory map would map the pages it touches (and the
    kernel's read-around) into the process, so its resident memory would grow
    towards the size of the file over a long run; `pread` copies just the window
    and leaves the caching to the page cache.
    """

    def __init__(self, array: np.memmap, path: str):
        super().__init__(array)
        self.descriptor = os.open(path, os.O_RDONLY)
        self.snapshot = int(np.prod(array.shape[2:], dtype=np.int64)) * array.dtype.itemsize
        self.trajectory = array.shape[1] * self.snapshot

    def read_window(self, trajectory: int, start: int, length: int) -> np.ndarray:
        offset = self.array.offset + trajectory * self.trajectory + start * self.snapshot
        data = os.pread(self.descriptor, length * self.snapshot, offset)
        return np.frombuffer(data, self.array.dtype).reshape((length,) + self.array.shape[2:])

    def read_block(self, first: int, stop: int, start: int, length: int) -> np.ndarray:
        if start == 0 and length == self.array.shape[1]:
            # Whole trajectories are one contiguous range of the file: one read.
            offset = self.array.offset + first * self.trajectory
            data = os.pread(self.descriptor, (stop - first) * self.trajectory, offset)
            return np.frombuffer(data, self.array.dtype).reshape(
                (stop - first,) + self.array.shape[1:]
            )
        return np.stack([self.read_window(t, start, length) for t in range(first, stop)])

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


class ChannelsLast(OpenArray):
    """A stored array `(S, T, *spatial, C)` seen as `(S, T, C, *spatial)`.

    The channel axis is moved on each window or block read, never on the whole file.

    **Arguments:**

    - `stored`: the opened array in its stored layout.
    """

    def __init__(self, stored: OpenArray):
        self.stored = stored

    @property
    def shape(self) -> tuple[int, ...]:
        stored = self.stored.shape
        return stored[:2] + stored[-1:] + stored[2:-1]

    @property
    def dtype(self) -> np.dtype:
        return self.stored.dtype

    def read_window(self, trajectory: int, start: int, length: int) -> np.ndarray:
        return np.moveaxis(self.stored.read_window(trajectory, start, length), -1, 1)

    def read_block(self, first: int, stop: int, start: int, length: int) -> np.ndarray:
        return np.moveaxis(self.stored.read_block(first, stop, start, length), -1, 2)

    def close(self) -> None:
        self.stored.close()


def _components_as_channels(values: np.ndarray, num_leading: int, num_components: int):
    """`(*leading, *spatial, *components)` -> `(*leading, prod(components), *spatial)`,
    the components flattened in row-major order (`(d1, d2)` -> `d1 * D + d2`)."""
    if num_components == 0:
        return np.expand_dims(values, num_leading)
    flat = values.reshape(values.shape[: values.ndim - num_components] + (-1,))
    return np.moveaxis(flat, -1, num_leading)


class WellFields(OpenArray):
    """Fields stored one data set each (the_well's `t0_fields/NAME` `(S, T, *spatial)`,
    `t1_fields/NAME` `(S, T, *spatial, D)`, `t2_fields/NAME` `(S, T, *spatial, D, D)`),
    seen as one array `(S, T, C, *spatial)` whose channels are the fields in order, a
    vector's `D` components and a tensor's `D * D` components (row-major) each one
    channel.

    **Arguments:**

    - `handle`: the open `h5py.File`.
    - `fields`: the data set paths, e.g. `("t0_fields/density", "t1_fields/velocity")`.
    - `shape`, `dtype`: the combined shape `(S, T, C, *spatial)` and dtype.
    """

    def __init__(self, handle: Any, fields: Sequence[str], shape: tuple, dtype: np.dtype):
        self.handle = handle
        self.datasets = [handle[field] for field in fields]
        self.num_components = [WELL_GROUPS[field.split("/")[0]] for field in fields]
        self._shape = tuple(shape)
        self._dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def read_window(self, trajectory: int, start: int, length: int) -> np.ndarray:
        return np.concatenate([
            _components_as_channels(np.asarray(data[trajectory, start : start + length]), 1, k)
            for data, k in zip(self.datasets, self.num_components)
        ], axis=1).astype(self._dtype, copy=False)

    def read_block(self, first: int, stop: int, start: int, length: int) -> np.ndarray:
        return np.concatenate([
            _components_as_channels(np.asarray(data[first:stop, start : start + length]), 2, k)
            for data, k in zip(self.datasets, self.num_components)
        ], axis=2).astype(self._dtype, copy=False)


def _well_field_names(handle: Any, group: str) -> list[str]:
    """The fields of a group of the_well's layout, in its `field_names` order (sorted
    data set names where the attribute is missing)."""
    names = sorted(handle[group].keys())
    listed = handle[group].attrs.get("field_names")
    if listed is None:
        return names
    listed = [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(listed)]
    # Data sets missing from the attribute still count, after the listed ones.
    return [n for n in listed if n in names] + [n for n in names if n not in listed]


def well_fields(handle: Any, path: str, selection: Optional[Sequence[str]]) -> list[str]:
    """Resolve a selection of fields of a file in the_well's layout to data set paths.

    **Arguments:**

    - `handle`: the open `h5py.File`; `path`: its path (for messages).
    - `selection`: field names (`"density"`, or `"t1_fields/velocity"` where a name is
        in several groups); `None` selects every field of `t0_fields`, then of
        `t1_fields`, each group in the order of its `field_names` attribute.

    **Returns:**

    - The paths `"<group>/<name>"`, in channel order.
    """
    available = [f"{group}/{name}" for group in WELL_GROUPS if group in handle
                 for name in _well_field_names(handle, group)]
    if not available:
        raise ValueError(
            f"HDF5 file {path!r} is not in the_well's layout: it has no data sets in "
            f"groups {list(WELL_GROUPS)}. For one array (S, T, C, *spatial) use "
            f"'hdf5:{path}#<data set>'."
        )
    if selection is None:
        chosen = [f for f in available if f.split("/")[0] in WELL_DEFAULT_GROUPS]
        if not chosen:
            raise ValueError(
                f"HDF5 file {path!r} has no t0_fields or t1_fields to select by default; "
                f"it holds {available}. Name the fields: 'well:{path}#<field>,<field>'."
            )
        return chosen
    resolved = []
    for name in selection:
        matches = [f for f in available if name in (f, f.split("/", 1)[1])]
        if not matches:
            raise ValueError(
                f"HDF5 file {path!r} has no field {name!r}; it holds {available}. Name "
                "fields as they are stored (e.g. 'density' or 't1_fields/velocity')."
            )
        if len(matches) > 1:
            raise ValueError(
                f"the field name {name!r} is in several groups of {path!r} ({matches}); "
                "name it with its group, e.g. " + repr(matches[0]) + "."
            )
        if matches[0] in resolved:
            raise ValueError(f"the field {matches[0]!r} of {path!r} is selected twice.")
        resolved.append(matches[0])
    return resolved


def open_well(h5py: Any, handle: Any, path: str, fields: Sequence[str]) -> WellFields:
    """The fields `fields` (resolved paths) of an open file as one `WellFields`,
    after checking that they share `(S, T, *spatial)` and are floating point."""
    layout, first = None, None
    dtypes = []
    for field in fields:
        data = handle[field]
        if not isinstance(data, h5py.Dataset):
            raise ValueError(f"{field!r} in {path!r} is a group, not a field's data set.")
        shape, components = tuple(int(n) for n in data.shape), WELL_GROUPS[field.split("/")[0]]
        layout_name = ["(S, T, *spatial)", "(S, T, *spatial, D)",
                       "(S, T, *spatial, D, D)"][components]
        if len(shape) < 2 + components:
            raise ValueError(
                f"the field {field!r} in {path!r} must be shaped {layout_name}, got shape "
                f"{shape}. Fields that do not vary over trajectories or time are not "
                "supported; leave them out of the selection."
            )
        if components == 2 and shape[-1] != shape[-2]:
            raise ValueError(
                f"the field {field!r} in {path!r} must be shaped {layout_name} with a "
                f"square D x D tensor, got shape {shape}."
            )
        leading = shape[: len(shape) - components]
        if layout is None:
            layout, first = leading, field
        elif leading != layout:
            raise ValueError(
                f"the fields of {path!r} must share (S, T, *spatial): {first!r} has "
                f"{layout}, but {field!r} has {leading} (shape {shape}). Select fields "
                "of one grid."
            )
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(
                f"the field {field!r} in {path!r} must be floating point, got dtype "
                f"{data.dtype}."
            )
        dtypes.append(data.dtype)
    num_channels = sum(
        int(np.prod(handle[f].shape[len(layout):], dtype=np.int64)) for f in fields
    )
    shape = layout[:2] + (num_channels,) + layout[2:]
    return WellFields(handle, fields, shape, np.result_type(*dtypes))


def _import(module: str, file_format: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(
            f"reading {file_format} trajectories needs {module}: "
            f"`{INSTALL_HINT[file_format]}` (or `pip install 'trainax_fm[data]'`)."
        ) from None


def open_array(
    file_format: str, path: str, dataset: Optional[str], channels_last: bool = False
) -> OpenArray:
    """Open the array `dataset` of the file `path` stored in `file_format`.

    **Arguments:**

    - `file_format`, `path`, `dataset`: as for [`trainax_fm.data.DiskTrajectories`][]
        (for `"well"`, `dataset` holds the comma-separated field names or `None`).
    - `channels_last`: the stored array is `(S, T, *spatial, C)`.

    **Returns:**

    - An `OpenArray` seen as `(S, T, C, *spatial)`.

    **Raises:**

    - `FileNotFoundError` for a missing file; `ValueError` for a data set name that
        the file does not hold (the message lists those it holds) or a file the engine
        cannot read; `ImportError` when the format's engine is not installed.
    """
    opened = _open_stored(file_format, path, dataset)
    if not channels_last:
        return opened
    if len(opened.shape) < 3:
        # Too few axes to hold a channel axis anywhere; reported by the caller.
        return opened
    return ChannelsLast(opened)


def _open_stored(file_format: str, path: str, dataset: Optional[str]) -> OpenArray:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {file_format} trajectory file at {path!r}.")
    if file_format == "npy":
        if dataset is not None:
            raise ValueError(
                f"a .npy file holds one array, but a data set name {dataset!r} was given "
                f"for {path!r}; drop the name (write 'npy:{path}')."
            )
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{path!r} is not a readable .npy file ({error}).") from None
        # Fortran order (windows not contiguous) or a wrong rank (reported by the caller).
        if array.ndim < 3 or not array.flags.c_contiguous:
            return OpenArray(array)
        return NpyArray(array, path)
    if file_format == "hdf5":
        h5py = _import("h5py", "hdf5")
        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise ValueError(f"{path!r} is not a readable HDF5 file ({error}).") from None
        names: list[str] = []
        handle.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        if dataset is None or dataset.strip("/") not in names:
            handle.close()
            missing = ("needs the name of a data set" if dataset is None
                       else f"has no data set {dataset!r}")
            raise ValueError(
                f"HDF5 file {path!r} {missing}; it holds "
                f"{names or 'no data sets'}. Name one as 'hdf5:{path}#<data set>'."
            )
        return OpenArray(handle[dataset], handle)
    if file_format == "zarr":
        zarr = _import("zarr", "zarr")
        try:
            node = zarr.open(path, mode="r")
        except Exception as error:  # zarr raises several types for unreadable stores
            raise ValueError(f"{path!r} is not a readable zarr store ({error}).") from None
        if isinstance(node, zarr.Array):
            if dataset is not None:
                raise ValueError(
                    f"zarr store {path!r} is a single array, but an array name "
                    f"{dataset!r} was given; drop the name (write 'zarr:{path}')."
                )
            return OpenArray(node)
        names = sorted(name for name, _ in node.arrays())
        if dataset is None or dataset.strip("/") not in names:
            missing = ("needs the name of an array" if dataset is None
                       else f"has no array {dataset!r}")
            raise ValueError(
                f"zarr group {path!r} {missing}; it holds "
                f"{names or 'no arrays'}. Name one as 'zarr:{path}#<array>'."
            )
        return OpenArray(node[dataset])
    if file_format == "well":
        h5py = _import("h5py", "well")
        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise ValueError(f"{path!r} is not a readable HDF5 file ({error}).") from None
        try:
            selection = None if dataset is None else dataset.split(",")
            return open_well(h5py, handle, path, well_fields(handle, path, selection))
        except BaseException:
            handle.close()
            raise
    raise ValueError(f"`file_format` must be one of {FORMATS}, got {file_format!r}.")
