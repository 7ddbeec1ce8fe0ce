"""`Catalogue` and `load_catalogue`: a catalogue of trajectories on disk, read back with
its per-trajectory metadata (written by `generate_catalogue`)."""

import hashlib
import json
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union, final

import numpy as np
from jaxtyping import Float

from ..data._disk import DiskTrajectories
from ._split import SPLITS

TRAJECTORIES_FILE = "trajectories.npy"
METADATA_FILE = "catalogue.json"
FORMAT = "trainax_fm.systems.catalogue"
FORMAT_VERSION = 1



def _json_value(value: Any) -> Any:
    return np.asarray(value).tolist() if isinstance(value, np.ndarray) else value


@final
class Catalogue:
    """A catalogue on disk: `trajectories.npy` `(S, T, C)` float32 and
    `catalogue.json`, as written by [`trainax_fm.systems.generate_catalogue`][].

    Training trajectories come first, then the test trajectories, so each split is
    one contiguous block of the file (readable as a
    [`trainax_fm.data.DiskTrajectories`][] view).

    **Attributes:**

    - `path`: the catalogue's directory.
    - `shape`: `(S, T, C)`.
    - `trajectories`: per trajectory, a read-only mapping with `"system"` (the
        system's name: the label to mix by), `"base_systems"`, `"parameters"`,
        `"perturbation"` (0 for the default parameters, then 1, 2, ...), `"dt"`,
        `"dimension"`, `"channels"` (the `(coordinate, delay)` pairs of
        [`trainax_fm.systems.channel_selection`][]), `"lyapunov_exponent"` (or
        `None`) and `"split"`.
    - `rejections`: reason -> number of rejected system variants and trajectories
        (every reason of [`trainax_fm.systems.REJECTION_REASONS`][], zeros included).
    - `rejections_by_system`: system name -> its non-zero rejection counts.
    - `metadata`: the whole of `catalogue.json`.
    """

    __slots__ = ("path", "shape", "trajectories", "rejections", "rejections_by_system", "metadata")

    path: Path
    shape: tuple[int, int, int]
    trajectories: tuple[Mapping[str, Any], ...]
    rejections: Mapping[str, int]
    rejections_by_system: Mapping[str, Mapping[str, int]]
    metadata: Mapping[str, Any]

    def __init__(self, path: Union[str, os.PathLike], metadata: Mapping[str, Any]):
        set_ = object.__setattr__
        set_(self, "path", Path(path))
        set_(self, "shape", tuple(metadata["shape"]))
        set_(
            self,
            "trajectories",
            tuple(types.MappingProxyType(dict(entry)) for entry in metadata["trajectories"]),
        )
        set_(self, "rejections", types.MappingProxyType(dict(metadata["rejections"])))
        set_(
            self,
            "rejections_by_system",
            types.MappingProxyType(
                {
                    k: types.MappingProxyType(dict(v))
                    for k, v in metadata["rejections_by_system"].items()
                }
            ),
        )
        set_(self, "metadata", types.MappingProxyType(dict(metadata)))

    def __setattr__(self, name, value):
        raise AttributeError("Catalogue is frozen.")

    def __reduce__(self):
        return (Catalogue, (self.path, dict(self.metadata)))

    def __repr__(self) -> str:
        return (
            f"Catalogue(path={str(self.path)!r}, shape={self.shape}, "
            f"systems={list(self.system_names)}, train={self.num_trajectories('train')}, "
            f"test={self.num_trajectories('test')})"
        )

    @property
    def trajectories_path(self) -> Path:
        """The `(S, T, C)` float32 `.npy` file."""
        return self.path / TRAJECTORIES_FILE

    @property
    def systems(self) -> tuple[str, ...]:
        """The system name of each trajectory (the labels a mixture weights by)."""
        return tuple(entry["system"] for entry in self.trajectories)

    @property
    def system_names(self) -> tuple[str, ...]:
        """The distinct system names, in order of first appearance."""
        return tuple(dict.fromkeys(self.systems))

    def system_labels(self, split: Optional[str] = None) -> tuple[tuple[str, ...], np.ndarray]:
        """Each trajectory's system as an integer label (for mixing weights per system).

        **Arguments:**

        - `split`: `"train"`, `"test"` or `None` (all), in file order.

        **Returns:**

        - `(names, labels)`: the distinct system names of the split in order of first
            appearance, and an int32 array with one index into `names` per trajectory.
        """
        systems = [entry["system"] for entry in self.entries(split)]
        names = tuple(dict.fromkeys(systems))
        index = {name: i for i, name in enumerate(names)}
        return names, np.array([index[name] for name in systems], dtype=np.int32)

    @property
    def splits(self) -> tuple[str, ...]:
        """`"train"` or `"test"` per trajectory."""
        return tuple(entry["split"] for entry in self.trajectories)

    def _check_split(self, split: Optional[str]) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f"`split` must be None, 'train' or 'test', got {split!r}.")

    def num_trajectories(self, split: Optional[str] = None) -> int:
        """How many trajectories (of a split, or in all)."""
        self._check_split(split)
        return sum(1 for s in self.splits if split is None or s == split)

    def _range(self, split: Optional[str]) -> tuple[int, int]:
        self._check_split(split)
        num_train = self.num_trajectories("train")
        start, stop = {
            None: (0, self.shape[0]),
            "train": (0, num_train),
            "test": (num_train, self.shape[0]),
        }[split]
        if start == stop:
            raise ValueError(
                f"the catalogue at {str(self.path)!r} has no {split!r} trajectories "
                f"(held out: {self.metadata['held_out']})."
            )
        return start, stop

    def open(self, split: Optional[str] = None) -> DiskTrajectories:
        """The trajectories (of a split) as a [`trainax_fm.data.DiskTrajectories`][],
        read from the file window by window during training.

        **Arguments:**

        - `split`: `"train"`, `"test"` or `None` (all).
        """
        return DiskTrajectories(self.trajectories_path, trajectories=self._range(split))

    def load(self, split: Optional[str] = None) -> Float[np.ndarray, "trajectories time channels"]:
        """The trajectories (of a split) in memory, `(S, T, C)` float32.

        **Arguments:**

        - `split`: `"train"`, `"test"` or `None` (all).
        """
        start, stop = self._range(split)
        return np.load(self.trajectories_path, mmap_mode="r")[start:stop].copy()

    def entries(self, split: Optional[str] = None) -> tuple[Mapping[str, Any], ...]:
        """The metadata of the trajectories of a split, in file order."""
        self._check_split(split)
        return tuple(e for e in self.trajectories if split is None or e["split"] == split)


