from typing import Optional

import equinox as eqx
import jax

from .._stepper._conditioned import vmap_over_samples
from .._rollout._training import Unroll, check_unroll
from .._argument_checks import check_bool, check_positive_int
from ..flow._flow_map import frozen
from ..flow._integrate import FlowModel, check_method_for, flow_step, integrate
from ..flow._solvers import AbstractSolver, Method, get_solver
from ..flow._steppers import as_flow_model
from ..flow._training import interpolate, per_sample, split_window
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import AbstractFlowConfiguration
from ._flow_matching import check_loss
from ._flow_base import check_step_sampler
from ._flow_time import AbstractTimeSampler


def compare(loss, prediction, target, x_t, t, d, velocity_space: bool):
    """The loss of two end states, or of the implied average velocities."""
    if velocity_space:
        db = per_sample(d, x_t)
        prediction = (prediction - x_t) / db
        target = (target - x_t) / db
    return loss(prediction, target, time=t)


class ProgressiveDistillation(AbstractFlowConfiguration):
    r"""Progressive distillation: one student step imitates `K` frozen teacher steps.

    Per window, `y` is the first `H` states and `x_1` the next one. With noise
    `x_0 ~ N(0, I)`, a macro step `Δ` and a time `t in [0, 1 - Δ]` from
    `step_sampler`, the start point is the straight interpolant
    `x_t = t x_1 + (1 - t) x_0` (the marginal the teacher's flow visits at time `t`
    when the teacher is the exact flow-matching velocity; drawing it this way costs no
    teacher evaluations). Then

    $$x_T = \mathrm{sg}\big(\text{K teacher steps of size } Δ/K \text{ from } (x_t, t)\big),
      \qquad x_S = \text{one student step of size } Δ,
      \qquad L = \ell(x_S, x_T;\ t),$$

    with `sg` the stop-gradient (also applied to the teacher's parameters): no gradient
    ever reaches the teacher. With `velocity_space=True` the loss compares the average
    velocities `(x_S - x_t)/Δ` and `(x_T - x_t)/Δ` instead (for MSE: divided by `Δ²`).

    What "a step" is depends on the model:

    - a plain [`trainax_fm.flow.ConditionalVelocity`][]: a step of the solver
        (`teacher_method` / `student_method`: Euler, midpoint, Heun);
    - a `ConditionalVelocity` with `step_size_input=True` (the student receives
        `d = Δ` as an input channel, see [`trainax_fm.flow.with_step_size_input`][]):
        `x + Δ v(x, y, t, Δ)` (Euler form only);
    - a [`trainax_fm.flow.FlowMap`][]: `F_Δ(x, y, t)`.

    The trainable `stepper` (the student) may also be a `FlowMatchingStepper` or a
    `FlowMapStepper` (its model is trained). A `key` is required.

    **Arguments:**

    - `teacher`: the frozen teacher, a velocity or flow map (or a stepper wrapping
        one), held as a field of the configuration.
    - `num_fine_steps`: `K`, the teacher steps per student step (default 2).
    - `teacher_method`, `student_method`: solvers for plain velocities (default
        `"euler"`).
    - `step_sampler`: draws `(t, Δ)` with `Δ > 0`; default
        `DyadicTimeSampler(max_level=4)`.
    - `time_level_loss`: `ℓ` (default `MSELoss()`); receives `time=t`.
    - `num_input_steps`: `H`; windows need `H + 1` snapshots.
    - `velocity_space`: compare average velocities instead of end states.
    - `unroll`: how the teacher's `K` steps are looped (see
        [`trainax_fm.flow.integrate`][]).
    """

    teacher: FlowModel
    num_fine_steps: int = eqx.field(static=True)
    teacher_solver: AbstractSolver
    student_solver: AbstractSolver
    step_sampler: AbstractTimeSampler
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    velocity_space: bool = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        teacher,
        *,
        num_fine_steps: int = 2,
        teacher_method: Method = "euler",
        student_method: Method = "euler",
        step_sampler: Optional[AbstractTimeSampler] = None,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        velocity_space: bool = False,
        unroll: Unroll = "auto",
    ):
        owner = "ProgressiveDistillation"
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.teacher = as_flow_model(
            teacher, "teacher", num_input_steps=self.num_input_steps
        )
        self.num_fine_steps = check_positive_int(num_fine_steps, "num_fine_steps")
        self.teacher_solver = get_solver(teacher_method, "teacher_method")
        check_method_for(self.teacher, self.teacher_solver, "teacher_method")
        self.student_solver = get_solver(student_method, "student_method")
        self.step_sampler = check_step_sampler(step_sampler, 4, owner)
        self.time_level_loss = check_loss(time_level_loss, owner)
        self.velocity_space = check_bool(velocity_space, "velocity_space")
        self.unroll = check_unroll(unroll)

    def teacher_target(self, x_t, y, t, d):
        """The teacher's end point after `K` steps of size `d/K` (batched, no gradient)."""
        teacher = frozen(self.teacher)

        def one(teacher, x, cond, start, step):
            return integrate(
                teacher,
                x,
                cond,
                self.num_fine_steps,
                method=self.teacher_solver,
                t0=start,
                t1=start + step,
                unroll=self.unroll,
            )

        return jax.lax.stop_gradient(vmap_over_samples(one, teacher, x_t, y, t, d))

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        student = as_flow_model(stepper, "stepper", num_input_steps=self.num_input_steps)
        check_method_for(student, self.student_solver, "student_method")
        y, x1 = split_window(data, self.num_input_steps, "ProgressiveDistillation")
        x0, t, d = self._draw(inputs.key, x1, self.step_sampler)
        x_t = interpolate(x0, x1, t)
        target = self.teacher_target(x_t, y, t, d)
        prediction = vmap_over_samples(
            lambda model, x, cond, start, size: flow_step(
                model, x, cond, start, size, self.student_solver
            ),
            student,
            x_t,
            y,
            t,
            d,
        )
        return compare(
            self.time_level_loss, prediction, target, x_t, t, d, self.velocity_space
        )
