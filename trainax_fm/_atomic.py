"""Atomic file writes: a temporary file beside the target, then `os.replace`.

Every file trainax_fm writes (train states, networks, figures, configs, tables) goes
through here, so an interrupted write never leaves a truncated file under the final
name and never damages the previous version.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

import equinox as eqx
from jaxtyping import PyTree

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a fresh temporary path next to `path`; move it onto `path` on success.

    The temporary file lives in the target's directory (created if missing), so the
    final `os.replace` is atomic; it is flushed to disk before the move. On any error,
    `KeyboardInterrupt` included, the temporary file is removed and `path` is left as
    it was. `suffix` keeps the file type visible to writers that go by the name
    (e.g. matplotlib).
    """
    path = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    while True:
        temporary = os.path.join(directory, f".{base}.{uuid.uuid4().hex[:12]}{suffix}")
        try:
            # mode 0o666 filtered by the umask, as for a plain `open(path, "w")`
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
            os.close(os.open(temporary, flags, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[BinaryIO]:
    """A binary stream whose contents replace `path` atomically when the block ends."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        yield stream


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_open(path) as stream:
        stream.write(data)
    return Path(path)


def save_tree_atomic(path: PathLike, tree: PyTree) -> Path:
    """`eqx.tree_serialise_leaves(path, tree)`, atomically; returns the path."""
    with atomic_open(path) as stream:
        eqx.tree_serialise_leaves(stream, tree)
    return Path(path)
