"""`StochasticInterpolantStepper`: stochastic-interpolant forecasting, an SDE from the
current state (a point mass) to the next one, sampled with Euler-Maruyama steps."""

from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._rollout._training import Unroll, resolve_unroll
from ._interpolant import (
    BetaSchedule,
    SamplingDiffusion,
    StochasticInterpolantPath,
    check_sampling_diffusion,
)
from ._velocity import ConditionalVelocity

from ._steppers import AbstractFlowStepper, check_stepping


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
        self.num_steps, self.num_input_steps, self.unroll = check_stepping(
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


