from typing import Optional

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ..flow._steppers import as_flow_model
from ..flow._training import draw_noise
from ..flow._velocity import ConditionalVelocity
from ..loss import BaseLoss
from ._checks import AbstractCheckedConfiguration
from ._flow_time import AbstractTimeSampler, DyadicTimeSampler, check_time_sampler


def check_step_sampler(
    sampler: Optional[AbstractTimeSampler], default_max_level: int, owner: str
) -> AbstractTimeSampler:
    """The `step_sampler` of a distillation: it must draw step sizes `d > 0`.

    `None` selects `DyadicTimeSampler(max_level=default_max_level)`.
    """
    if sampler is None:
        sampler = DyadicTimeSampler(max_level=default_max_level)
    sampler = check_time_sampler(sampler, "step_sampler", owner)
    if sampler.min_step == 0.0:
        raise ValueError(
            f"{owner} needs step sizes d > 0, but `step_sampler` "
            f"({type(sampler).__name__}) has min_step=0. Pass e.g. "
            "UniformTimeSampler(min_step=1/64, max_step=1.0), DyadicTimeSampler(...) "
            "or FixedStepTimeSampler(step)."
        )
    return sampler


class AbstractFlowConfiguration(AbstractCheckedConfiguration):
    """A flow-matching or distillation configuration.

    Each one conditions on the first `num_input_steps` states of a window, trains on
    the straight path from fresh noise to the state after them, and so needs windows
    of `num_input_steps + 1` snapshots and a random key. Not public: the concrete
    configurations document their fields.
    """

    num_input_steps: eqx.AbstractVar[int]

    @property
    def required_window_length(self) -> int:
        return self.num_input_steps + 1

    @property
    def needs_key(self) -> bool:
        return True

    def _draw(
        self,
        key: PRNGKeyArray,
        x1: Float[Array, "batch channels ..."],
        sampler: AbstractTimeSampler,
    ) -> tuple[
        Float[Array, "batch channels ..."], Float[Array, " batch"], Float[Array, " batch"]
    ]:
        """Noise `x0` shaped like `x1`, and times and step sizes `(t, d)` from `sampler`.

        `t` and `d` are cast to the dtype of `x1` so that half- or double-precision
        data keeps its precision through the interpolant and the model inputs.

        **Returns:**

        - `(x0, t, d)`.
        """
        key_noise, key_time = jax.random.split(key)
        x0 = draw_noise(key_noise, x1)
        t, d = sampler.sample(key_time, x1.shape[0])
        return x0, t.astype(x1.dtype), d.astype(x1.dtype)


def average_velocity(stepper, num_input_steps: int, owner: str) -> ConditionalVelocity:
    """The step-size-conditioned velocity `u(x, y, t, d)` inside a trainable `stepper`."""
    model = as_flow_model(stepper, "stepper", flow_map=False, num_input_steps=num_input_steps)
    if not model.step_size_input:
        raise ValueError(
            f"{owner} trains a two-time flow map `X_(t,t+d)(x) = x + d u(x, y, t, d)`, so "
            "the velocity needs the step size as an input, but `stepper` has "
            "`step_size_input=False`. Build it with "
            "ConditionalVelocity(network, step_size_input=True) (the network then takes "
            "one more input channel, see velocity_input_channels) or, from a trained "
            "velocity, with trainax_fm.flow.with_step_size_input(velocity)."
        )
    return model


def check_teacher_velocity(teacher, num_input_steps: int) -> Optional[ConditionalVelocity]:
    """`None`, or a plain trained velocity (unwrapped from a `FlowMatchingStepper`)."""
    if teacher is None:
        return None
    teacher = as_flow_model(teacher, "teacher", flow_map=False, num_input_steps=num_input_steps)
    if teacher.step_size_input:
        raise ValueError(
            "`teacher` must be a plain trained velocity v(x, y, t) "
            "(`step_size_input=False`); got a step-size-conditioned one."
        )
    return teacher


def per_sample_losses(
    loss: BaseLoss,
    prediction: Float[Array, "batch channels ..."],
    target: Float[Array, "batch channels ..."],
    t: Float[Array, " batch"],
) -> Float[Array, " batch"]:
    """`loss` of every sample at its flow time (before the batch reduction)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"{type(loss).__name__}: the prediction has shape {tuple(prediction.shape)} "
            f"but the target {tuple(target.shape)}; the velocity network must keep the "
            "shape of the state."
        )
    return jax.vmap(loss.single_batch_at_time)(prediction, target, t)
