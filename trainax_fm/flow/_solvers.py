import abc
from typing import Optional, Union

import equinox as eqx
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int
from ._velocity import ConditionalVelocity, Time


class AbstractSolver(eqx.Module):
    """A fixed-step explicit ODE solver for `dx/dt = v(x, y, t)`.

    Solvers take one step of size `d` from `(x, t)`; `evaluations_per_step` network
    evaluations are spent per step, so `n` steps cost
    `num_function_evaluations(n) = evaluations_per_step * n`, stated, never implicit.
    """

    evaluations_per_step: eqx.AbstractClassVar[int]
    name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def step(
        self,
        velocity: ConditionalVelocity,
        x: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Time,
    ) -> Float[Array, "channels ..."]:
        """One step of size `d` from `x` at time `t`.

        **Arguments:**

        - `velocity`: the velocity field, called as `velocity(x, y, t)`.
        - `x`: the current state `(C, *spatial)`.
        - `y`: conditioning (or `None`).
        - `t`: scalar time of `x`.
        - `d`: scalar step size.

        **Returns:**

        - The state at time `t + d`.
        """

    def num_function_evaluations(self, num_steps: int) -> int:
        """Network evaluations spent by `num_steps` steps: `evaluations_per_step * num_steps`."""
        return self.evaluations_per_step * check_positive_int(num_steps, "num_steps", minimum=0)


class Euler(AbstractSolver):
    r"""Explicit Euler: `x + d v(x, y, t)`; 1 network evaluation per step (`n` in total).

    The only solver for a velocity with `step_size_input=True`, which is an average
    velocity over the step: `x + d v(x, y, t, d)`.
    """

    evaluations_per_step = 1
    name = "euler"

    def step(self, velocity, x, y, t, d):
        return x + d * velocity(x, y, t, d)


class Midpoint(AbstractSolver):
    r"""Explicit midpoint rule (2nd order); 2 network evaluations per step (`2n` in total).

    `x + d v(x + d/2 v(x, y, t), y, t + d/2)`.
    """

    evaluations_per_step = 2
    name = "midpoint"

    def step(self, velocity, x, y, t, d):
        half = x + 0.5 * d * velocity(x, y, t)
        return x + d * velocity(half, y, t + 0.5 * d)


class Heun(AbstractSolver):
    r"""Heun's method (explicit trapezoid, 2nd order); 2 network evaluations per step.

    `k1 = v(x, y, t)`, `k2 = v(x + d k1, y, t + d)`, `x + d/2 (k1 + k2)`. The second
    evaluation is at the Euler predictor, not at the new state, so it cannot be reused
    by the next step: `n` steps cost exactly `2n` evaluations (the final step is
    corrected too).
    """

    evaluations_per_step = 2
    name = "heun"

    def step(self, velocity, x, y, t, d):
        k1 = velocity(x, y, t)
        k2 = velocity(x + d * k1, y, t + d)
        return x + 0.5 * d * (k1 + k2)


_SOLVERS = {"euler": Euler, "midpoint": Midpoint, "heun": Heun}

Method = Union[str, AbstractSolver]


def get_solver(method: Method, name: str = "method") -> AbstractSolver:
    """Turn `"euler"`, `"midpoint"`, `"heun"` (or a solver instance) into a solver."""
    if isinstance(method, AbstractSolver):
        return method
    if isinstance(method, str) and method.lower() in _SOLVERS:
        return _SOLVERS[method.lower()]()
    raise ValueError(
        f"`{name}` must be one of {tuple(_SOLVERS)} or a trainax_fm.flow solver "
        f"(Euler(), Midpoint(), Heun()), got {method!r}."
    )
