from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .._stepper._conditioned import call_model, select_samples, vmap_over_samples
from .._argument_checks import check_positive_int
from ..flow._ema import EMAVelocity
from ..flow._steppers import EMAFlowMatchingStepper
from ..flow._flow_map import frozen
from ..flow._training import draw_noise, interpolate, per_sample, split_window
from ..flow._velocity import ConditionalVelocity
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import AbstractFlowConfiguration, average_velocity, per_sample_losses
from ._flow_matching import check_loss
from ._flow_time import (
    AbstractTimeSampler,
    DyadicTimeSampler,
    UniformTimeSampler,
    check_time_sampler,
    check_unit,
)


class ShortcutModel(AbstractFlowConfiguration):
    r"""Shortcut models: a step-size-conditioned velocity made self-consistent (Frans et al. 2025).

    The trainable `stepper` is a shortcut `s(x, y, t, d)` (a
    [`trainax_fm.flow.ConditionalVelocity`][] with `step_size_input=True`, a
    `FlowMatchingStepper` holding one, a [`trainax_fm.flow.EMAVelocity`][] or an
    [`trainax_fm.flow.EMAFlowMatchingStepper`][] holding one); one
    step of size `d` is `x + d s(x, y, t, d)`. Per window `y` is the first `H` states
    and `x_1` the next one, with noise `x_0` and `x_t = t x_1 + (1 - t) x_0`. Every
    batch is split (statically):

    - the first `B - round(bootstrap_share * B)` samples train the smallest level by
        flow matching: `ℓ(s(x_t, y, t, 0), x_1 - x_0)`, `t` from `time_sampler`;
    - the others train self-consistency at the dyadic levels: a level
        `k in {0, ..., max_level - 1}` gives the step `2δ = 2^{-k}` and a time on its
        grid, and

    $$\ell\Big(s(x_t, y, t, 2\delta),\ \mathrm{sg}\big[\tfrac12\big(s_1 + s_2\big)\big]\Big),
      \quad s_1 = \bar s(x_t, y, t, \delta), \quad
      s_2 = \bar s(x_t + \delta s_1, y, t + \delta, \delta),$$

    one big step against the mean of two half steps. `s̄` is the model itself or, for
    an `EMAVelocity` (alone or in an `EMAFlowMatchingStepper`), its exponential
    moving average (the EMA target), always frozen.
    The recursion ends at the flow-matching velocity: half steps of the finest size
    `δ = 2^{-max_level}` query `s̄(·, 0)`.

    Sample with `FlowMatchingStepper(s, n)` (`n` a power of two up to
    `2^{max_level - 1}`): `n` network evaluations. A `key` is required.

    **Arguments:**

    - `max_level`: the number of dyadic self-consistency levels (default 6: big steps
        `1, 1/2, ..., 1/32`, finest half step `1/64`).
    - `bootstrap_share`: the share of every batch spent on self-consistency in
        `[0, 1]` (default 0.25, the paper's one in four).
    - `time_sampler`: draws the flow-matching times (only `t` is used); default
        `UniformTimeSampler()`.
    - `time_level_loss`: `ℓ` (default `MSELoss()`); receives `time=t`.
    - `num_input_steps`: `H`; windows need `H + 1` snapshots.
    """

    max_level: int = eqx.field(static=True)
    bootstrap_share: float = eqx.field(static=True)
    time_sampler: AbstractTimeSampler
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        max_level: int = 6,
        bootstrap_share: float = 0.25,
        time_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
    ):
        owner = "ShortcutModel"
        self.max_level = check_positive_int(max_level, "max_level")
        self.bootstrap_share = check_unit(bootstrap_share, "bootstrap_share", owner)
        self.time_sampler = check_time_sampler(
            UniformTimeSampler() if time_sampler is None else time_sampler,
            "time_sampler",
            owner,
        )
        self.time_level_loss = check_loss(time_level_loss, owner)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")

    def num_bootstrap(self, batch_size: int) -> int:
        """How many of `batch_size` samples (the last ones) train self-consistency."""
        return int(round(self.bootstrap_share * batch_size))

    def split_stepper(self, stepper) -> tuple[ConditionalVelocity, ConditionalVelocity]:
        """`(trained shortcut, target shortcut)` of a trainable stepper."""
        if isinstance(stepper, EMAFlowMatchingStepper):
            if stepper.num_input_steps != self.num_input_steps:
                raise ValueError(
                    f"`stepper` is an EMAFlowMatchingStepper with num_input_steps="
                    f"{stepper.num_input_steps}, but ShortcutModel has num_input_steps="
                    f"{self.num_input_steps}. Use the same history length in both."
                )
            stepper = stepper.model
        if isinstance(stepper, EMAVelocity):
            return stepper.velocity, stepper.ema
        model = average_velocity(stepper, self.num_input_steps, "ShortcutModel")
        return model, model

    def draw(self, key, x1):
        """`(x0, t, step)`: noise, times and the step sizes `2δ` (0 for flow matching)."""
        key_noise, key_fm, key_bootstrap = jax.random.split(key, 3)
        batch_size = x1.shape[0]
        num_bootstrap = self.num_bootstrap(batch_size)
        num_fm = batch_size - num_bootstrap
        times, steps = [], []
        if num_fm:
            t, _ = self.time_sampler.sample(key_fm, num_fm)
            times.append(t)
            steps.append(jnp.zeros_like(t))
        if num_bootstrap:
            levels = DyadicTimeSampler(max_level=self.max_level - 1)
            t, step = levels.sample(key_bootstrap, num_bootstrap)
            times.append(t)
            steps.append(step)
        t = jnp.concatenate(times).astype(x1.dtype)
        return draw_noise(key_noise, x1), t, jnp.concatenate(steps).astype(x1.dtype)

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        model, target_model = self.split_stepper(stepper)
        y, x1 = split_window(data, self.num_input_steps, "ShortcutModel")
        x0, t, step = self.draw(inputs.key, x1)
        x_t = interpolate(x0, x1, t)
        prediction = vmap_over_samples(call_model, model, x_t, y, t, step)
        num_fm = x1.shape[0] - self.num_bootstrap(x1.shape[0])
        targets = [(x1 - x0)[:num_fm]]
        if num_fm < x1.shape[0]:
            targets.append(
                self.self_consistency_target(
                    select_samples(target_model, slice(num_fm, None)),
                    x_t[num_fm:], y[num_fm:], t[num_fm:], step[num_fm:],
                )
            )
        target = jnp.concatenate(targets)
        losses = per_sample_losses(self.time_level_loss, prediction, target, t)
        return self.time_level_loss.batch_reduction(losses)

    def self_consistency_target(self, target_model, x_t, y, t, step):
        """`sg[(s_1 + s_2) / 2]`: the mean of two half steps of the frozen target model."""
        target_model = frozen(target_model)
        half = 0.5 * step
        # the finest half step is the flow-matching velocity (step-size input 0)
        half_input = jnp.where(half <= 2.0**-self.max_level, 0.0, half).astype(step.dtype)
        first = vmap_over_samples(call_model, target_model, x_t, y, t, half_input)
        middle = x_t + per_sample(half, x_t) * first
        second = vmap_over_samples(call_model, target_model, middle, y, t + half, half_input)
        return jax.lax.stop_gradient(0.5 * (first + second))
