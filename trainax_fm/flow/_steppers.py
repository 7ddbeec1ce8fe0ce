import abc
from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from .._rollout._training import Unroll, check_unroll, resolve_unroll
from ._ema import EMAVelocity
from ._flow_map import FlowMap
from ._integrate import FlowModel, check_method_for, integrate
from ._interpolant import (
    BetaSchedule,
    SamplingDiffusion,
    StochasticInterpolantPath,
    check_sampling_diffusion,
)
from ._solvers import AbstractSolver, Method, get_solver
from ._velocity import ConditionalVelocity


def _check_stepping(
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
        self.num_steps, self.num_input_steps, self.unroll = _check_stepping(
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
        self.num_steps, self.num_input_steps, self.unroll = _check_stepping(
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
        self.num_steps, self.num_input_steps, self.unroll = _check_stepping(
            num_steps, num_input_steps, unroll
        )

    @property
    def flow_model(self) -> FlowMap:
        return self.flow_map

    @property
    def num_function_evaluations(self) -> int:
        return FlowMap.evaluations_per_step * self.num_steps


class StochasticInterpolantStepper(eqx.Module):
    r"""Stochastic autoregressive stepper of a stochastic-interpolant forecast
    (Chen et al. 2024): an SDE from the current state (a point mass) to a sample of
    the next state.

    With `x_0` the current state (the last of the `H` states in `y`), `b` the drift
    learned by [`trainax_fm.configuration.StochasticInterpolant`][] and a sampling
    diffusion `g(s)` (`sampling_noise_scale * (1 - s)`, or the Föllmer diffusion of
    the paper with `sampling_noise_scale="follmer"`), each call takes `num_steps`
    Euler-Maruyama steps of size `h = 1/num_steps` from `X_0 = x_0`:

    $$X_{k+1} = X_k + h\,\Big[b + \tfrac{g^2 - \sigma^2}{2}\,
      \nabla\log\rho_s\Big](s_k, X_k) + g(s_k)\sqrt{h}\,\xi_k,
      \qquad s_k = k h,\ \xi_k \sim \mathcal{N}(0, I).$$

    `sigma(s) = noise_scale * (1 - s)` is the noise of the interpolant the drift was
    trained on; the score is computed from the drift itself, so the diffusion can be
    chosen after training at no extra cost: `num_function_evaluations = num_steps`.
    With `sampling_noise_scale=None` (`g = sigma`, the trained SDE) the correction
    vanishes. The score is singular at the point mass `s = 0`, where the laws of
    all diffusions agree, so the first step always uses the trained diffusion. With
    `sampling_noise_scale=0` the later steps are the deterministic probability-flow
    ODE. The exact drift reproduces the law of the next state for every `g` up to the
    time discretisation, whose error is small for `g >= sigma` (the Föllmer diffusion
    is such a `g`) but decays slowly with `num_steps` for `g < sigma`: the correction
    then pushes samples apart at a rate `~ 1/s` (see the flow-matching concepts page).

    It is what [`trainax_fm.configuration.StochasticInterpolant`][] and
    [`trainax_fm.trainer.StochasticInterpolantTrainer`][] train (its `velocity`, with
    its own `noise_scale` and `beta_schedule`), and a trained stepper rolls out with
    `trainax_fm.rollout(stepper, ic, n, key=key)`.

    **Arguments:**

    - `velocity`: a [`trainax_fm.flow.ConditionalVelocity`][] (`step_size_input=False`)
        whose network maps `[X_s, y, s]` to the drift; the usual flow network
        ([`trainax_fm.flow.velocity_input_channels`][] sizes it).
    - `num_steps`: Euler-Maruyama steps per physical step (= network evaluations).
    - `noise_scale`: `epsilon` of the trained interpolant, `sigma(s) = epsilon (1 - s)`
        (> 0; must equal the configuration's).
    - `beta_schedule`: `"quadratic"` (`beta(s) = s^2`, default) or `"linear"`
        (must equal the configuration's).
    - `sampling_noise_scale`: `epsilon_g` of the sampling diffusion
        `g(s) = epsilon_g (1 - s)` (>= 0), `None` for `g = sigma`, or `"follmer"` for
        the Föllmer diffusion `g^2 = 2 s sigma (beta' sigma - beta sigma') / beta -
        sigma^2` (`eps^2 (1 - s)(3 - s)` for `beta = s^2`).
    - `num_input_steps`: `H`, the number of previous states in `y`.
    - `unroll`: unroll the step loop (`True`), use `lax.fori_loop` (`False`) or
        unroll up to 32 steps (`"auto"`).
    """

    velocity: ConditionalVelocity
    num_steps: int = eqx.field(static=True)
    path: StochasticInterpolantPath
    sampling_noise_scale: SamplingDiffusion = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    needs_key: ClassVar[bool] = True

    def __init__(
        self,
        velocity: ConditionalVelocity,
        num_steps: int,
        *,
        noise_scale: float = 1.0,
        beta_schedule: BetaSchedule = "quadratic",
        sampling_noise_scale: SamplingDiffusion = None,
        num_input_steps: int = 1,
        unroll: Unroll = "auto",
    ):
        self.velocity = check_drift_velocity(velocity, "velocity")
        self.num_steps, self.num_input_steps, self.unroll = _check_stepping(
            num_steps, num_input_steps, unroll
        )
        self.path = StochasticInterpolantPath(noise_scale, beta_schedule)
        self.sampling_noise_scale = check_sampling_diffusion(
            sampling_noise_scale, "sampling_noise_scale"
        )

    @property
    def num_function_evaluations(self) -> int:
        """Network evaluations per physical step: `num_steps`."""
        return self.num_steps

    def with_sampling_noise_scale(
        self, sampling_noise_scale: SamplingDiffusion
    ) -> "StochasticInterpolantStepper":
        """The same trained stepper with another sampling diffusion (no retraining)."""
        return StochasticInterpolantStepper(
            self.velocity,
            self.num_steps,
            noise_scale=self.path.noise_scale,
            beta_schedule=self.path.beta_schedule,
            sampling_noise_scale=sampling_noise_scale,
            num_input_steps=self.num_input_steps,
            unroll=self.unroll,
        )

    def __call__(
        self,
        y: Float[Array, "history_channels ..."],
        *,
        key: Optional[PRNGKeyArray] = None,
    ) -> Float[Array, "channels ..."]:
        """Sample the next physical state.

        **Arguments:**

        - `y`: the `H` previous states stacked on the channel axis,
            `(H*C, *spatial)`; the last `C` channels are the current state `x_0`.
        - `key`: a JAX random key for the Brownian increments (required).

        **Returns:**

        - One sample of the next state `(C, *spatial)`.
        """
        if key is None:
            raise ValueError(
                "StochasticInterpolantStepper is stochastic (an SDE with fresh noise "
                "every step) and needs a random key: call it as "
                "`stepper(y, key=jax.random.key(0))`, or roll it out with "
                "`trainax_fm.rollout(stepper, ic, n, key=...)`."
            )
        y = jnp.asarray(y)
        if y.ndim < 1 or y.shape[0] % self.num_input_steps != 0:
            raise ValueError(
                f"StochasticInterpolantStepper has num_input_steps={self.num_input_steps} "
                "and expects `y` shaped (H*C, *spatial) (the H previous states stacked on "
                f"the channel axis), got shape {tuple(y.shape)} whose channel axis is not "
                f"a multiple of {self.num_input_steps}. Pass one unbatched input; vmap "
                "for batches."
            )
        num_channels = y.shape[0] // self.num_input_steps
        x0 = y[y.shape[0] - num_channels :]
        h = jnp.asarray(1.0 / self.num_steps, dtype=y.dtype)
        keys = jax.random.split(key, self.num_steps)

        def body(k, x):
            s = k * h
            drift = self.velocity(x, y, s)
            diffusion = self.path.sigma(s)
            if self.sampling_noise_scale is not None:
                # The first step leaves the point mass, where the score is singular
                # and the laws of all diffusions agree: it keeps the trained one.
                diffusion = jnp.where(
                    k == 0,
                    diffusion,
                    self.path.sampling_diffusion(s, self.sampling_noise_scale),
                ).astype(x.dtype)
                drift = self.path.sde_drift(drift, x, x0, s, diffusion)
            noise = jax.random.normal(keys[k], x.shape, dtype=x.dtype)
            return x + h * drift + diffusion * jnp.sqrt(h) * noise

        if resolve_unroll(self.unroll, self.num_steps):
            x = x0
            for k in range(self.num_steps):
                x = body(k, x)
            return x
        return jax.lax.fori_loop(0, self.num_steps, body, x0)


def check_drift_velocity(velocity, name: str) -> ConditionalVelocity:
    """A plain `ConditionalVelocity`, the drift network of a stochastic interpolant."""
    if isinstance(velocity, AbstractFlowStepper):
        raise TypeError(
            f"`{name}` is a {type(velocity).__name__}, a stepper that samples from "
            "Gaussian noise; a stochastic interpolant starts from the current state. Pass "
            f"its velocity (`{name}.flow_model`) or a fresh ConditionalVelocity(network)."
        )
    if not isinstance(velocity, ConditionalVelocity):
        raise TypeError(
            f"`{name}` must be a trainax_fm.flow.ConditionalVelocity, got "
            f"{type(velocity).__name__}. Wrap your network: ConditionalVelocity(network) "
            "(sized with velocity_input_channels)."
        )
    if velocity.step_size_input:
        raise ValueError(
            f"`{name}` has `step_size_input=True`, but the drift of a stochastic "
            "interpolant is an instantaneous field b(x, y, s) stepped by Euler-Maruyama. "
            "Build it with ConditionalVelocity(network) (step_size_input=False)."
        )
    return velocity


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

