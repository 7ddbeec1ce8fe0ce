"""Saving and loading a trained stepper together with what it wraps.

File layout (as for train states): one JSON header line that says what the stepper
is (normalised or not, the shapes of its statistics, learned loss-weight names), then
the leaves written by `eqx.tree_serialise_leaves`. The header lets a load with the
wrong skeleton fail with a message that says what is missing instead of a shape error.
"""

import json
import os
from pathlib import Path
from typing import IO, Any, Optional, Union

import equinox as eqx
import jax.tree_util as jtu

from .._atomic import atomic_open
from .._stepper._loss_weights import WithLossWeights
from .._stepper._normalized import NormalizedStepper

MAGIC = "trainax_fm-stepper"
FORMAT_VERSION = 1


def read_header(file: IO[bytes]) -> Optional[dict]:
    """The header line of a stepper file or train-state checkpoint opened in binary mode.

    **Arguments:**

    - `file`: the open file, positioned at its start; it is left after the header line.

    **Returns:**

    - The header as a dictionary, or `None` when the first line is not a JSON object
        (not a trainax_fm file).
    """
    try:
        header = json.loads(file.readline())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def describe_stepper(stepper: Any) -> dict:
    """What a file header records about a stepper's wrappers (JSON-serialisable)."""
    names = None
    if isinstance(stepper, WithLossWeights):
        names, stepper = list(stepper.names), stepper.stepper
    if not isinstance(stepper, NormalizedStepper):
        return {"normalized": False, "loss_weight_names": names}
    normalizer = stepper.normalizer
    return {
        "normalized": True,
        "residual": stepper.residual,
        "statistics_shapes": [list(m.shape) for m in jtu.tree_leaves(normalizer.mean)],
        "increment_statistics": normalizer.has_increments,
        "loss_weight_names": names,
    }


def check_same_stepper(path: Path, recorded: dict, like: Any, like_name: str) -> None:
    """Raise a `ValueError` that says how to fix it if `like` is not what was saved."""
    expected = describe_stepper(like)
    if recorded == expected:
        return
    where = f"{str(path)!r}"
    if recorded["normalized"] and not expected["normalized"]:
        problem = (
            f"{where} holds a normalised stepper (NormalizedStepper, statistics of shapes "
            f"{recorded['statistics_shapes']}), but `{like_name}` has no normalisation "
            "statistics. Pass `tx.NormalizedStepper(network, tx.Normalizer.fit(train_data"
            f"{', increments=True' if recorded['increment_statistics'] else ''}), "
            f"residual={recorded['residual']})` as `{like_name}`; the statistics are read "
            "from the file."
        )
    elif expected["normalized"] and not recorded["normalized"]:
        problem = (
            f"{where} holds a stepper without normalisation statistics, but "
            f"`{like_name}` is a NormalizedStepper. Pass the bare network as "
            f"`{like_name}` (and save the NormalizedStepper itself to keep its statistics)."
        )
    else:
        problem = (
            f"{where} holds a stepper described as {recorded}, but `{like_name}` is "
            f"described as {expected}. Build `{like_name}` like the saved stepper (same "
            "statistics shapes, `residual`, loss-weight names)."
        )
    raise ValueError(problem)


def save_stepper(path: Union[str, os.PathLike], stepper: Any) -> Path:
    """Write a stepper (its network, normalisation statistics and learned loss
    weights) to `path` atomically.

    **Arguments:**

    - `path`: target file (its directory is created if needed).
    - `stepper`: any `eqx.Module` stepper, e.g. a [`trainax_fm.NormalizedStepper`][].

    **Returns:**

    - The path written.
    """
    path = Path(path)
    header = {"magic": MAGIC, "format_version": FORMAT_VERSION, **describe_stepper(stepper)}
    with atomic_open(path) as stream:
        stream.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(stream, stepper)
    return path


def load_stepper(path: Union[str, os.PathLike], like: Any) -> Any:
    """Read a stepper written by [`trainax_fm.save_stepper`][].

    **Arguments:**

    - `path`: the file.
    - `like`: a stepper of the same structure (e.g. a freshly initialised network,
        wrapped as the saved one was: a normalised file needs a
        [`trainax_fm.NormalizedStepper`][] with statistics of the same shapes); its
        values are replaced.

    **Returns:**

    - The stepper.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stepper file at {str(path)!r}.")
    with open(path, "rb") as f:
        header = read_header(f)
        if header is None or header.get("magic") != MAGIC:
            raise ValueError(
                f"{str(path)!r} is not a trainax_fm stepper file (missing header); "
                "stepper files are written by trainax_fm.save_stepper."
            )
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has stepper format version {header.get('format_version')}, "
                f"this trainax_fm reads version {FORMAT_VERSION}."
            )
        recorded = {k: v for k, v in header.items() if k not in ("magic", "format_version")}
        check_same_stepper(path, recorded, like, "like")
        try:
            stepper = eqx.tree_deserialise_leaves(f, like)
        except Exception as error:
            raise ValueError(
                f"{str(path)!r} is truncated or does not match `like` "
                f"({type(error).__name__}: {error}). Use the network that was saved."
            ) from None
        if f.read(1):
            raise ValueError(
                f"{str(path)!r} holds more data than `like` describes; use the network "
                "that was saved."
            )
    return stepper
