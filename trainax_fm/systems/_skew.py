"""Skew products: a chaotic driver forcing a chaotic response, a new system of
dimension `D_driver + D_response` whose response coordinates inherit both."""

import math
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
from jaxtyping import Float

from .._argument_checks import check_positive_int
from ._integrate import integrate_system
from ._system import ODESystem

_DRIVER = "driver."
_RESPONSE = "response."
COUPLING = "coupling"


def identity_coupling_map(response_dimension: int, driver_dimension: int) -> np.ndarray:
    """The default map `M` `(D_response, D_driver)` from driver to response coordinates:
    `M[i, i] = 1` for `i < min(D_driver, D_response)`, zero elsewhere.

    Coordinate `i` of the driver forces coordinate `i` of the response; extra
    response coordinates are not forced, extra driver coordinates force nothing. It
    is Panda's additive coupling map without its random shuffle of driver indices.
    """
    matrix = np.zeros((response_dimension, driver_dimension))
    size = min(response_dimension, driver_dimension)
    matrix[np.arange(size), np.arange(size)] = 1.0
    return matrix


def vector_field_rms(system: ODESystem, trajectory: Float[np.ndarray, "time dimension"]) -> float:
    """The root mean square of `|f(x)|` over the states of a trajectory."""
    values = (
        system(np.asarray(trajectory, dtype=np.float64).T)
        if system.vectorized
        else np.stack([system(x) for x in trajectory], axis=1)
    )
    return float(np.sqrt(np.mean(np.sum(values**2, axis=0))))


def coupling_strength(
    driver: ODESystem,
    response: ODESystem,
    *,
    num_time_steps: int = 1000,
    num_transient_steps: int = 200,
    **integrate_options,
) -> float:
    """`kappa = RMS(|f_response|) / RMS(|f_driver|)`, each on its own attractor.

    Both systems are integrated from their reference initial conditions (no noise:
    the result is a deterministic function of the two systems) for
    `num_transient_steps` discarded plus `num_time_steps` samples. With this kappa
    the forcing `kappa * M f_driver` is as large, on average, as the response's own
    vector field, so neither the driver nor the response dominates. Further keywords
    (`method`, `rtol`, `atol`) go to [`trainax_fm.systems.integrate_system`][].

    **Returns:**

    - `kappa > 0`.

    **Raises:**

    - `ValueError` if either trajectory is not finite or either field vanishes.
    """
    num_time_steps = check_positive_int(num_time_steps, "num_time_steps")
    rms = []
    for system in (driver, response):
        trajectory = integrate_system(
            system,
            None,
            num_time_steps,
            num_transient_steps=num_transient_steps,
            **integrate_options,
        )
        value = (
            vector_field_rms(system, trajectory) if np.all(np.isfinite(trajectory)) else math.nan
        )
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"cannot couple {system.name!r}: its trajectory from the reference initial "
                "condition is not finite or its vector field vanishes on it; pass "
                "`coupling` explicitly or choose another system."
            )
        rms.append(value)
    return rms[1] / rms[0]


class _SkewField:
    """`(x_d, x_r) -> (f_d(x_d), f_r(x_r) + kappa M f_d(x_d))`: a class, not a closure,
    so a skew product can be pickled."""

    def __init__(self, driver: ODESystem, response: ODESystem, coupling_map: np.ndarray):
        self.driver = driver
        self.response = response
        self.coupling_map = coupling_map

    def __call__(self, x: np.ndarray, parameters: Mapping[str, Any]) -> np.ndarray:
        split = self.driver.dimension
        driver_params = {
            k[len(_DRIVER) :]: v for k, v in parameters.items() if k.startswith(_DRIVER)
        }
        response_params = {
            k[len(_RESPONSE) :]: v for k, v in parameters.items() if k.startswith(_RESPONSE)
        }
        f_d = np.asarray(self.driver.vector_field(x[:split], driver_params), dtype=np.float64)
        f_r = np.asarray(self.response.vector_field(x[split:], response_params), dtype=np.float64)
        forcing = np.tensordot(self.coupling_map, f_d, axes=(1, 0))
        return np.concatenate([f_d, f_r + parameters[COUPLING] * forcing], axis=0)


def skew_product(
    driver: ODESystem,
    response: ODESystem,
    *,
    coupling: Optional[float] = None,
    coupling_map: Optional[Float[np.ndarray, "response_dimension driver_dimension"]] = None,
) -> ODESystem:
    """The skew product of a driver and a response system.

    State `(x_d, x_r)` of dimension `D_d + D_r`:

    `dx_d/dt = f_d(x_d)`, `dx_r/dt = f_r(x_r) + kappa * M f_d(x_d)`.

    The parameters of the new system are the driver's as `"driver.NAME"`, the
    response's as `"response.NAME"` and `kappa` as `"coupling"`, so a parameter
    perturbation of a skew product perturbs both parts (pass `keep=("coupling",)` to
    [`trainax_fm.systems.perturb_parameters`][] to hold kappa). Its name is
    `"DRIVER_RESPONSE"`, its base systems are the driver's followed by the
    response's, its time step the smaller of the two and its initial condition the
    two reference initial conditions side by side.

    Not every pair makes a chaotic attractor: a response with a small basin can be
    pushed out of it (Rössler driven by Lorenz-63 diverges, Lorenz-63 driven by
    Rössler does not). [`trainax_fm.systems.generate_catalogue`][] filters skew
    products like any other system.

    **Arguments:**

    - `driver`, `response`: the two systems (any dimensions).
    - `coupling`: kappa; `None` computes
        [`trainax_fm.systems.coupling_strength`][] (the ratio of the RMS of the two
        vector fields on their attractors).
    - `coupling_map`: `M`, shaped `(D_r, D_d)`; `None` uses
        [`trainax_fm.systems.identity_coupling_map`][].

    **Returns:**

    - An [`trainax_fm.systems.ODESystem`][].
    """
    for system, name in ((driver, "driver"), (response, "response")):
        if not isinstance(system, ODESystem):
            raise TypeError(f"`{name}` must be an ODESystem, got {type(system).__name__}.")
    if coupling_map is None:
        coupling_map = identity_coupling_map(response.dimension, driver.dimension)
    coupling_map = np.array(coupling_map, dtype=np.float64)
    if coupling_map.shape != (response.dimension, driver.dimension):
        raise ValueError(
            f"`coupling_map` must have shape (response dimension, driver dimension) = "
            f"({response.dimension}, {driver.dimension}), got {coupling_map.shape}."
        )
    if coupling is None:
        coupling = coupling_strength(driver, response)
    if (
        isinstance(coupling, bool)
        or not isinstance(coupling, (int, float))
        or not math.isfinite(coupling)
    ):
        raise ValueError(f"`coupling` must be a finite number, got {coupling!r}.")
    parameters = {_DRIVER + k: v for k, v in driver.parameters.items()}
    parameters.update({_RESPONSE + k: v for k, v in response.parameters.items()})
    parameters[COUPLING] = float(coupling)
    return ODESystem(
        f"{driver.name}_{response.name}",
        _SkewField(driver, response, coupling_map),
        parameters,
        np.concatenate([driver.initial_condition, response.initial_condition]),
        min(driver.dt, response.dt),
        base_systems=driver.base_systems + response.base_systems,
        vectorized=driver.vectorized and response.vectorized,
    )
