"""The thermalizer: a DDPM of single states with a noise-level classifier (Pedersen,
Zanna and Bruna 2025)."""

import math
from typing import Callable, Literal, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._velocity import constant_channel

Schedule = Literal["cosine", "linear"]
SCHEDULES = ("cosine", "linear")


def ddpm_betas(num_noise_steps: int, schedule: Schedule) -> Float[Array, " levels"]:
    """The variances `β_1 ... β_K` of the forward process (float32).

    `cosine` (Nichol and Dhariwal 2021): `ᾱ(k) = f(k) / f(0)` with
    `f(k) = cos²((k/K + s) / (1 + s) · π/2)`, `s = 0.008`, and `β_k = 1 - ᾱ(k)/ᾱ(k-1)`
    clipped to `0.999`. `linear` (Ho et al. 2020): `β` from `1e-4` to `0.02` for
    `K = 1000`, both scaled by `1000 / K` so the total noise does not depend on `K`.
    """
    if schedule == "cosine":
        offset = 0.008
        levels = jnp.arange(num_noise_steps + 1, dtype=jnp.float32) / num_noise_steps
        f = jnp.cos((levels + offset) / (1.0 + offset) * (math.pi / 2)) ** 2
        return jnp.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    scale = 1000.0 / num_noise_steps
    return jnp.linspace(1e-4 * scale, min(0.02 * scale, 0.999), num_noise_steps, dtype=jnp.float32)


