import abc
from typing import Optional

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from .._rollout._training import Unroll, check_unroll
from ._ema import EMAVelocity
from ._flow_map import FlowMap
from ._integrate import FlowModel, check_method_for, integrate
from ._solvers import AbstractSolver, Method, get_solver
from ._velocity import ConditionalVelocity


def check_stepping(
    num_steps: int, num_input_steps: int, unroll: Unroll
) -> tuple[int, int, Unroll]:
    """The checked `(num_steps, num_input_steps, unroll)` that every flow stepper takes."""
    return (
        check_positive_int(num_steps, "num_steps"),
        check_positive_int(num_input_steps, "num_input_steps"),
        check_unroll(unroll),
    )


class AbstractFlowStepper(eqx.Module):
    """A stochastic autoregressive stepper that samples the next state by a flow.

    Called as `stepper(y, *, key)` with `y` the `H` previous states stacked on the
    channel axis, `(H*C, *spatial)` (the layout of [`trainax_fm.rollout`][] with
    `num_input_steps=H`). It draws fresh noise `x0 ~ N(0, I)` shaped `(C, *spatial)`
    from `key` and integrates the flow from `t = 0` to `t = 1`. `needs_key` is `True`:
    rollouts must pass a key, and calling it without one raises a `ValueError`.
    """

    num_steps: eqx.AbstractVar[int]
    num_input_steps: eqx.AbstractVar[int]
    unroll: eqx.AbstractVar[Unroll]

    @property
    @abc.abstractmethod
    def flow_model(self) -> FlowModel:
        """The velocity or flow map that is integrated."""

    @property
    @abc.abstractmethod
    def num_function_evaluations(self) -> int:
        """Network evaluations per physical step (per call)."""

    @property
    def needs_key(self) -> bool:
        """Always `True`: every call draws fresh noise."""
        return True

    def _method(self) -> Method:
        return "euler"

    def __call__(
        self,
        y: Float[Array, "history_channels ..."],
        *,
        key: Optional[PRNGKeyArray] = None,
    ) -> Float[Array, "channels ..."]:
        """Sample the next physical state.

        **Arguments:**

        - `y`: the `H` previous states stacked on the channel axis,
            `(H*C, *spatial)` (just the previous state `(C, *spatial)` for `H = 1`).
        - `key`: a JAX random key for the noise (required).

        **Returns:**

        - One sample of the next state `(C, *spatial)`.
        """
        name = type(self).__name__
        if key is None:
            raise ValueError(
                f"{name} is stochastic (it draws fresh noise every step) and needs a "
                "random key: call it as `stepper(y, key=jax.random.key(0))`, or roll it "
                "out with `trainax_fm.rollout(stepper, ic, n, key=...)`."
            )
        y = jax.numpy.asarray(y)
        if y.ndim < 1 or y.shape[0] % self.num_input_steps != 0:
            raise ValueError(
                f"{name} has num_input_steps={self.num_input_steps} and expects `y` "
                "shaped (H*C, *spatial) (the H previous states stacked on the channel "
                f"axis), got shape {tuple(y.shape)} whose channel axis is not a multiple "
                f"of {self.num_input_steps}. Pass one unbatched input; vmap for batches."
            )
        num_channels = y.shape[0] // self.num_input_steps
        x0 = jax.random.normal(key, (num_channels,) + tuple(y.shape[1:]), dtype=y.dtype)
        return integrate(
            self.flow_model,
            x0,
            y,
            self.num_steps,
            method=self._method(),
            unroll=self.unroll,
        )


class FlowMatchingStepper(AbstractFlowStepper):
    """Stochastic autoregressive stepper from a conditional velocity.

    Each call draws `x0 ~ N(0, I)` and integrates `dx/dt = v(x, y, t)` from `t=0` to
    `t=1` with `num_steps` steps of `method`; it costs
    `num_function_evaluations = evaluations_per_step * num_steps` network evaluations
    (Euler `n`, midpoint `2n`, Heun `2n`).

    It is also what the flow-matching and progressive-distillation configurations and
    trainers accept as the trainable stepper (they train its `velocity`), so a trained
    stepper can be rolled out directly with
    `trainax_fm.rollout(stepper, ic, num_steps, key=key)`.

    **Arguments:**

    - `velocity`: a [`trainax_fm.flow.ConditionalVelocity`][].
    - `num_steps`: the number of solver steps per physical step.
    - `method`: `"euler"` (default), `"midpoint"`, `"heun"` or a solver instance
        (a velocity with `step_size_input=True` needs `"euler"`).
    - `num_input_steps`: `H`, the number of previous states in `y`.
    - `unroll`: unroll the solver loop (`True`), use `lax.fori_loop` (`False`) or
        unroll up to 32 steps (`"auto"`).
    """

    velocity: ConditionalVelocity
    num_steps: int = eqx.field(static=True)
    solver: AbstractSolver
    num_input_steps: int = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        velocity: ConditionalVelocity,
        num_steps: int,
        method: Method = "euler",
        *,
        num_input_steps: int = 1,
        unroll: Unroll = "auto",
    ):
        if not isinstance(velocity, ConditionalVelocity):
            raise TypeError(
                "`velocity` must be a trainax_fm.flow.ConditionalVelocity, got "
                f"{type(velocity).__name__}. Wrap your network: "
                "ConditionalVelocity(network). (For a FlowMap use FlowMapStepper.)"
            )
        self.velocity = velocity
        self.num_steps, self.num_input_steps, self.unroll = check_stepping(
            num_steps, num_input_steps, unroll
        )
        self.solver = get_solver(method)
        check_method_for(velocity, self.solver, "method")

    @property
    def flow_model(self) -> ConditionalVelocity:
        return self.velocity

    @property
    def num_function_evaluations(self) -> int:
        return self.solver.num_function_evaluations(self.num_steps)

    def _method(self) -> Method:
        return self.solver


