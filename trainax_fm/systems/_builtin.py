"""The built-in chaotic ODEs: no extra dependency, parameters in their classic chaotic
regime, reference initial conditions on (or near) the attractor.

Parameters, equations and Lyapunov exponents follow the literature (Lorenz 1963,
Rössler 1976, Thomas 1999, Sprott 1994/2010, Chen and Ueta 1999, Lorenz
1996), in the forms the `dysts` catalogue also uses where it has them.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._system import ODESystem


def _lorenz63(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    return np.stack([p["sigma"] * (v - u), u * (p["rho"] - w) - v, u * v - p["beta"] * w])


def _rossler(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    return np.stack([-v - w, u + p["a"] * v, p["b"] + w * (u - p["c"])])


def _thomas(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    b = p["b"]
    return np.stack([np.sin(v) - b * u, np.sin(w) - b * v, np.sin(u) - b * w])


def _halvorsen(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    a, b = p["a"], p["b"]
    return np.stack(
        [
            -a * u - b * v - b * w - v**2,
            -a * v - b * w - b * u - w**2,
            -a * w - b * u - b * v - u**2,
        ]
    )


def _sprott_b(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    # Sprott's case B with its two unit coefficients made parameters, so that
    # parameter perturbations have something to act on.
    return np.stack([p["a"] * v * w, u - v, p["b"] - u * v])


def _chen(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    u, v, w = x
    a, b, c = p["a"], p["b"], p["c"]
    return np.stack([a * (v - u), (c - a) * u - u * w + c * v, u * v - b * w])


def _lorenz96(x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    # dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F on a periodic ring
    return (np.roll(x, -1, axis=0) - np.roll(x, 2, axis=0)) * np.roll(x, 1, axis=0) - x + p["F"]


def _builtin() -> dict[str, ODESystem]:
    systems = [
        ODESystem(
            "Lorenz63",
            _lorenz63,
            {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0},
            [-9.7869288, -15.03852, 20.533978],
            0.02,
            lyapunov_exponent=0.9056,
        ),
        ODESystem(
            "Rossler",
            _rossler,
            {"a": 0.2, "b": 0.2, "c": 5.7},
            [6.5134412, 0.4772013, 0.34164294],
            0.15,
            lyapunov_exponent=0.0714,
        ),
        ODESystem("Thomas", _thomas, {"b": 0.208186}, [1.1, 1.1, -0.01], 0.3),
        ODESystem(
            "Halvorsen",
            _halvorsen,
            {"a": 1.4, "b": 4.0},
            [-8.6807408, -2.4741399, 0.070775762],
            0.03,
            lyapunov_exponent=0.70,
        ),
        ODESystem(
            "SprottB",
            _sprott_b,
            {"a": 1.0, "b": 1.0},
            [1.6878282, 1.4848132, -0.53706628],
            0.15,
            lyapunov_exponent=0.2101,
        ),
        ODESystem(
            "Chen",
            _chen,
            {"a": 35.0, "b": 3.0, "c": 28.0},
            [3.2689697, 5.2990458, 19.435349],
            0.01,
            lyapunov_exponent=2.027,
        ),
        ODESystem(
            "Lorenz96_5",
            _lorenz96,
            {"F": 8.0},
            [8.01, 8.0, 8.0, 8.0, 8.0],
            0.05,
        ),
    ]
    return {system.name: system for system in systems}


BUILTIN_SYSTEMS: Mapping[str, ODESystem] = _builtin()
