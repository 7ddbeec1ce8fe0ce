"""Open a trajectory array stored in a `.npy` file, an HDF5 data set or a zarr array.

Each format is read through its own engine (NumPy and `os.pread`, h5py, zarr); what the
rest of trainax_fm sees is an object that can be sliced like an array and closed.
"""

import os
from typing import Any, Optional

import numpy as np

FORMATS = ("npy", "hdf5", "zarr")
INSTALL_HINT = {"hdf5": "pip install h5py", "zarr": "pip install zarr"}


class OpenArray:
    """A stored array opened for reading, with what keeps it open.

    **Arguments:**

    - `array`: the array-like object (`np.memmap`, `h5py.Dataset`, `zarr.Array`).
    - `handle`: the open file to close afterwards, or `None`.
    """

    def __init__(self, array: Any, handle: Any = None):
        self.array = array
        self.handle = handle

    def read_window(self, trajectory: int, start: int, length: int) -> np.ndarray:
        """Snapshots `start : start + length` of `trajectory`."""
        return self.array[trajectory, start : start + length]

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

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


def _import(module: str, file_format: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(
            f"reading {file_format} trajectories needs {module}: "
            f"`{INSTALL_HINT[file_format]}` (or `pip install 'trainax_fm[data]'`)."
        ) from None


def open_array(file_format: str, path: str, dataset: Optional[str]) -> OpenArray:
    """Open the array `dataset` of the file `path` stored in `file_format`.

    **Raises:**

    - `FileNotFoundError` for a missing file; `ValueError` for a data set name that
        the file does not hold (the message lists those it holds) or a file the engine
        cannot read; `ImportError` when the format's engine is not installed.
    """
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
    raise ValueError(f"`file_format` must be one of {FORMATS}, got {file_format!r}.")
