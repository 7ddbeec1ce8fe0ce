"""`ODESystem`: the frozen description of one autonomous ODE `dx/dt = f(x, params)`."""

import math
import numbers
import types
from collections.abc import Callable, Mapping
from typing import Any, Optional, final

import numpy as np
from jaxtyping import Float

VectorField = Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]


def _as_parameter(name: str, value: Any, owner: str) -> Any:
    """A parameter as a Python float, or a float64 array for vector parameters."""
    if isinstance(value, bool):
        raise TypeError(f"parameter {name!r} of {owner!r} must be a real number, got {value!r}.")
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameter {name!r} of {owner!r} must be finite, got {value}.")
        return value
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(
            f"parameter {name!r} of {owner!r} must be a real number or a real array, got {value!r}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"parameter {name!r} of {owner!r} must be finite, got {value!r}.")
    if array.ndim == 0:
        return float(array)
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


@final
class ODESystem:
    """One autonomous ODE `dx/dt = f(x, params)`, described, not solved.

    A frozen record: the vector field as a NumPy function, its parameters, a reference
    initial condition near (or on) the attractor, the sampling time step of the data
    and, where known, the maximal Lyapunov exponent (so forecasts can be measured in
    Lyapunov times). The built-in systems are
    [`trainax_fm.systems.get_system`][] names; perturbed systems
    ([`trainax_fm.systems.ODESystem.with_parameters`][]) and skew products
    ([`trainax_fm.systems.skew_product`][]) are `ODESystem`s as well.

    **Arguments:**

    - `name`: the system's name, recorded per trajectory in a catalogue.
    - `vector_field`: `f(x, params)`, `x` shaped `(D,)` or `(D, K)` (K states at once,
        for SciPy's vectorised integration), returning an array of the same shape.
        `params` is the parameter mapping.
    - `parameters`: name -> real number (or real array) passed to `vector_field`.
    - `initial_condition`: a reference state `(D,)`, the start of the transient
        that leads onto the attractor.
    - `dt`: the time between two stored samples (a typical step of the data).
    - `lyapunov_exponent`: the maximal Lyapunov exponent `> 0` of the default
        parameters, or `None` when unknown.
    - `base_systems`: the systems it is built from (a skew product: `(driver,
        response)`); `None` means `(name,)`. Used to split catalogues by base system.
    - `vectorized`: whether `vector_field` accepts `(D, K)` states.

    **Raises:**

    - `TypeError`/`ValueError` for a non-callable vector field, non-finite
        parameters, an initial condition that is not a finite 1D array, `dt <= 0` or a
        non-positive Lyapunov exponent.
    """

    __slots__ = (
        "name",
        "vector_field",
        "parameters",
        "initial_condition",
        "dt",
        "lyapunov_exponent",
        "base_systems",
        "vectorized",
    )

    name: str
    vector_field: VectorField
    parameters: Mapping[str, Any]
    initial_condition: Float[np.ndarray, " dimension"]
    dt: float
    lyapunov_exponent: Optional[float]
    base_systems: tuple[str, ...]
    vectorized: bool

    def __init__(
        self,
        name: str,
        vector_field: VectorField,
        parameters: Mapping[str, Any],
        initial_condition: Any,
        dt: float,
        *,
        lyapunov_exponent: Optional[float] = None,
        base_systems: Optional[tuple[str, ...]] = None,
        vectorized: bool = True,
    ):
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
        if not callable(vector_field):
            raise TypeError(
                f"`vector_field` of {name!r} must be a function f(x, params), got {vector_field!r}."
            )
        if not isinstance(parameters, Mapping):
            raise TypeError(
                f"`parameters` of {name!r} must be a mapping name -> value, got "
                f"{type(parameters).__name__}."
            )
        checked = {}
        for key in sorted(parameters):
            if not isinstance(key, str):
                raise TypeError(f"parameter names of {name!r} must be strings, got {key!r}.")
            checked[key] = _as_parameter(key, parameters[key], name)
        initial = np.array(initial_condition, dtype=np.float64)
        if initial.ndim != 1 or initial.size == 0 or not np.all(np.isfinite(initial)):
            raise ValueError(
                f"`initial_condition` of {name!r} must be a finite 1D array (one entry "
                f"per coordinate), got {initial_condition!r}."
            )
        initial.setflags(write=False)
        if (
            isinstance(dt, bool)
            or not isinstance(dt, numbers.Real)
            or not (math.isfinite(dt) and dt > 0)
        ):
            raise ValueError(f"`dt` of {name!r} must be a finite number > 0, got {dt!r}.")
        if lyapunov_exponent is not None and (
            isinstance(lyapunov_exponent, bool)
            or not isinstance(lyapunov_exponent, numbers.Real)
            or not (math.isfinite(lyapunov_exponent) and lyapunov_exponent > 0)
        ):
            raise ValueError(
                f"`lyapunov_exponent` of {name!r} must be a finite number > 0 or None, "
                f"got {lyapunov_exponent!r}."
            )
        if base_systems is None:
            base_systems = (name,)
        base_systems = tuple(base_systems)
        if not base_systems or not all(isinstance(b, str) and b for b in base_systems):
            raise TypeError(
                f"`base_systems` of {name!r} must be a non-empty tuple of names, got "
                f"{base_systems!r}."
            )
        if not isinstance(vectorized, bool):
            raise TypeError(f"`vectorized` must be True or False, got {vectorized!r}.")
        setattr_ = object.__setattr__
        setattr_(self, "name", name)
        setattr_(self, "vector_field", vector_field)
        setattr_(self, "parameters", types.MappingProxyType(checked))
        setattr_(self, "initial_condition", initial)
        setattr_(self, "dt", float(dt))
        setattr_(
            self,
            "lyapunov_exponent",
            None if lyapunov_exponent is None else float(lyapunov_exponent),
        )
        setattr_(self, "base_systems", base_systems)
        setattr_(self, "vectorized", vectorized)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ODESystem is frozen; use with_parameters to change {name!r}.")

    def __reduce__(self):
        # Rebuilt through __init__ (slots and a frozen __setattr__ defeat the default),
        # so a system travels to worker processes like any picklable object.
        return (
            _rebuild_system,
            (
                self.name,
                self.vector_field,
                dict(self.parameters),
                self.initial_condition,
                self.dt,
                self.lyapunov_exponent,
                self.base_systems,
                self.vectorized,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"ODESystem(name={self.name!r}, dimension={self.dimension}, "
            f"parameters={dict(self.parameters)!r}, dt={self.dt})"
        )

    @property
    def dimension(self) -> int:
        """The number of coordinates `D`."""
        return int(self.initial_condition.shape[0])

    def __call__(
        self, x: Float[np.ndarray, " dimension *batch"]
    ) -> Float[np.ndarray, " dimension *batch"]:
        """The vector field at `x` with this system's parameters."""
        return np.asarray(self.vector_field(x, self.parameters), dtype=np.float64)

    def with_parameters(self, parameters: Mapping[str, Any]) -> "ODESystem":
        """The same system with other values of its parameters.

        **Arguments:**

        - `parameters`: new values; every name must be one of this system's
            parameters (names left out keep their value).

        **Returns:**

        - A new `ODESystem` of the same name and base systems. Its Lyapunov exponent
            is kept only if no value changed (it belongs to the default parameters).
        """
        unknown = sorted(set(parameters) - set(self.parameters))
        if unknown:
            raise ValueError(
                f"{self.name!r} has no parameter(s) {unknown}; its parameters are "
                f"{sorted(self.parameters)}."
            )
        merged = {**self.parameters, **parameters}
        unchanged = all(
            np.array_equal(np.asarray(merged[key]), np.asarray(self.parameters[key]))
            for key in merged
        )
        return ODESystem(
            self.name,
            self.vector_field,
            merged,
            self.initial_condition,
            self.dt,
            lyapunov_exponent=self.lyapunov_exponent if unchanged else None,
            base_systems=self.base_systems,
            vectorized=self.vectorized,
        )


def _rebuild_system(name, field, parameters, initial, dt, lyapunov, base_systems, vectorized):
    return ODESystem(
        name,
        field,
        parameters,
        initial,
        dt,
        lyapunov_exponent=lyapunov,
        base_systems=base_systems,
        vectorized=vectorized,
    )
