"""Sampling an `ODESystem` at a fixed time step with SciPy's adaptive Runge-Kutta
solvers, and drawing initial conditions on its attractor."""

import math
import warnings
from typing import Optional

import numpy as np
from scipy.integrate import solve_ivp
from jaxtyping import Float

from .._argument_checks import check_positive_int
from ._system import ODESystem

METHODS = ("DOP853", "RK45", "Radau", "LSODA")


def check_tolerance(value, name: str) -> float:
    """Return a finite positive real number as a float, or raise naming `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return float(value)


def integrate_system(
    system: ODESystem,
    initial_condition: Optional[Float[np.ndarray, " dimension"]] = None,
    num_time_steps: int = 1000,
    *,
    num_transient_steps: int = 0,
    dt: Optional[float] = None,
    method: str = "DOP853",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    bound: float = 1e6,
) -> Float[np.ndarray, "num_time_steps dimension"]:
    """Sample one trajectory of `system` every `dt`, after a discarded transient.

    Integrates with `scipy.integrate.solve_ivp` (adaptive step, dense output at the
    sample times), so the samples do not depend on `dt` beyond where they are taken.
    With the default `rtol=1e-8`, `atol=1e-10` (DOP853, 8th order) the error of a
    sample is far below the separation that chaos builds up over a few Lyapunov times.

    A trajectory that leaves the box `max |x| <= bound` is stopped there (an event
    of the solver, so a diverging system costs little): the samples from then on are
    `inf`. A solver failure leaves `nan` samples. The validity filter
    ([`trainax_fm.systems.ValidityFilter`][]) rejects both.

    **Arguments:**

    - `system`: the ODE.
    - `initial_condition`: the state at time 0, `(D,)`; `None` uses the system's
        reference initial condition.
    - `num_time_steps`: the samples returned.
    - `num_transient_steps`: samples integrated first and discarded (to reach the
        attractor).
    - `dt`: the time between samples; `None` uses `system.dt`.
    - `method`: a `solve_ivp` method, `"DOP853"` (default) or `"RK45"`, `"Radau"`,
        `"LSODA"` (stiff systems).
    - `rtol`, `atol`: the solver's relative and absolute tolerances.
    - `bound`: the largest `|x|` a bounded trajectory may reach.

    **Returns:**

    - A float64 array `(num_time_steps, D)`: sample `t` is the state at time
        `(num_transient_steps + t) * dt`.
    """
    if not isinstance(system, ODESystem):
        raise TypeError(f"`system` must be an ODESystem, got {type(system).__name__}.")
    num_time_steps = check_positive_int(num_time_steps, "num_time_steps")
    num_transient_steps = check_positive_int(num_transient_steps, "num_transient_steps", minimum=0)
    dt = system.dt if dt is None else check_tolerance(dt, "dt")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    rtol = check_tolerance(rtol, "rtol")
    atol = check_tolerance(atol, "atol")
    bound = check_tolerance(bound, "bound")
    if initial_condition is None:
        initial_condition = system.initial_condition
    initial = np.array(initial_condition, dtype=np.float64)
    if initial.shape != (system.dimension,):
        raise ValueError(
            f"`initial_condition` of {system.name!r} must have shape "
            f"({system.dimension},), got {initial.shape}."
        )
    total = num_transient_steps + num_time_steps
    times = dt * np.arange(total)
    out = np.full((total, system.dimension), np.nan)
    if not np.all(np.isfinite(initial)):
        return out[num_transient_steps:]

    def escape(_, x):
        return bound - np.max(np.abs(x), axis=0)

    escape.terminal = True

    def rhs(_, x):
        return system(x)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Overflow on the way out of the box is what the event is there for.
        warnings.simplefilter("ignore", RuntimeWarning)
        solution = solve_ivp(
            rhs,
            (0.0, float(times[-1])),
            initial,
            method=method,
            t_eval=times,
            rtol=rtol,
            atol=atol,
            events=escape,
            vectorized=system.vectorized,
        )
    reached = solution.y.shape[1]
    out[:reached] = solution.y.T
    if solution.status == 1:  # stopped by the escape event: diverging
        out[reached:] = np.inf
    return out[num_transient_steps:]


def on_attractor_initial_conditions(
    system: ODESystem,
    num_initial_conditions: int,
    *,
    rng: np.random.Generator,
    num_transient_steps: int = 500,
    num_reference_steps: int = 2000,
    noise: float = 0.01,
    **integrate_options,
) -> tuple[
    Float[np.ndarray, "num_initial_conditions dimension"],
    Float[np.ndarray, "num_reference_steps dimension"],
]:
    """Initial conditions on the attractor of `system`, drawn from one long trajectory.

    The reference initial condition plus relative Gaussian noise
    (`x0 + noise * (|x0| + 1) * N(0, 1)`) is integrated for `num_transient_steps`
    samples (discarded), then for `num_reference_steps` samples: the reference
    trajectory. The initial conditions are distinct samples of it drawn uniformly.

    **Arguments:**

    - `system`: the ODE.
    - `num_initial_conditions`: how many to draw (at most `num_reference_steps`).
    - `rng`: a NumPy `Generator` (e.g. `np.random.default_rng(seed)`).
    - `num_transient_steps`: the discarded transient, in samples of `system.dt`.
    - `num_reference_steps`: the samples of the reference trajectory.
    - `noise`: the relative size of the perturbation of the reference state.
    - `integrate_options`: passed to [`trainax_fm.systems.integrate_system`][]
        (`method`, `rtol`, `atol`, `bound`, `dt`).

    **Returns:**

    - `(initial_conditions, reference_trajectory)`, shaped `(N, D)` and
        `(num_reference_steps, D)`. If the reference trajectory is not finite the
        initial conditions are its (non-finite) samples too; validate the reference
        trajectory before using them.
    """
    num_initial_conditions = check_positive_int(num_initial_conditions, "num_initial_conditions")
    num_reference_steps = check_positive_int(num_reference_steps, "num_reference_steps")
    if num_initial_conditions > num_reference_steps:
        raise ValueError(
            f"`num_initial_conditions` ({num_initial_conditions}) must be at most "
            f"`num_reference_steps` ({num_reference_steps}): the initial conditions are "
            "distinct samples of the reference trajectory. Raise num_reference_steps."
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"`rng` must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}."
        )
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"`noise` must be a finite number >= 0, got {noise!r}.")
    start = system.initial_condition
    start = start + noise * (np.abs(start) + 1.0) * rng.standard_normal(start.shape)
    reference = integrate_system(
        system,
        start,
        num_reference_steps,
        num_transient_steps=num_transient_steps,
        **integrate_options,
    )
    chosen = np.sort(rng.choice(num_reference_steps, num_initial_conditions, replace=False))
    return reference[chosen], reference
