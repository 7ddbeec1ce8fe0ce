"""Systems by name: the built-ins, then (with the optional extra `dysts`) every
continuous dysts system."""

import difflib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..sample_data._dysts import _import_dysts
from ._builtin import BUILTIN_SYSTEMS
from ._system import ODESystem

# Samples per dominant period of a dysts system (its `period`), as dysts' own
# `make_trajectory(pts_per_period=...)` resamples.
DYSTS_SAMPLES_PER_PERIOD = 30


def builtin_system_names() -> tuple[str, ...]:
    """The names of the built-in systems (no extra needed), in a fixed order."""
    return tuple(BUILTIN_SYSTEMS)


def _dysts_names() -> list[str]:
    return list(_import_dysts().systems.get_attractor_list("continuous_no_delay"))


def _dysts_available() -> bool:
    try:
        _import_dysts()
    except ImportError:
        return False
    return True


class _DystsField:
    """The vector field of a dysts system with given parameters. One dysts object per
    parameter set is kept (creating one reads dysts' metadata file)."""

    def __init__(self, name: str):
        self.name = name
        self._objects: dict[str, Any] = {}

    def __getstate__(self):
        return {"name": self.name, "_objects": {}}

    def _object(self, parameters: Mapping[str, Any]):
        key = json.dumps({k: np.asarray(v).tolist() for k, v in parameters.items()}, sort_keys=True)
        found = self._objects.get(key)
        if found is None:
            dysts = _import_dysts()
            found = getattr(dysts.flows, self.name)(
                parameters={
                    k: np.asarray(v) if np.ndim(v) else float(v) for k, v in parameters.items()
                }
            )
            self._objects[key] = found
        return found

    def __call__(self, x: np.ndarray, parameters: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(self._object(parameters).rhs(np.asarray(x), 0.0), dtype=np.float64)


def dysts_system(name: str) -> ODESystem:
    """One continuous system of the `dysts` catalogue as an `ODESystem`.

    Parameters, the reference initial condition and the maximal Lyapunov exponent are
    dysts' own; the time step is its dominant period over 30 samples (or its
    integration step times 100 if it has no period). The vector field calls the
    dysts system's `rhs` (one state at a time, so integration is slower than for
    the built-ins). Needs the optional extra: `pip install 'trainax_fm[dysts]'`.

    **Arguments:**

    - `name`: a dysts system (see [`trainax_fm.sample_data.dysts_systems`][]).

    **Returns:**

    - An [`trainax_fm.systems.ODESystem`][].

    **Raises:**

    - `ImportError` without dysts; `ValueError` for a name dysts does not have
        (with the close names).
    """
    names = _dysts_names()
    if not isinstance(name, str) or name not in names:
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"`name` must be a dysts system ({len(names)} of them, see "
            f"sample_data.dysts_systems()), got {name!r}.{hint}"
        )
    dysts = _import_dysts()
    template = getattr(dysts.flows, name)()
    parameters = {k: np.asarray(v) if np.ndim(v) else float(v) for k, v in template.params.items()}
    period = getattr(template, "period", None)
    if period is not None and math.isfinite(float(period)) and float(period) > 0:
        dt = float(period) / DYSTS_SAMPLES_PER_PERIOD
    else:
        dt = 100 * float(template.dt)
    lyapunov = getattr(template, "maximum_lyapunov_estimated", None)
    if lyapunov is not None and not (math.isfinite(float(lyapunov)) and float(lyapunov) > 0):
        lyapunov = None
    return ODESystem(
        name,
        _DystsField(name),
        parameters,
        np.asarray(template.ic, dtype=np.float64),
        dt,
        lyapunov_exponent=None if lyapunov is None else float(lyapunov),
        vectorized=False,
    )


def get_system(name: str) -> ODESystem:
    """A system by name: a built-in one first, else a dysts system (if dysts is
    installed).

    Built-ins: `"Lorenz63"`, `"Rossler"`, `"Thomas"`, `"Halvorsen"`, `"SprottB"`,
    `"Chen"`, `"Lorenz96_5"` (see [`trainax_fm.systems.builtin_system_names`][]).
    Their names shadow dysts systems of the same name; use
    [`trainax_fm.systems.dysts_system`][] to get dysts' version.

    **Arguments:**

    - `name`: the system's name.

    **Returns:**

    - An [`trainax_fm.systems.ODESystem`][].

    **Raises:**

    - `ValueError` for an unknown name, listing the close names.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"a system name must be a string, got {name!r} of type {type(name).__name__}."
        )
    if name in BUILTIN_SYSTEMS:
        return BUILTIN_SYSTEMS[name]
    known = list(BUILTIN_SYSTEMS)
    has_dysts = _dysts_available()
    if has_dysts:
        dysts_names = _dysts_names()
        if name in dysts_names:
            return dysts_system(name)
        known += dysts_names
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    more = (
        ""
        if has_dysts
        else " Install the optional extra for the dysts catalogue: pip install 'trainax_fm[dysts]'."
    )
    raise ValueError(
        f"unknown system {name!r}: not a built-in system ({', '.join(BUILTIN_SYSTEMS)})"
        f"{' nor a dysts system' if has_dysts else ''}.{hint}{more}"
    )