def load_catalogue(path: Union[str, os.PathLike], *, verify: bool = True) -> Catalogue:
    """Open a catalogue written by [`trainax_fm.systems.generate_catalogue`][].

    **Arguments:**

    - `path`: the catalogue's directory.
    - `verify`: check the trajectories file against the SHA-256 recorded in
        `catalogue.json` (reads the file once).

    **Returns:**

    - The [`trainax_fm.systems.Catalogue`][].

    **Raises:**

    - `FileNotFoundError` if a file is missing; `ValueError` if `catalogue.json` is
        not a catalogue or the trajectories do not match it.
    """
    path = Path(path)
    meta_path, data_path = path / METADATA_FILE, path / TRAJECTORIES_FILE
    for file in (meta_path, data_path):
        if not file.is_file():
            raise FileNotFoundError(
                f"{str(file)!r} does not exist: `path` must be a directory written by "
                "generate_catalogue."
            )
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(meta_path)!r} is not valid JSON: {error}.") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(
            f"{str(meta_path)!r} is not a trainax_fm catalogue (no format {FORMAT!r})."
        )
    if metadata.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{str(meta_path)!r} has catalogue version {metadata.get('version')!r}; this "
            f"trainax_fm reads version {FORMAT_VERSION}."
        )
    stored = np.load(data_path, mmap_mode="r")
    if list(stored.shape) != metadata["shape"] or stored.dtype != np.float32:
        raise ValueError(
            f"{str(data_path)!r} holds {stored.dtype} {tuple(stored.shape)}, catalogue.json "
            f"records float32 {tuple(metadata['shape'])}: the two files do not belong together."
        )
    if verify:
        digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
        if digest != metadata["trajectories_sha256"]:
            raise ValueError(
                f"{str(data_path)!r} does not match the SHA-256 recorded in catalogue.json: the "
                "files do not belong together (an interrupted rewrite?). Regenerate the catalogue."
            )
    return Catalogue(path, metadata)
