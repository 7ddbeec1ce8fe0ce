from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from .._argument_checks import check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples
from ..flow._flow_map import frozen
from ..flow._training import interpolate, split_window
from ..flow._velocity import ConditionalVelocity
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import (
    AbstractFlowConfiguration,
    average_velocity,
    check_teacher_velocity,
    per_sample_losses,
)
from ._flow_matching import check_loss
from ._flow_time import AbstractTimeSampler, TimePairSampler, check_time_sampler


def flow_map_and_time_derivative(model: ConditionalVelocity, x, y, t, d):
    """`X_(t,t+d)(x) = x + d u(x, y, t, d)` and its derivative in the end time `t + d`.

    One forward-mode product in the scalar step `d` (no Jacobian in `x`).
    """

    def flow_map(step):
        return x + step * model(x, y, t, step)

    return jax.jvp(flow_map, (d,), (jnp.ones_like(d),))


class LagrangianSelfDistillation(AbstractFlowConfiguration):
    r"""Lagrangian self-distillation of a two-time flow map (Boffi, Albergo, Vanden-Eijnden 2025).

    The trainable `stepper` is a step-size-conditioned velocity `u(x, y, t, d)`
    (a [`trainax_fm.flow.ConditionalVelocity`][] with `step_size_input=True`, or a
    `FlowMatchingStepper` holding one) that defines the flow map from time `s` to
    `t = s + d`

    $$X_{s,t}(x) = x + (t - s)\, u(x, y, s, t - s), \qquad
      v_{t,t}(x) = \partial_t X_{s,t}(x)\big|_{s=t} = u(x, y, t, 0).$$

    Per window `y` is the first `H` states and `x_1` the next one; with noise `x_0`,
    a pair `s <= t` from `time_sampler` and `x_s = s x_1 + (1 - s) x_0`, the loss of a
    sample is

    $$\ell\big(\partial_t X_{s,t}(x_s),\ \text{target};\ s\big), \qquad
      \text{target} = \begin{cases} x_1 - x_0 & s = t \text{ (flow matching on the diagonal)}\\
      \mathrm{sg}\big[v_{t,t}(X_{s,t}(x_s))\big] & s < t \text{ (Lagrangian condition)}\end{cases}$$

    so the map moves with the velocity it defines on the diagonal. On the diagonal
    `∂_t X_{t,t} = u(x, y, t, 0)`, so the same prediction serves both terms. The
    time derivative is one `jax.jvp` in the scalar end time (no spatial Jacobian),
    and no gradient flows through the target (`sg`, also on the parameters).

    With a `teacher` (a trained plain velocity), the target is
    `sg[teacher(X_{s,t}(x_s), y, t)]` for every sample (on the diagonal: the teacher's
    velocity at `x_s`): distillation of a trained velocity instead of
    self-distillation. Initialise the student from the teacher with
    [`trainax_fm.flow.with_step_size_input`][], so that at first `X_{s,t}` is one
    Euler step of the teacher.

    Sample with `FlowMatchingStepper(u, n)`: `n` map steps of size `1/n`, `n` network
    evaluations. A `key` is required.

    **Arguments:**

    - `time_sampler`: draws `(s, t - s)`; default `TimePairSampler()` (uniform pair,
        a quarter of every batch off the diagonal). Without a teacher it must draw
        diagonal samples (`d = 0`): they are the only data term.
    - `time_level_loss`: `ℓ` (default `MSELoss()`); receives `time=s`.
    - `num_input_steps`: `H`; windows need `H + 1` snapshots.
    - `teacher`: `None` (self-distillation) or a trained plain velocity (or a
        `FlowMatchingStepper` holding one), frozen.
    """

    time_sampler: AbstractTimeSampler
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    teacher: Optional[ConditionalVelocity]

    def __init__(
        self,
        *,
        time_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        teacher=None,
    ):
        owner = "LagrangianSelfDistillation"
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.time_sampler = check_time_sampler(
            TimePairSampler() if time_sampler is None else time_sampler,
            "time_sampler",
            owner,
        )
        self.time_level_loss = check_loss(time_level_loss, owner)
        self.teacher = check_teacher_velocity(teacher, self.num_input_steps)
        if (
            self.teacher is None
            and isinstance(self.time_sampler, TimePairSampler)
            and self.time_sampler.equal_share == 0.0
        ):
            raise ValueError(
                f"{owner} without a teacher learns the velocity from the diagonal "
                "samples (d = 0) only, but `time_sampler` has equal_share=0. Pass "
                "TimePairSampler(equal_share=0.75) (or another share > 0), or a "
                "`teacher`."
            )

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        owner = "LagrangianSelfDistillation"
        model = average_velocity(stepper, self.num_input_steps, owner)
        y, x1 = split_window(data, self.num_input_steps, owner)
        x0, t, d = self._draw(inputs.key, x1, self.time_sampler)
        x_t = interpolate(x0, x1, t)
        position, speed = vmap_over_samples(
            flow_map_and_time_derivative, model, x_t, y, t, d
        )
        end = t + d
        if self.teacher is None:
            end_velocity = vmap_over_samples(
                lambda m, x, c, s: m(x, c, s, jnp.zeros_like(s)), frozen(model), position, y, end
            )
            on_diagonal = (d == 0).reshape((-1,) + (1,) * (x1.ndim - 1))
            target = jnp.where(on_diagonal, x1 - x0, jax.lax.stop_gradient(end_velocity))
        else:
            target = jax.lax.stop_gradient(
                vmap_over_samples(call_model, frozen(self.teacher), position, y, end)
            )
        losses = per_sample_losses(self.time_level_loss, speed, target, t)
        return self.time_level_loss.batch_reduction(losses)
