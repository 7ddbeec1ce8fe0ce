from typing import Optional

import equinox as eqx
import jax.numpy as jnp

from .._argument_checks import check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples
from ..flow._steppers import as_flow_model
from ..flow._training import interpolate, split_window
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import AbstractFlowConfiguration
from ._flow_time import AbstractTimeSampler, UniformTimeSampler, check_time_sampler


def check_loss(loss, owner: str) -> BaseLoss:
    if not isinstance(loss, BaseLoss):
        raise TypeError(
            f"{owner}: `time_level_loss` must be a trainax_fm.loss.BaseLoss (e.g. "
            f"MSELoss() or SobolevLoss()), got {type(loss).__name__}."
        )
    return loss


class FlowMatching(AbstractFlowConfiguration):
    r"""Conditional flow matching for next-state prediction.

    For every window the first `H` states form the conditioning `y` (stacked on the
    channel axis) and the state at index `H` is the data sample `x_1`. With fresh noise
    `x_0 ~ N(0, I)` and a flow time `t` from `time_sampler`,

    $$x_t = t\,x_1 + (1 - t)\,x_0, \qquad
      L = \ell\big(v_\theta(x_t, y, t),\; x_1 - x_0;\ t\big),$$

    the loss regresses the velocity on the straight-path target `x_1 - x_0`. Its
    minimiser is the marginal velocity `E[x_1 - x_0 | x_t, y]`, whose flow transports
    `N(0, I)` to the conditional law of the next state given `y`. The flow time of each
    sample is passed to the loss (`time=t`), so a
    [`trainax_fm.loss.SobolevLoss`][] with callable `alpha(t)`/`beta(t)` weights the
    error by flow time.

    The trainable `stepper` is a [`trainax_fm.flow.ConditionalVelocity`][] or a
    [`trainax_fm.flow.FlowMatchingStepper`][] (its velocity is trained; the trained
    stepper is ready for `trainax_fm.rollout(..., key=...)`). A velocity with
    `step_size_input=True` is evaluated at `d = 0`, its instantaneous limit. A `key` is
    required.

    **Arguments:**

    - `time_level_loss`: the loss `ℓ` between predicted and target velocity
        (default `MSELoss()`).
    - `num_input_steps`: `H`, the number of previous states the velocity is
        conditioned on; windows need `H + 1` snapshots (later ones are ignored).
    - `time_sampler`: draws `t` (only `t` is used); default
        `UniformTimeSampler()` (`t ~ U[0, 1]`).
    """

    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    time_sampler: AbstractTimeSampler

    def __init__(
        self,
        *,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        time_sampler: Optional[AbstractTimeSampler] = None,
    ):
        self.time_level_loss = check_loss(time_level_loss, "FlowMatching")
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.time_sampler = check_time_sampler(
            UniformTimeSampler() if time_sampler is None else time_sampler,
            "time_sampler",
            "FlowMatching",
        )

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        velocity = as_flow_model(
            stepper, "stepper", flow_map=False, num_input_steps=self.num_input_steps
        )
        y, x1 = split_window(data, self.num_input_steps, "FlowMatching")
        x0, t, _ = self._draw(inputs.key, x1, self.time_sampler)
        x_t = interpolate(x0, x1, t)
        # A step-size-conditioned velocity is trained at d = 0: its instantaneous limit.
        d = jnp.zeros_like(t)
        prediction = vmap_over_samples(call_model, velocity, x_t, y, t, d)
        return self.time_level_loss(prediction, x1 - x0, time=t)
