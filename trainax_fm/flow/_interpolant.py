"""The stochastic interpolant from the current state to the next one (Chen et al. 2024)."""

import math
import numbers
from typing import Any, Literal, Optional, Union

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

BetaSchedule = Literal["linear", "quadratic"]
_BETA_SCHEDULES = ("linear", "quadratic")

Scalar = Union[float, Float[Array, ""]]
# What a stochastic interpolant may be sampled with: None (the trained diffusion), a
# scale `eps_g` of `eps_g (1 - s)`, or the Föllmer diffusion.
SamplingDiffusion = Optional[Union[float, Literal["follmer"]]]
FOLLMER = "follmer"


def check_noise_scale(value: Any, name: str, *, allow_zero: bool) -> float:
    """`value` as a finite float `> 0` (`>= 0` with `allow_zero`), else a clear error."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float {bound}, got {value!r} of type {type(value).__name__}."
        )
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"`{name}` must be a finite float {bound}, got {value}. "
            + (
                "Use 0 for the deterministic (probability-flow) sampler, or a positive "
                "scale such as 1.0."
                if allow_zero
                else "The interpolant needs noise: its drift correction divides by it. "
                "Use e.g. 1.0 (the scale of standardised data)."
            )
        )
    return value


def check_sampling_diffusion(value: Any, name: str) -> SamplingDiffusion:
    """`None`, `"follmer"` or a finite float `>= 0`, else a clear error."""
    if value is None or value == FOLLMER:
        return value
    if isinstance(value, str):
        raise ValueError(
            f"`{name}` must be None (the trained diffusion), a float >= 0 (the scale "
            f"`eps_g` of `eps_g (1 - s)`) or {FOLLMER!r}, got {value!r}."
        )
    return check_noise_scale(value, name, allow_zero=True)


class StochasticInterpolantPath(eqx.Module):
    r"""The stochastic interpolant from the current state `x_0` to the next state `x_1`.

    With flow time `s` in `[0, 1]` and `z ~ N(0, I)`,

    $$I_s = \alpha(s)\,x_0 + \beta(s)\,x_1 + \sigma(s)\sqrt{s}\,z,\qquad
      \alpha(s) = 1 - s,\quad \sigma(s) = \varepsilon\,(1 - s),$$

    with `beta(s) = s^2` (`"quadratic"`, the choice of Chen et al. 2024) or
    `beta(s) = s` (`"linear"`). `sqrt(s) z` has the law of a Wiener process `W_s`, so
    `I_0 = x_0` (a point mass at the current state) and `I_1 = x_1`. The drift
    `b(s, x, x_0) = E[dI/ds | I_s = x, x_0]` is learned by regression on
    `alpha'(s) x_0 + beta'(s) x_1 + sigma'(s) sqrt(s) z`
    ([`trainax_fm.configuration.StochasticInterpolant`][]); the SDE
    `dX = b ds + sigma(s) dW` from `X_0 = x_0` then samples `x_1 | x_0`.

    Not public: [`trainax_fm.flow.StochasticInterpolantStepper`][] and the
    configuration build it from their `noise_scale` and `beta_schedule`.
    """

    noise_scale: float = eqx.field(static=True)
    beta_schedule: BetaSchedule = eqx.field(static=True)

    def __init__(self, noise_scale: float = 1.0, beta_schedule: BetaSchedule = "quadratic"):
        self.noise_scale = check_noise_scale(noise_scale, "noise_scale", allow_zero=False)
        if beta_schedule not in _BETA_SCHEDULES:
            raise ValueError(
                f"`beta_schedule` must be one of {_BETA_SCHEDULES}, got {beta_schedule!r}: "
                "'quadratic' is beta(s) = s**2 (Chen et al. 2024), 'linear' beta(s) = s."
            )
        self.beta_schedule = beta_schedule

    def alpha(self, s):
        return 1.0 - s

    def alpha_dot(self, s):
        return -jnp.ones_like(s)

    def beta(self, s):
        return s * s if self.beta_schedule == "quadratic" else s

    def beta_dot(self, s):
        return 2.0 * s if self.beta_schedule == "quadratic" else jnp.ones_like(s)

    def sigma(self, s):
        return self.noise_scale * (1.0 - s)

    def sigma_dot(self, s):
        return -self.noise_scale * jnp.ones_like(s)

    def follmer_diffusion(self, s):
        r"""The Föllmer diffusion of Chen et al. (2024),
        $g_F^2 = 2 s \sigma (\beta'\sigma - \beta\sigma') / \beta - \sigma^2$, written out
        per schedule so that it is finite at `s = 0`: `eps^2 (1 - s)(3 - s)` for
        `beta = s^2`, `eps^2 (1 - s)(1 + s)` for `beta = s`."""
        other = 3.0 - s if self.beta_schedule == "quadratic" else 1.0 + s
        return self.noise_scale * jnp.sqrt((1.0 - s) * other)

    def sampling_diffusion(self, s, choice: SamplingDiffusion):
        """`g(s)` of a sampling-diffusion `choice` (see `SamplingDiffusion`)."""
        if choice is None:
            return self.sigma(s)
        if choice == FOLLMER:
            return self.follmer_diffusion(s)
        return choice * (1.0 - s)

    def interpolant(self, x0, x1, z, s):
        """`I_s` for one state (`s` a scalar) or a batch (`s` broadcast to the states)."""
        return self.alpha(s) * x0 + self.beta(s) * x1 + self.sigma(s) * jnp.sqrt(s) * z

    def drift_target(self, x0, x1, z, s):
        """The regression target `alpha'(s) x_0 + beta'(s) x_1 + sigma'(s) sqrt(s) z`."""
        return (
            self.alpha_dot(s) * x0
            + self.beta_dot(s) * x1
            + self.sigma_dot(s) * jnp.sqrt(s) * z
        )

    def score(
        self,
        drift: Float[Array, "channels ..."],
        x: Float[Array, "channels ..."],
        x0: Float[Array, "channels ..."],
        s: Scalar,
    ) -> Float[Array, "channels ..."]:
        r"""The score `grad log rho_s(x | x_0)` expressed through the drift.

        Because `E[x_1 | I_s = x]` and `E[z | I_s = x]` are tied to `b` and `x` by two
        linear relations, the score needs no second network (Chen et al. 2024):

        $$\nabla\log\rho_s(x) = \frac{\beta b - \beta' x + (\beta'\alpha - \beta\alpha')
          x_0}{s\,\sigma\,(\beta'\sigma - \beta\sigma')}.$$

        At `s = 0` the law is the point mass at `x_0`, where the sampler sits exactly;
        the correction it feeds is zero there, so `0` is returned at `s = 0`.
        """
        s = jnp.asarray(s, dtype=x.dtype)
        alpha, alpha_dot = self.alpha(s), self.alpha_dot(s)
        beta, beta_dot = self.beta(s), self.beta_dot(s)
        sigma, sigma_dot = self.sigma(s), self.sigma_dot(s)
        numerator = beta * drift - beta_dot * x + (beta_dot * alpha - beta * alpha_dot) * x0
        denominator = s * sigma * (beta_dot * sigma - beta * sigma_dot)
        positive = s > 0
        safe = jnp.where(positive, denominator, jnp.ones_like(denominator))
        return jnp.where(positive, numerator / safe, jnp.zeros_like(numerator))

    def sde_drift(
        self,
        drift: Float[Array, "channels ..."],
        x: Float[Array, "channels ..."],
        x0: Float[Array, "channels ..."],
        s: Scalar,
        diffusion: Scalar,
    ) -> Float[Array, "channels ..."]:
        r"""The drift of the SDE with diffusion `g(s)` that keeps the interpolant's laws:
        `b + (g^2 - sigma^2) / 2 * score` (equal to `b` when `g = sigma`)."""
        s = jnp.asarray(s, dtype=x.dtype)
        excess = 0.5 * (jnp.asarray(diffusion, x.dtype) ** 2 - self.sigma(s) ** 2)
        return drift + excess * self.score(drift, x, x0, s)
