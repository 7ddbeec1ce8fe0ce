from typing import Optional, Union

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int
from .._rollout._training import Unroll, check_unroll, resolve_unroll
from ._flow_map import FlowMap
from ._solvers import AbstractSolver, Euler, Method, get_solver
from ._velocity import ConditionalVelocity, Time

FlowModel = Union[ConditionalVelocity, FlowMap]


def check_model(model, name: str = "model") -> FlowModel:
    """Raise a clear error unless `model` is a velocity or a flow map."""
    if not isinstance(model, (ConditionalVelocity, FlowMap)):
        raise TypeError(
            f"`{name}` must be a trainax_fm.flow.ConditionalVelocity or FlowMap, got "
            f"{type(model).__name__}. Wrap a network as "
            "`trainax_fm.flow.ConditionalVelocity(network)`; a FlowMatchingStepper or "
            "FlowMapStepper holds its model in `.flow_model`."
        )
    return model


def check_method_for(model: FlowModel, solver: AbstractSolver, name: str) -> None:
    """A step-size-conditioned velocity is only stepped with Euler's form."""
    if (
        isinstance(model, ConditionalVelocity)
        and model.step_size_input
        and not isinstance(solver, Euler)
    ):
        raise ValueError(
            f"`{name}`={solver.name!r} was given for a velocity with "
            "`step_size_input=True`. Such a velocity is an average velocity over a step "
            "of size d and is stepped as `x + d * v(x, y, t, d)`; use method='euler'."
        )


def flow_step(
    model: FlowModel,
    x: Float[Array, "channels ..."],
    y: Optional[Float[Array, "history_channels ..."]],
    t: Time,
    d: Time,
    method: Method = "euler",
) -> Float[Array, "channels ..."]:
    """One step of size `d` from `(x, t)`: a solver step of a velocity, or `F_d` of a flow map.

    **Arguments:**

    - `model`: a [`trainax_fm.flow.ConditionalVelocity`][] or a
        [`trainax_fm.flow.FlowMap`][].
    - `x`, `y`, `t`, `d`: one state, its conditioning, scalar time and step size.
    - `method`: the solver of a velocity (`"euler"`, `"midpoint"`, `"heun"`); ignored
        for a flow map.

    **Returns:**

    - The state at `t + d`.
    """
    model = check_model(model)
    if isinstance(model, FlowMap):
        return model(x, y, t, d)
    solver = get_solver(method)
    check_method_for(model, solver, "method")
    return solver.step(model, x, y, t, d)


def num_function_evaluations(model: FlowModel, num_steps: int, method: Method = "euler") -> int:
    """Network evaluations of `num_steps` steps of `model`.

    A velocity costs `solver.evaluations_per_step` per step (Euler 1, midpoint 2,
    Heun 2); a flow map costs 2 per step (`v` and `phi`).

    **Arguments:**

    - `model`: a velocity or flow map (or a stepper wrapping one).
    - `num_steps`: the number of steps.
    - `method`: the solver of a velocity.

    **Returns:**

    - The number of network evaluations (a Python int).
    """
    model = check_model(model)
    num_steps = check_positive_int(num_steps, "num_steps", minimum=0)
    if isinstance(model, FlowMap):
        return FlowMap.evaluations_per_step * num_steps
    return get_solver(method).num_function_evaluations(num_steps)


def integrate(
    model: FlowModel,
    x0: Float[Array, "channels ..."],
    y: Optional[Float[Array, "history_channels ..."]],
    num_steps: int,
    *,
    method: Method = "euler",
    t0: Time = 0.0,
    t1: Time = 1.0,
    unroll: Unroll = "auto",
) -> Float[Array, "channels ..."]:
    r"""Integrate the flow from `t0` to `t1` with `num_steps` equal steps.

    With `d = (t1 - t0) / num_steps` and `t_k = t0 + k d`,
    `x_{k+1} = step(x_k, y, t_k, d)` where `step` is a solver step of a velocity
    (`method`) or a map step `F_d` of a flow map. From noise `x0 ~ N(0, I)` at `t0 = 0`
    to `t1 = 1` this samples the next state given `y`. It costs exactly
    `num_function_evaluations(model, num_steps, method)` network evaluations (see
    [`trainax_fm.flow.num_function_evaluations`][]).

    **Arguments:**

    - `model`: a [`trainax_fm.flow.ConditionalVelocity`][] or
        [`trainax_fm.flow.FlowMap`][].
    - `x0`: the start state `(C, *spatial)` at time `t0` (unbatched; `jax.vmap` for
        batches).
    - `y`: the conditioning `(H*C, *spatial)` or `None`.
    - `num_steps`: the number of steps, a positive Python int.
    - `method`: `"euler"`, `"midpoint"`, `"heun"` or a solver (velocities only).
    - `t0`, `t1`: start and end time (scalars, may be traced).
    - `unroll`: `True` (Python loop at trace time), `False` (`lax.fori_loop`) or
        `"auto"` (unroll up to 32 steps).

    **Returns:**

    - The state at `t1`, shaped like `x0`.
    """
    model = check_model(model)
    num_steps = check_positive_int(num_steps, "num_steps")
    solver = get_solver(method)
    check_method_for(model, solver, "method")
    x0 = jnp.asarray(x0)
    t0 = jnp.asarray(t0, dtype=x0.dtype)
    d = (jnp.asarray(t1, dtype=x0.dtype) - t0) / num_steps

    def body(k, x):
        t = t0 + k * d
        if isinstance(model, FlowMap):
            return model(x, y, t, d)
        return solver.step(model, x, y, t, d)

    if resolve_unroll(check_unroll(unroll), num_steps):
        x = x0
        for k in range(num_steps):
            x = body(k, x)
        return x
    return jax.lax.fori_loop(0, num_steps, body, x0)
