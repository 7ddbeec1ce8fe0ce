from typing import Optional

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_bool, check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples
from ..flow._ema import EMAFlowMap
from ..flow._flow_map import FlowMap, frozen
from ..flow._steppers import as_flow_model
from ..flow._training import interpolate, split_window
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs, require_key
from ._flow_base import AbstractFlowConfiguration, check_step_sampler
from ._flow_matching import check_loss
from ._flow_time import AbstractTimeSampler
from ._progressive_distillation import compare


class SemigroupDistillation(AbstractFlowConfiguration):
    r"""Semigroup (self-)distillation of a flow map.

    The trainable `stepper` is a [`trainax_fm.flow.FlowMap`][]
    `F_d(x, y, t) = x + d v + d^2 (phi - v)` (or a `FlowMapStepper` holding one) built
    on a trained, frozen velocity `v`. Per window, `y` is the first `H` states and
    `x_1` the next one; with noise `x_0 ~ N(0, I)` and `(t, d)` from `step_sampler`
    the start point is the straight interpolant `x_t = t x_1 + (1 - t) x_0` (the
    flow-matching marginal at time `t`). The loss asks one step of size `d` to equal
    two steps of size `d/2`:

    $$L = \ell\Big(F_d(x_t, t),\;
      \mathrm{sg}\big(G_{d/2}(G_{d/2}(x_t, t),\, t + d/2)\big);\ t\Big),$$

    where `sg` is the stop-gradient and `G` is the target map: the flow map itself
    (self-distillation, `teacher=None`), a frozen copy passed as `teacher`, or, when the
    stepper is a [`trainax_fm.flow.EMAFlowMap`][], its exponential moving average
    (the student is then `stepper.flow_map`). Together with `F_0 = id` and
    `dF/dd|_{d=0} = v` (true by construction), the semigroup property pins `F_d` to the
    exact flow of `v`. With `velocity_space=True` the loss compares
    `(F_d - x_t)/d` with `(target - x_t)/d` (for MSE: the error divided by `d^2`),
    which keeps small steps from being ignored.

    A `key` is required.

    **Arguments:**

    - `step_sampler`: draws `(t, d)` with `d > 0`; default
        `DyadicTimeSampler(max_level=6)` (halving `d` lands on the next dyadic level).
    - `time_level_loss`: `ℓ` (default `MSELoss()`); receives `time=t`.
    - `num_input_steps`: `H`; windows need `H + 1` snapshots.
    - `teacher`: optional frozen `FlowMap` (or `FlowMapStepper`) computing the target;
        `None` uses the trained flow map itself (or the EMA of an `EMAFlowMap`) under
        stop-gradient.
    - `velocity_space`: compare average velocities instead of end states.
    """

    step_sampler: AbstractTimeSampler
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    teacher: Optional[FlowMap]
    velocity_space: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        step_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        teacher=None,
        velocity_space: bool = False,
    ):
        owner = "SemigroupDistillation"
        self.step_sampler = check_step_sampler(step_sampler, 6, owner)
        self.time_level_loss = check_loss(time_level_loss, owner)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.teacher = (
            None
            if teacher is None
            else as_flow_model(
                teacher, "teacher", velocity=False, num_input_steps=self.num_input_steps
            )
        )
        self.velocity_space = check_bool(velocity_space, "velocity_space")

    def draw(self, key: PRNGKeyArray, x1: Float[Array, "batch channels ..."]):
        """The random inputs of one loss evaluation: `(x0, t, d)`."""
        require_key("SemigroupDistillation", key)
        return self._draw(key, x1, self.step_sampler)

    def split_stepper(self, stepper) -> tuple[FlowMap, FlowMap]:
        """`(student, target map)` of a trainable stepper."""
        if isinstance(stepper, EMAFlowMap):
            if self.teacher is not None:
                raise ValueError(
                    "SemigroupDistillation got both a `teacher` and an EMAFlowMap "
                    "stepper; the target comes from one of them. Pass a plain FlowMap "
                    "with `teacher=...`, or drop `teacher` to use the EMA."
                )
            return stepper.flow_map, stepper.ema
        flow_map = as_flow_model(
            stepper, "stepper", velocity=False, num_input_steps=self.num_input_steps
        )
        return flow_map, flow_map if self.teacher is None else self.teacher

    def target(self, target_map: FlowMap, x_t, y, t, d):
        """`sg(G_{d/2}(G_{d/2}(x_t, t), t + d/2))` for a batch with `G = target_map`."""
        target_map = frozen(target_map)
        half = 0.5 * d
        middle = vmap_over_samples(call_model, target_map, x_t, y, t, half)
        end = vmap_over_samples(call_model, target_map, middle, y, t + half, half)
        return jax.lax.stop_gradient(end)

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        flow_map, target_map = self.split_stepper(stepper)
        y, x1 = split_window(data, self.num_input_steps, "SemigroupDistillation")
        x0, t, d = self.draw(inputs.key, x1)
        x_t = interpolate(x0, x1, t)
        target = self.target(target_map, x_t, y, t, d)
        prediction = vmap_over_samples(call_model, flow_map, x_t, y, t, d)
        return compare(
            self.time_level_loss, prediction, target, x_t, t, d, self.velocity_space
        )
