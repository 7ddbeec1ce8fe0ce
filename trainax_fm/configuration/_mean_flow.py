import math
import numbers
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .._argument_checks import check_positive_int
from .._stepper._conditioned import vmap_over_samples
from ..flow._training import interpolate, split_window
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import AbstractFlowConfiguration, average_velocity, per_sample_losses
from ._flow_matching import check_loss
from ._flow_time import AbstractTimeSampler, TimePairSampler, check_time_sampler


def _check_non_negative(value, name: str, owner: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and (value > 0 if positive else value >= 0)
    ):
        raise ValueError(
            f"{owner}: `{name}` must be a finite number {'> 0' if positive else '>= 0'}, "
            f"got {value!r}."
        )
    return float(value)


class MeanFlow(AbstractFlowConfiguration):
    r"""MeanFlow: an average velocity trained by the MeanFlow identity (Geng et al. 2025).

    The trainable `stepper` is an average velocity `u(x, y, t, d)` over the step from
    `t` to `t + d` (a [`trainax_fm.flow.ConditionalVelocity`][] with
    `step_size_input=True`, or a `FlowMatchingStepper` holding one):
    `u(x_t, y, t, d) = (1/d) ∫_t^{t+d} v(x_τ, y, τ) dτ` along the flow, so one step is
    `x_{t+d} = x_t + d u`. Differentiating `d u = ∫ v` in the start time `t` with the
    end `t + d` fixed gives the MeanFlow identity (in trainax_fm's convention, noise
    at `t = 0`)

    $$u(x_t, y, t, d) = v(x_t, y, t) + d\, \frac{\mathrm{d}}{\mathrm{d}t} u(x_t, y, t, d),
      \qquad \frac{\mathrm{d}}{\mathrm{d}t} u = \partial_x u\, v + \partial_t u - \partial_d u.$$

    Per window `y` is the first `H` states and `x_1` the next one; with noise `x_0`,
    `(t, d)` from `time_sampler`, `x_t = t x_1 + (1 - t) x_0` and the conditional
    velocity `v = x_1 - x_0`, the loss of a sample is

    $$\ell\big(u(x_t, y, t, d),\ \mathrm{sg}[v + d\, \tfrac{\mathrm{d}}{\mathrm{d}t} u]\big),$$

    the total derivative by one `jax.jvp` of `u` with tangents `(v, 1, -1)` in
    `(x, t, d)`, under stop-gradient (`sg`). At `d = 0` this is flow matching. No
    teacher is needed: one-step sampling (`FlowMatchingStepper(u, 1)`, 1 network
    evaluation) comes from training alone.

    The adaptive weighting of the paper divides each sample's loss by
    `sg[(ℓ + offset)^power]` (`power = 0` turns it off; the paper uses 1).

    A `key` is required.

    **Arguments:**

    - `time_sampler`: draws `(t, d)`; default
        `TimePairSampler("logit_normal", mean=0.4, std=1.0, equal_share=0.75)` (the
        paper's best setting, mirrored to noise at `t = 0`). For one-step sampling
        more off-diagonal pairs can help: on the coarse 2D Kuramoto-Sivashinsky
        benchmark `equal_share=0.5` gave the better 1-step emulator (see "Few-step flow
        maps" in the docs).
    - `time_level_loss`: `ℓ` (default `MSELoss()`); receives `time=t`.
    - `num_input_steps`: `H`; windows need `H + 1` snapshots.
    - `adaptive_weight_power`: `power >= 0` of the adaptive weighting (default 0: off).
    - `adaptive_weight_offset`: `offset > 0` (default 1e-3).
    """

    time_sampler: AbstractTimeSampler
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    adaptive_weight_power: float = eqx.field(static=True)
    adaptive_weight_offset: float = eqx.field(static=True)

    def __init__(
        self,
        *,
        time_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        adaptive_weight_power: float = 0.0,
        adaptive_weight_offset: float = 1e-3,
    ):
        owner = "MeanFlow"
        if time_sampler is None:
            time_sampler = TimePairSampler("logit_normal", mean=0.4, std=1.0)
        self.time_sampler = check_time_sampler(time_sampler, "time_sampler", owner)
        self.time_level_loss = check_loss(time_level_loss, owner)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.adaptive_weight_power = _check_non_negative(
            adaptive_weight_power, "adaptive_weight_power", owner
        )
        self.adaptive_weight_offset = _check_non_negative(
            adaptive_weight_offset, "adaptive_weight_offset", owner, positive=True
        )

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        model = average_velocity(stepper, self.num_input_steps, "MeanFlow")
        y, x1 = split_window(data, self.num_input_steps, "MeanFlow")
        x0, t, d = self._draw(inputs.key, x1, self.time_sampler)
        x_t = interpolate(x0, x1, t)
        velocity = x1 - x0

        def average_and_total_derivative(m, x, c, start, size, v):
            one = jnp.ones_like(start)
            return jax.jvp(
                lambda xx, ss, hh: m(xx, c, ss, hh), (x, start, size), (v, one, -one)
            )

        average, total = vmap_over_samples(
            average_and_total_derivative, model, x_t, y, t, d, velocity
        )
        step = d.reshape((-1,) + (1,) * (x1.ndim - 1))
        target = jax.lax.stop_gradient(velocity + step * total)
        losses = per_sample_losses(self.time_level_loss, average, target, t)
        if self.adaptive_weight_power > 0:
            weights = (losses + self.adaptive_weight_offset) ** (-self.adaptive_weight_power)
            losses = jax.lax.stop_gradient(weights) * losses
        return self.time_level_loss.batch_reduction(losses)
