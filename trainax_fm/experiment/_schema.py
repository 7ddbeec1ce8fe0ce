"""Typed fields of the configuration schema and their strict checks."""

import dataclasses
import difflib
import math
import re
from typing import Any, Callable, Optional

from ._errors import ConfigError, describe_value

_MISSING = object()
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclasses.dataclass(frozen=True)
class Field:
    """One scalar field of the schema.

    **Arguments:**

    - `kind`: `"int"`, `"float"`, `"str"`, `"bool"`, `"floats"` (a list of numbers) or
        `"names"` (a list of names, written as a `';'`-separated string or a TOML array of
        strings; kept as the `';'`-separated string).
    - `default`: the default value, or `None` when it is derived from other fields.
    - `minimum`, `maximum`: inclusive bounds for numbers.
    - `exclusive_minimum`: whether `minimum` itself is excluded.
    - `choices`: allowed values of a string field.
    - `pattern`: a regular expression a string must match in full.
    - `doc`: one line describing the field (used in `--help` texts and errors).
    - `example`: an example value for the fix hint.
    """

    kind: str
    default: Any = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    exclusive_minimum: bool = False
    choices: Optional[tuple] = None
    pattern: Optional[re.Pattern] = None
    doc: str = ""
    example: Any = None

    def expected(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = {"int": "an integer", "float": "a number", "str": "a string",
                "bool": "true or false", "floats": "a list of numbers",
                "names": "a ';'-separated string or an array of strings"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            left = "(" if self.exclusive_minimum else "["
            text += f" in {left}{self.minimum}, {self.maximum}]"
        elif self.minimum is not None:
            text += f" {'>' if self.exclusive_minimum else '>='} {self.minimum}"
        elif self.maximum is not None:
            text += f" <= {self.maximum}"
        if self.pattern is not None:
            text += " made of letters, digits, '_', '.', '+', '-' (not starting with a symbol)"
        return text

    def check(self, value: Any, path: str) -> Any:
        """Return `value` converted to the field's type, or raise a `ConfigError`."""
        key = path.rsplit(".", 1)[-1]
        table = path.rsplit(".", 1)[0] if "." in path else None
        where = f"in [{table}]" if table else "at the top of the file"
        example = self.example if self.example is not None else self.default
        fix = f"set {key} = {_toml_repr(example)} {where}" if example is not None else None
        if self.doc:
            fix = (fix + f" ({self.doc})") if fix else self.doc

        def fail():
            return ConfigError(path, self.expected(), describe_value(value), fix)

        if self.kind == "bool":
            if not isinstance(value, bool):
                raise fail()
            return value
        if self.kind == "floats":
            numbers = value if isinstance(value, (list, tuple)) else [None]
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in numbers
            ):
                raise fail()
            return tuple(float(v) for v in numbers)
        if self.kind == "names":
            if isinstance(value, (list, tuple)):
                if not all(isinstance(v, str) and v.strip() and ";" not in v for v in value):
                    raise fail()
                value = ";".join(v.strip() for v in value)
            elif not isinstance(value, str):
                raise fail()
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise fail()
            if self.choices is not None and value not in self.choices:
                close = difflib.get_close_matches(value, self.choices, n=1)
                raise ConfigError(
                    path, self.expected(), describe_value(value),
                    f"did you mean {close[0]!r}?" if close else fix,
                )
            if self.pattern is not None and not self.pattern.fullmatch(value):
                raise fail()
            return value
        if isinstance(value, bool):
            raise fail()
        if self.kind == "int":
            if not isinstance(value, int):
                raise fail()
        elif self.kind == "float":
            if not isinstance(value, (int, float)):
                raise fail()
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise fail()
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                raise fail()
        if self.maximum is not None and value > self.maximum:
            raise fail()
        return value


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_repr(v) for v in value) + "]"
    return repr(value)


def check_table(
    raw: Any,
    fields: dict[str, Field],
    path: str,
    *,
    derived: Optional[dict[str, Callable[[dict], Any]]] = None,
    context: str = "",
) -> dict:
    """Check one table: unknown keys, types, ranges; fill defaults.

    **Arguments:**

    - `raw`: the table as read from TOML (a dict).
    - `fields`: the allowed keys.
    - `path`: the table's name (`""` for the top level).
    - `derived`: defaults computed from the already checked values, per key.
    - `context`: extra words for the unknown-key message (e.g. the data source).

    **Returns:**

    - A new dict with every key of `fields`, in schema order.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            path, "a table", describe_value(raw), f"write it as a [{path}] section"
        )
    for key in raw:
        if key not in fields:
            full = f"{path}.{key}" if path else key
            close = difflib.get_close_matches(key, list(fields), n=1)
            allowed = ", ".join(fields)
            raise ConfigError(
                full,
                f"a known key{context} ({allowed})",
                f"the unknown key {key!r}",
                (f"did you mean {close[0]!r}? " if close else "") + "remove or rename it",
            )
    out = {}
    for key, field in fields.items():
        full = f"{path}.{key}" if path else key
        if key in raw:
            out[key] = field.check(raw[key], full)
        elif derived and key in derived:
            out[key] = None  # filled below, once the other fields are known
        else:
            out[key] = field.default
    for key, make in (derived or {}).items():
        if out[key] is None:
            out[key] = make(out)
    return out


NAME_PATTERN = _NAME
MISSING = _MISSING
