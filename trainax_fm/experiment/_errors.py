"""The one error type of the experiment runner: a configuration problem."""

from typing import Any, Optional


def describe_value(value: Any) -> str:
    """`repr` of a value followed by its TOML-ish type name, for error messages."""
    kind = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        dict: "table",
        list: "array",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


class ConfigError(ValueError):
    """An experiment configuration is invalid.

    The message names the field by its dotted path (e.g. `training.batch_size`), what
    was expected, what was found and how to fix it. The pieces are also available as
    attributes.

    **Arguments:**

    - `path`: dotted path of the offending field (`""` for the whole file).
    - `expected`: what the field must be.
    - `actual`: what was found (already formatted).
    - `fix`: a hint how to repair it (optional).
    - `source`: the file the configuration came from (optional).
    """

    def __init__(
        self,
        path: str,
        expected: str,
        actual: str,
        fix: Optional[str] = None,
        *,
        source: Optional[str] = None,
    ):
        self.path = path
        self.expected = expected
        self.actual = actual
        self.fix = fix
        self.source = source
        where = f"{source}: " if source else ""
        field = f"`{path}`" if path else "the configuration"
        message = f"{where}{field}: expected {expected}, got {actual}"
        # `actual` may quote a sentence that already ends the message
        message += "" if message.endswith(".") else "."
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)

    def with_source(self, source: str) -> "ConfigError":
        """A copy of this error that also names the configuration file."""
        return ConfigError(self.path, self.expected, self.actual, self.fix, source=source)
