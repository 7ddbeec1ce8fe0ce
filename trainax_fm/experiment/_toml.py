"""Reading and writing the small TOML files of the experiment runner.

Reading uses the standard library's `tomllib` (Python >= 3.11) or its backport
`tomli`. Writing is a tiny writer for what the runner emits: top-level scalars
followed by one level of tables holding scalars (strings, booleans, integers, finite
floats) or flat arrays of them.
"""

import json
import math
import os
from pathlib import Path
from typing import Any, Union

from .._atomic import write_bytes_atomic

try:  # Python >= 3.11
    import tomllib as _toml_reader
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml_reader  # type: ignore[no-redef]

TOMLDecodeError = _toml_reader.TOMLDecodeError


def loads(text: str) -> dict:
    """Parse TOML text into a dict."""
    return _toml_reader.loads(text)


def _bare_key_ok(key: str) -> bool:
    return bool(key) and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)


def _key(key: str) -> str:
    return key if _bare_key_ok(key) else _string(key)


def _string(value: str) -> str:
    # JSON escapes (\" \\ \n \t \uXXXX ...) are all valid TOML basic-string escapes;
    # TOML additionally forbids a raw DEL character.
    return json.dumps(value).replace("\x7f", "\\u007f")


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: cannot write the non-finite float {value!r}.")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v, where) for v in value) + "]"
    raise TypeError(f"{where}: cannot write a value of type {type(value).__name__} to TOML.")


def dumps(document: dict) -> str:
    """Format a dict of scalars and one level of tables of scalars as TOML.

    **Arguments:**

    - `document`: top-level keys map to scalars or to dicts of scalars. `None`
        values are skipped (TOML has no null).

    **Returns:**

    - The TOML text; `loads(dumps(d))` equals `d` without its `None` entries.
    """
    lines = []
    tables = []
    for key, value in document.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_scalar(value, key)}")
    for name, table in tables:
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        for key, value in table.items():
            if value is None:
                continue
            if isinstance(value, dict):
                raise TypeError(f"{name}.{key}: nested tables are not supported by this writer.")
            lines.append(f"{_key(key)} = {_scalar(value, f'{name}.{key}')}")
    return "\n".join(lines) + "\n"


def write_text_atomic(path: Union[str, os.PathLike], text: str) -> Path:
    """Write `text` to `path` through a temporary file and `os.replace`."""
    return write_bytes_atomic(path, text.encode())
