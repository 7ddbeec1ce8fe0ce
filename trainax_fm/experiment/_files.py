"""Trajectories from files: `file:<path>` (`.npy`/`.npz`, loaded into memory) and the
on-disk sources `npy:<path>`, `hdf5:<path>#<data set>`, `zarr:<path>[#<array>]` and
`well:<path>[#<fields>]` (read during training, see [`trainax_fm.data`][])."""

import os
import zipfile
from pathlib import Path
from typing import Optional

import jax.numpy as jnp
import numpy as np

from ..data import DiskTrajectories, open_trajectories
from ..data._disk import first_nonfinite
from ._dataset import Dataset
from ._errors import ConfigError


def load_trajectory_file(path: os.PathLike, field: str = "data.source") -> np.ndarray:
    """Read trajectories `(S, T, C, *spatial)` from a `.npy` or `.npz` file.

    **Arguments:**

    - `path`: the file. A `.npz` archive must hold an array named `trajectories` or
        exactly one array besides the constants (`constant_scalars`,
        `constant_fields`, read by `load_constants`).
    - `field`: the configuration field named in errors.

    **Returns:**

    - A float32 NumPy array `(S, T, C, *spatial)` with 0 to 3 spatial axes.

    **Raises:**

    - `ConfigError` for a missing file, an unknown suffix, an ambiguous archive, an
        array of the wrong rank, too few snapshots or non-finite values; the message
        names the file and the shape.
    """
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise ConfigError(field, "a .npy or .npz file", repr(str(path)),
                          "save the trajectories with numpy.save or numpy.savez")
    if not path.is_file():
        raise ConfigError(field, "an existing file", f"{str(path)!r} (not found)",
                          "check the path (relative paths start at the config file)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ConfigError(field, "a readable NumPy file", f"{str(path)!r} ({error})") from None
    if hasattr(loaded, "files"):  # an .npz archive (NpzFile)
        with loaded:
            keys = [key for key in loaded.keys() if key not in CONSTANT_KEYS]
            if "trajectories" in keys:
                array = loaded["trajectories"]
            elif len(keys) == 1:
                array = loaded[keys[0]]
            else:
                raise ConfigError(
                    field,
                    "an .npz archive with an array named 'trajectories' or a single array",
                    f"{str(path)!r} with arrays {keys}",
                    "save it as numpy.savez(path, trajectories=array)",
                )
    else:
        array = loaded
    shape = tuple(array.shape)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ConfigError(field, "real numbers", f"dtype {array.dtype} in {str(path)!r}")
    if not 3 <= array.ndim <= 6:
        hint = (
            "add the missing axes, e.g. a single trajectory (T, C, N) as array[None] "
            "or channel-less data (S, T, N) as array[:, :, None]"
            if array.ndim < 3
            else "at most 3 spatial axes are supported"
        )
        raise ConfigError(
            field,
            "an array shaped (S, T, C, *spatial) with 0 to 3 spatial axes (rank 3 to 6)",
            f"shape {shape} (rank {array.ndim}) in {str(path)!r}",
            hint,
        )
    if shape[1] < 2 or shape[0] < 1 or 0 in shape:
        raise ConfigError(
            field,
            "at least one trajectory with at least 2 snapshots (S >= 1, T >= 2) and "
            "no empty axis",
            f"shape {shape} in {str(path)!r}",
            "the axes are (S, T, C, *spatial): samples, time, channels, space",
        )
    array = np.asarray(array, dtype=np.float32)
    bad = first_nonfinite(array)
    if bad is not None:
        raise ConfigError(
            field, "finite values",
            f"NaN/Inf in {str(path)!r} (shape {shape}) at trajectory {bad[0]}, "
            f"time index {bad[1]}",
            "repair or drop that trajectory",
        )
    return array


CONSTANT_KEYS = ("constant_scalars", "constant_fields")


def load_constants(
    path: os.PathLike, trajectories_shape: tuple, field: str = "data.source"
) -> Optional[tuple[Optional[np.ndarray], Optional[np.ndarray]]]:
    """The constants per trajectory stored beside the trajectories in an `.npz`.

    **Arguments:**

    - `path`: the `.npz` (or `.npy`, which holds none) of `load_trajectory_file`.
    - `trajectories_shape`: the shape `(S, T, C, *spatial)` of its trajectories.
    - `field`: the configuration field named in errors.

    **Returns:**

    - `(constant_scalars (S, P), constant_fields (S, F, *spatial))` as float32 (an
      absent one is `None`), or `None` when the file holds neither.

    **Raises:**

    - `ConfigError` for a count of rows other than `S`, a wrong rank, fields whose
        spatial shape differs from the states' or non-finite values.
    """
    path = Path(path)
    if path.suffix != ".npz":
        return None
    with np.load(path, allow_pickle=False) as loaded:
        stored = {key: np.asarray(loaded[key]) for key in CONSTANT_KEYS if key in loaded}
    if not stored:
        return None
    num, spatial = trajectories_shape[0], tuple(trajectories_shape[3:])
    fields_layout = "(" + ", ".join([str(num), "F", *map(str, spatial)]) + ")"
    expected = {
        "constant_scalars": (f"({num}, P)", lambda a: a.ndim == 2),
        "constant_fields": (fields_layout, lambda a: a.shape[2:] == spatial and a.ndim > 1),
    }
    for key, array in stored.items():
        layout, fits = expected[key]
        if array.shape[:1] != (num,) or not fits(array):
            raise ConfigError(
                field, f"`{key}` shaped {layout}: one row per trajectory of "
                f"{str(path)!r} (trajectories {tuple(trajectories_shape)})",
                f"shape {array.shape}",
                f"save it as numpy.savez(path, trajectories=..., {key}=...)",
            )
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise ConfigError(
                field, f"finite numbers in `{key}`", f"{array.dtype} values in {str(path)!r}"
            )
    as_float = lambda key: None if key not in stored else stored[key].astype(np.float32)  # noqa: E731
    return as_float("constant_scalars"), as_float("constant_fields")


def _constant_rows(constants, rows: tuple[int, int]):
    """The constants of the trajectories `start:stop` (`None` stays `None`)."""
    if constants is None:
        return None
    return tuple(None if c is None else jnp.asarray(c[slice(*rows)]) for c in constants)


def _constants(spec: str, shape: tuple, field: str):
    """The constants per trajectory of a `file:` source (on-disk sources hold none)."""
    return load_constants(file_path(spec), shape, field) if spec.startswith("file:") else None


def file_path(source: str) -> Path:
    """The path of a `file:<path>` source."""
    return Path(source[len("file:"):])


def _open_disk(spec: str, field: str) -> DiskTrajectories:
    """The on-disk trajectories of an `npy:`/`hdf5:`/`zarr:` source, checked as a file
    source is (rank, at least 2 snapshots, finite values)."""
    try:
        source = open_trajectories(spec)
    except (OSError, ValueError, TypeError, ImportError) as error:
        raise ConfigError(field, "readable on-disk trajectories", f"{spec!r}: {error}") from None
    if source.ndim > 6 or source.shape[1] < 2:
        raise ConfigError(
            field,
            "trajectories (S, T, C, *spatial) with T >= 2 and at most 3 spatial axes",
            f"shape {source.shape} in {spec!r}",
        )
    # Up front, block by block: a NaN found during training would cost the run and
    # read as a learning-rate problem.
    bad = source.find_nonfinite()
    if bad is not None:
        where = f"file {source.path!r}" + (
            f", data set {source.dataset!r}" if source.dataset else ""
        )
        raise ConfigError(
            field, "finite values",
            f"NaN/Inf in {where} at trajectory {bad[0]}, time index {bad[1]} "
            f"(trajectories {source.shape})",
            "repair or drop that trajectory before training",
        )
    return source


def _load(spec: str, field: str):
    """An in-memory array (`file:`) or on-disk trajectories (`npy:`, `hdf5:`, `zarr:`)."""
    if spec.startswith("file:"):
        return load_trajectory_file(file_path(spec), field)
    return _open_disk(spec, field)


def _rows(trajectories, start: int, stop: int, num_time_steps: int):
    """Trajectories `start:stop`, first `num_time_steps` snapshots (a view on disk)."""
    if isinstance(trajectories, DiskTrajectories):
        return trajectories.select((start, stop), num_time_steps)
    return trajectories[start:stop, :num_time_steps]


def _in_memory(trajectories):
    if isinstance(trajectories, DiskTrajectories):
        return trajectories.read()
    return trajectories


def file_dataset(config: dict, test_horizon: int) -> tuple[Dataset, dict]:
    """The train and test data of a file source, with the sizes filled in.

    `file:` data is loaded into memory. On-disk sources (`npy:`, `hdf5:`, `zarr:`) stay
    on disk for training; only the test trajectories are read into memory.
    """
    data = dict(config["data"])
    source = data["source"]
    full = _load(source, "data.source")
    full_constants = _constants(source, full.shape, "data.source")
    test_constants_all = full_constants
    if data["test_source"]:
        test_all = _load(data["test_source"], "data.test_source")
        test_constants_all = _constants(data["test_source"], test_all.shape, "data.test_source")

        def layout(constants):
            if constants is None:
                return None
            return tuple(None if c is None else c.shape[1:] for c in constants)

        if layout(test_constants_all) != layout(full_constants):
            raise ConfigError(
                "data.test_source",
                f"the constants of the train file (per trajectory: {layout(full_constants)})",
                f"{layout(test_constants_all)} in {data['test_source']!r}",
                "store constant_scalars/constant_fields of the same sizes in both files",
            )
        if test_all.shape[2:] != full.shape[2:]:
            raise ConfigError(
                "data.test_source",
                f"test trajectories with state shape {full.shape[2:]} like the train file",
                f"shape {test_all.shape} in {data['test_source']!r}",
            )
        train_all = full
        if data["num_train_samples"] is None:
            data["num_train_samples"] = train_all.shape[0]
        if data["num_test_samples"] is None:
            data["num_test_samples"] = test_all.shape[0]
        for key, available, where in (("num_train_samples", train_all, source),
                                      ("num_test_samples", test_all, data["test_source"])):
            if data[key] > available.shape[0]:
                raise ConfigError(f"data.{key}", f"at most {available.shape[0]}",
                                  str(data[key]),
                                  f"{where!r} holds {available.shape[0]} trajectories")
        train_rows = (0, data["num_train_samples"])
        test, test_rows = test_all, (0, data["num_test_samples"])
    else:
        total = full.shape[0]
        if data["num_test_samples"] is None:
            if total < 2:
                raise ConfigError(
                    "data.test_source",
                    "a separate test file when the data holds a single trajectory",
                    f"shape {full.shape} in {source!r}",
                    "set test_source = \"file:<path>\"",
                )
            data["num_test_samples"] = max(1, total // 5)
        if data["num_train_samples"] is None:
            data["num_train_samples"] = total - data["num_test_samples"]
        if data["num_train_samples"] + data["num_test_samples"] > total:
            raise ConfigError(
                "data.num_train_samples",
                f"num_train_samples + num_test_samples <= {total} (trajectories in the file)",
                f"{data['num_train_samples']} + {data['num_test_samples']}",
                "lower them or set test_source",
            )
        train_rows = (0, data["num_train_samples"])
        test, test_rows = full, (total - data["num_test_samples"], total)
    train_length = full.shape[1]
    if data["temporal_horizon"] is None:
        data["temporal_horizon"] = train_length
    if data["temporal_horizon"] > train_length:
        raise ConfigError("data.temporal_horizon", f"at most {train_length}",
                          str(data["temporal_horizon"]),
                          f"the train trajectories have {train_length} snapshots")
    train = _rows(full, *train_rows, data["temporal_horizon"])
    if test.shape[1] < test_horizon:
        raise ConfigError(
            "evaluation.num_rollout_steps",
            f"at most {test.shape[1] - 1} (the test trajectories have {test.shape[1]} snapshots)",
            str(test_horizon - 1),
            f"set num_rollout_steps = {test.shape[1] - 1} in [evaluation]",
        )
    test = np.asarray(_in_memory(_rows(test, *test_rows, test_horizon)), dtype=np.float32)
    resolved = {**config, "data": data}
    if resolved["network"]["spec"] is None:
        resolved["network"] = {
            **resolved["network"],
            "spec": "MLP;64;3;tanh" if train.ndim == 3 else "Conv;26;10;relu",
        }
    if not isinstance(train, DiskTrajectories):
        train = jnp.asarray(train)
    dataset = Dataset(
        train, jnp.asarray(test), None, None, 1.0, None,
        train_constants=_constant_rows(full_constants, train_rows),
        test_constants=_constant_rows(test_constants_all, test_rows),
    )
    return dataset, resolved
