"""Reading and writing the small TOML files of the experiment runner.

Reading uses the standard library's `tomllib` (Python >= 3.11) or its backport
`tomli`; writing uses `tomli_w`, after dropping `None` values (TOML has no null) and
refusing non-finite floats (a configuration never holds one).
"""

import math
import os
from pathlib import Path
from typing import Any, Union

import tomli_w

from .._atomic import write_bytes_atomic

try:  # Python >= 3.11
    import tomllib as _toml_reader
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml_reader  # type: ignore[no-redef]

TOMLDecodeError = _toml_reader.TOMLDecodeError


def loads(text: str) -> dict:
    """Parse TOML text into a dict."""
    return _toml_reader.loads(text)


def _writable(value: Any, where: str) -> Any:
    """`value` without its `None` entries; a non-finite float is an error."""
    if isinstance(value, dict):
        return {key: _writable(item, f"{where}.{key}" if where else key)
                for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_writable(item, where) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: cannot write the non-finite float {value!r}.")
    return value


def dumps(document: dict) -> str:
    """Format a dict of scalars and tables of scalars as TOML.

    **Arguments:**

    - `document`: top-level keys map to scalars (strings, booleans, integers, finite
        floats, arrays of them) or to tables of them. `None` values are skipped (TOML
        has no null).

    **Returns:**

    - The TOML text; `loads(dumps(d))` equals `d` without its `None` entries.
    """
    return tomli_w.dumps(_writable(document, ""))


def write_text_atomic(path: Union[str, os.PathLike], text: str) -> Path:
    """Write `text` to `path` through a temporary file and `os.replace`."""
    return write_bytes_atomic(path, text.encode())