class Thermalizer(eqx.Module):
    r"""A diffusion model of the invariant (stationary) distribution of a system, with
    an estimate of how noisy a state is: the *thermalizer* of Pedersen, Zanna and Bruna
    (2025).

    **Forward process** (DDPM, `K = num_noise_steps` levels): a clean state `x_0`
    at noise level `k ∈ {1, ..., K}` is

    $$x_k = \sqrt{\bar\alpha_k}\, x_0 + \sqrt{1 - \bar\alpha_k}\,\varepsilon,\qquad
      \varepsilon \sim \mathcal N(0, I),\qquad \bar\alpha_k = \prod_{j \le k} (1 - \beta_j),$$

    with the `cosine` (default) or `linear` schedule of `β`.

    **Two networks, any channels-first architecture** (a pdequinox `ConvNet`/`UNet`,
    `eqx.nn.Conv`, an MLP for ODE states):

    - `denoiser` predicts the noise: it maps `[x_k, (k/K) · ones]` (`C + 1` channels,
        the level as a constant channel, as [`trainax_fm.flow.ConditionalVelocity`][]
        does with flow time) to `ε̂` with the `C` channels of the state.
    - `classifier` estimates the noise level: it maps `x_k` (`C` channels) to `K`
        logits, one per level `1 ... K`, either as a vector `(K,)` or as `K` channels
        of a field `(K, *spatial)`, which are averaged over space (so a plain conv net
        with `K` output channels serves as a classifier). The estimate is the most
        likely level, `k̂ = argmax + 1`.

    Both train together with [`trainax_fm.configuration.ThermalizerDiffusion`][] on
    single states of the trajectories; [`trainax_fm.flow.ThermalizedStepper`][] uses
    the result to pull a drifting rollout back onto the data's distribution.

    **Arguments:**

    - `denoiser`: network `(C + 1, *spatial) -> (C, *spatial)`.
    - `classifier`: network `(C, *spatial) -> (K,)` or `(K, *spatial)`.
    - `num_noise_steps`: `K`, the number of noise levels.
    - `schedule`: `"cosine"` or `"linear"`.
    """

    denoiser: Callable
    classifier: Callable
    num_noise_steps: int = eqx.field(static=True)
    schedule: Schedule = eqx.field(static=True)

    def __init__(
        self,
        denoiser: Callable,
        classifier: Callable,
        *,
        num_noise_steps: int = 1000,
        schedule: Schedule = "cosine",
    ):
        for name, network in (("denoiser", denoiser), ("classifier", classifier)):
            if not callable(network):
                raise TypeError(
                    f"`{name}` must be a callable network, got {type(network).__name__}."
                )
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")
        self.denoiser = denoiser
        self.classifier = classifier
        self.num_noise_steps = check_positive_int(num_noise_steps, "num_noise_steps")
        self.schedule = schedule

    # The schedule is recomputed from static fields (a constant under jit) rather than
    # stored as arrays, which the optimizer would otherwise treat as trainable leaves.
    @property
    def betas(self) -> Float[Array, " levels"]:
        """`β_1 ... β_K` (index `k - 1` for level `k`)."""
        return ddpm_betas(self.num_noise_steps, self.schedule)

    @property
    def alpha_bars(self) -> Float[Array, " levels_plus_one"]:
        """`ᾱ_0 = 1, ᾱ_1, ..., ᾱ_K` (index `k` for level `k`)."""
        return jnp.concatenate([jnp.ones(1), jnp.cumprod(1.0 - self.betas)])

    def add_noise(
        self,
        state: Float[Array, "channels ..."],
        level: Int[Array, ""],
        noise: Float[Array, "channels ..."],
    ) -> Float[Array, "channels ..."]:
        """`x_k = sqrt(ᾱ_k) x_0 + sqrt(1 - ᾱ_k) ε` for one state at level `k`."""
        alpha_bar = self.alpha_bars[level].astype(state.dtype)
        return jnp.sqrt(alpha_bar) * state + jnp.sqrt(1.0 - alpha_bar) * noise

    def epsilon(
        self, noisy: Float[Array, "channels ..."], level: Int[Array, ""]
    ) -> Float[Array, "channels ..."]:
        """The predicted noise `ε̂(x_k, k)` of one state."""
        fraction = jnp.asarray(level, noisy.dtype) / self.num_noise_steps
        inputs = jnp.concatenate([noisy, constant_channel(fraction, noisy)], axis=0)
        output = self.denoiser(inputs)
        if getattr(output, "shape", None) != noisy.shape:
            raise ValueError(
                f"The thermalizer's denoiser maps its input of shape {tuple(inputs.shape)} "
                f"([x_k, k/K] on the channel axis) to "
                f"{getattr(output, 'shape', type(output).__name__)}, but the predicted "
                f"noise must have the state's shape {tuple(noisy.shape)}: build it with "
                f"{inputs.shape[0]} input and {noisy.shape[0]} output channels."
            )
        return output

    def __call__(
        self, noisy: Float[Array, "channels ..."], level: Int[Array, ""]
    ) -> Float[Array, "channels ..."]:
        """The network interface `(x_k, k) -> ε̂`: the same as
        [`epsilon`][trainax_fm.flow.Thermalizer.epsilon]."""
        return self.epsilon(noisy, level)

    def noise_logits(self, state: Float[Array, "channels ..."]) -> Float[Array, " levels"]:
        """The classifier's `K` logits for one state (level `k` at index `k - 1`)."""
        output = self.classifier(state)
        shape = getattr(output, "shape", None)
        if shape is None or len(shape) < 1 or shape[0] != self.num_noise_steps:
            raise ValueError(
                f"The thermalizer's classifier maps a state of shape {tuple(state.shape)} "
                f"to {shape if shape is not None else type(output).__name__}, but must "
                f"return num_noise_steps={self.num_noise_steps} logits, as a vector "
                f"({self.num_noise_steps},) or as {self.num_noise_steps} channels of a "
                "field (averaged over space): build it with that many outputs."
            )
        return jnp.mean(output.reshape(self.num_noise_steps, -1), axis=1)

    def estimate_noise_level(self, state: Float[Array, "channels ..."]) -> Int[Array, ""]:
        """The most likely noise level `k̂ ∈ {1, ..., K}` of one state."""
        return jnp.argmax(self.noise_logits(state)).astype(jnp.int32) + 1

    def denoise(
        self,
        state: Float[Array, "channels ..."],
        level: Int[Array, ""],
        *,
        key: Optional[PRNGKeyArray] = None,
    ) -> Float[Array, "channels ..."]:
        r"""Run the reverse diffusion from level `level` down to `0`: `level` network
        evaluations. Each step from level `k` to `k - 1` is the DDPM posterior

        $$x_{k-1} = \frac{1}{\sqrt{1 - \beta_k}}\Big(x_k
          - \frac{\beta_k}{\sqrt{1 - \bar\alpha_k}}\,\hat\varepsilon(x_k, k)\Big)
          + \sigma_k z,\qquad
          \sigma_k^2 = \beta_k\,\frac{1 - \bar\alpha_{k-1}}{1 - \bar\alpha_k},$$

        with `z ~ N(0, I)` drawn from `key` (ancestral sampling), or `z = 0` with
        `key=None` (the posterior mean: deterministic). `level = 0` returns the state.

        **Arguments:**

        - `state`: one state `(C, *spatial)` taken to be at noise level `level`.
        - `level`: an integer in `0 ... K` (may be traced).
        - `key`: a PRNG key for ancestral sampling, or `None`.

        **Returns:**

        - The denoised state, same shape and dtype.
        """
        betas = self.betas
        alpha_bars = self.alpha_bars
        level = jnp.clip(jnp.asarray(level, jnp.int32), 0, self.num_noise_steps)

        def body(i, x):
            k = level - i
            beta = betas[k - 1].astype(x.dtype)
            alpha_bar = alpha_bars[k].astype(x.dtype)
            mean = (x - beta / jnp.sqrt(1.0 - alpha_bar) * self.epsilon(x, k)) / jnp.sqrt(
                1.0 - beta
            )
            if key is None:
                return mean
            variance = beta * (1.0 - alpha_bars[k - 1].astype(x.dtype)) / (1.0 - alpha_bar)
            z = jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)
            return mean + jnp.sqrt(variance) * z

        return jax.lax.fori_loop(0, level, body, state)