class EMAFlowMatchingStepper(AbstractFlowStepper):
    """Stochastic stepper that samples with the average of an [`trainax_fm.flow.EMAVelocity`][].

    The trainable stepper of shortcut models with an EMA target in one piece:
    [`trainax_fm.configuration.ShortcutModel`][] trains the online velocity inside it
    (the average is its self-consistency target, moved by
    [`trainax_fm.flow.flow_map_optimizer`][]), and a rollout samples with the
    average, `num_steps` Euler-form steps `x + d u_ema(x, y, t, d)` (`num_steps`
    network evaluations). It is what `FlowMatchingStepper(model.ema, num_steps)`
    samples, kept together with the online weights so that training, checkpoints and
    rollouts see one module (the `shortcut;K;ema=DECAY` method of the command line).
    Other configurations reject it: they would train the average.

    **Arguments:**

    - `model`: an [`trainax_fm.flow.EMAVelocity`][].
    - `num_steps`: the number of steps per physical step.
    - `num_input_steps`: `H`, the number of previous states in `y`.
    - `unroll`: unroll the step loop (`True`), use `lax.fori_loop` (`False`) or
        unroll up to 32 steps (`"auto"`).
    """

    model: EMAVelocity
    num_steps: int = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        model: EMAVelocity,
        num_steps: int,
        *,
        num_input_steps: int = 1,
        unroll: Unroll = "auto",
    ):
        if not isinstance(model, EMAVelocity):
            raise TypeError(
                "`model` must be a trainax_fm.flow.EMAVelocity, got "
                f"{type(model).__name__}. Build one as EMAVelocity(velocity, decay=0.999) "
                "from a ConditionalVelocity with step_size_input=True; for a plain "
                "velocity use FlowMatchingStepper."
            )
        self.model = model
        self.num_steps, self.num_input_steps, self.unroll = check_stepping(
            num_steps, num_input_steps, unroll
        )

    @property
    def flow_model(self) -> ConditionalVelocity:
        return self.model.ema

    @property
    def num_function_evaluations(self) -> int:
        return self.num_steps


class FlowMapStepper(AbstractFlowStepper):
    """Stochastic autoregressive stepper from a flow map.

    Each call draws `x0 ~ N(0, I)` and applies `num_steps` map steps of size
    `d = 1/num_steps`: `x_{k+1} = F_d(x_k, y, k d)`. Each map step evaluates two
    networks (`v` and `phi`), so `num_function_evaluations = 2 * num_steps`.

    **Arguments:**

    - `flow_map`: a [`trainax_fm.flow.FlowMap`][].
    - `num_steps`: the number of map steps per physical step (1, 2, 4, ...).
    - `num_input_steps`: `H`, the number of previous states in `y`.
    - `unroll`: as in [`trainax_fm.flow.FlowMatchingStepper`][].
    """

    flow_map: FlowMap
    num_steps: int = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        flow_map: FlowMap,
        num_steps: int,
        *,
        num_input_steps: int = 1,
        unroll: Unroll = "auto",
    ):
        if not isinstance(flow_map, FlowMap):
            raise TypeError(
                "`flow_map` must be a trainax_fm.flow.FlowMap, got "
                f"{type(flow_map).__name__}. Build one from a trained velocity with "
                "FlowMap(velocity)."
            )
        self.flow_map = flow_map
        self.num_steps, self.num_input_steps, self.unroll = check_stepping(
            num_steps, num_input_steps, unroll
        )

    @property
    def flow_model(self) -> FlowMap:
        return self.flow_map

    @property
    def num_function_evaluations(self) -> int:
        return FlowMap.evaluations_per_step * self.num_steps


def as_flow_model(
    model,
    name: str = "stepper",
    *,
    velocity: bool = True,
    flow_map: bool = True,
    num_input_steps: Optional[int] = None,
) -> FlowModel:
    """The velocity or flow map inside `model`, unwrapping the flow steppers.

    Raises a `TypeError` naming `name` if `model` is not an accepted kind, and a
    `ValueError` if a stepper's `num_input_steps` differs from `num_input_steps`.
    """
    if isinstance(model, EMAFlowMatchingStepper):
        raise TypeError(
            f"`{name}` is an EMAFlowMatchingStepper: only ShortcutModel trains one (its "
            "online velocity, against the average). Pass its averaged velocity "
            f"`{name}.model.ema` (or the online one, `{name}.model.velocity`) instead."
        )
    if isinstance(model, AbstractFlowStepper):
        if num_input_steps is not None and model.num_input_steps != num_input_steps:
            raise ValueError(
                f"`{name}` is a {type(model).__name__} with num_input_steps="
                f"{model.num_input_steps}, but it is trained with num_input_steps="
                f"{num_input_steps}. Use the same history length in both."
            )
        model = model.flow_model
    kinds = ()
    wanted = []
    if velocity:
        kinds += (ConditionalVelocity,)
        wanted.append("a ConditionalVelocity (or FlowMatchingStepper)")
    if flow_map:
        kinds += (FlowMap,)
        wanted.append("a FlowMap (or FlowMapStepper)")
    if not isinstance(model, kinds):
        raise TypeError(
            f"`{name}` must be {' or '.join(wanted)} from trainax_fm.flow, got "
            f"{type(model).__name__}. Wrap a network as "
            "`trainax_fm.flow.ConditionalVelocity(network)`"
            + ("; build a flow map with `FlowMap(velocity)`." if flow_map else ".")
        )
    return model

