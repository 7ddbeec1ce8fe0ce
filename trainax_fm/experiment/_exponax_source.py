"""Any exponax stepper as a data source: `source = "exponax:<Stepper>"`.

The stepper classes of `exponax.stepper`, `exponax.stepper.generic` and
`exponax.stepper.reaction` are found by name; their keyword parameters become keys of
`[data]`, typed from their defaults and checked like every other key.
"""

import importlib
import inspect
from typing import Any

from ._errors import ConfigError
from ._schema import Field

PDE_HINT = "pip install 'trainax_fm[pde]'"
_MODULES = ("exponax.stepper", "exponax.stepper.generic", "exponax.stepper.reaction")
# Parameters every exponax stepper takes positionally; they are the [data] keys of the
# same names.
GRID_KEYS = ("num_spatial_dims", "domain_extent", "num_points", "dt")


def exponax_steppers() -> dict[str, type]:
    """Name -> class of every exponax stepper (an exponax `BaseStepper` subclass).

    **Raises:**

    - `ConfigError` when exponax is not installed.
    """
    try:
        from exponax._base_stepper import BaseStepper
    except ImportError:
        raise ConfigError(
            "data.source", "an installed exponax for exponax sources",
            "exponax is not installed", PDE_HINT,
        ) from None
    steppers = {}
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                not name.startswith("_")
                and isinstance(value, type)
                and issubclass(value, BaseStepper)
                and value is not BaseStepper
            ):
                steppers[name] = value
    return steppers


def _field(parameter: inspect.Parameter, stepper: str) -> Field:
    """The [data] field of one keyword parameter, typed from its default."""
    default = parameter.default
    doc = f"parameter `{parameter.name}` of exponax.{stepper}"
    if isinstance(default, bool):
        return Field("bool", default, doc=doc)
    if isinstance(default, int):
        return Field("int", default, doc=doc)
    if isinstance(default, float):
        return Field("float", default, doc=doc)
    if isinstance(default, (tuple, list)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in default
    ):
        return Field("floats", tuple(float(v) for v in default), doc=doc)
    raise ConfigError(
        "data.source",
        "an exponax stepper whose parameters are numbers, booleans or lists of numbers",
        f"exponax.{stepper} with parameter {parameter.name!r} (default {default!r})",
        "generate the data in Python and use a file: source",
    )


def stepper_parameter_fields(stepper: str) -> dict[str, Field]:
    """The [data] keys of the parameters of exponax stepper `stepper` (beyond the grid)."""
    cls = exponax_steppers()[stepper]
    fields = {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.name in GRID_KEYS or parameter.kind in (
            parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD
        ):
            continue
        fields[parameter.name] = _field(parameter, stepper)
    return fields


def make_exponax_stepper(stepper: str, data: dict) -> Any:
    """Build exponax stepper `stepper` from a checked `[data]` table."""
    cls = exponax_steppers()[stepper]
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    arguments = {
        name: data[name] for name in parameters if name in data
    }
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            "data.source", f"parameters exponax.{stepper} accepts",
            f"{arguments} ({error})", "check the values in [data]",
        ) from None
