from typing import Optional

import equinox as eqx

from .._argument_checks import check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples
from ..flow._interpolant import BetaSchedule, StochasticInterpolantPath
from ..flow._interpolant_stepper import StochasticInterpolantStepper, check_drift_velocity
from ..flow._training import per_sample, split_window
from ..flow._velocity import ConditionalVelocity
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import CallInputs
from ._flow_base import AbstractFlowConfiguration
from ._flow_matching import check_loss
from ._flow_time import AbstractTimeSampler, UniformTimeSampler, check_time_sampler


class StochasticInterpolant(AbstractFlowConfiguration):
    r"""Stochastic-interpolant forecasting (Chen, Goldstein, Hua, Albergo, Boffi,
    Vanden-Eijnden 2024): flow matching whose source is the current state, a point
    mass, instead of Gaussian noise.

    For every window the first `H` states form the conditioning `y`, the last of them
    is the current state `x_0` and the state at index `H` the next state `x_1`. With
    `z ~ N(0, I)` and a flow time `s` from `time_sampler`, the interpolant and the
    regression target are

    $$I_s = (1 - s)\,x_0 + \beta(s)\,x_1 + \varepsilon(1 - s)\sqrt{s}\,z,\qquad
      L = \ell\big(b_\theta(I_s, y, s),\;
      -x_0 + \beta'(s)\,x_1 - \varepsilon\sqrt{s}\,z;\ s\big),$$

    with `beta(s) = s^2` (`"quadratic"`, the paper's choice) or `s` (`"linear"`). The
    minimiser is the drift `b(s, x, x_0) = E[dI/ds | I_s = x]`, and the SDE
    `dX = b ds + eps (1 - s) dW` from `X_0 = x_0` samples the next state given `y`
    ([`trainax_fm.flow.StochasticInterpolantStepper`][], which can also sample with
    another diffusion chosen after training).

    The trainable `stepper` is a [`trainax_fm.flow.StochasticInterpolantStepper`][]
    (its velocity is trained; its `noise_scale` and `beta_schedule` must equal the
    configuration's, so that the drift is sampled with the interpolant it was trained
    on) or a bare [`trainax_fm.flow.ConditionalVelocity`][] (the network of any flow
    configuration). A `key` is required.

    **Arguments:**

    - `time_level_loss`: the loss `ℓ` between predicted and target drift
        (default `MSELoss()`); it receives the flow time as `time=s`.
    - `num_input_steps`: `H`, the number of previous states the drift is conditioned
        on; windows need `H + 1` snapshots (later ones are ignored).
    - `noise_scale`: `epsilon > 0` of `sigma(s) = epsilon (1 - s)` (default `1.0`).
    - `beta_schedule`: `"quadratic"` (default) or `"linear"`.
    - `time_sampler`: draws `s` (only `s` is used); default `UniformTimeSampler()`.
    """

    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    path: StochasticInterpolantPath
    time_sampler: AbstractTimeSampler

    def __init__(
        self,
        *,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
        noise_scale: float = 1.0,
        beta_schedule: BetaSchedule = "quadratic",
        time_sampler: Optional[AbstractTimeSampler] = None,
    ):
        self.time_level_loss = check_loss(time_level_loss, "StochasticInterpolant")
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.path = StochasticInterpolantPath(noise_scale, beta_schedule)
        self.time_sampler = check_time_sampler(
            UniformTimeSampler() if time_sampler is None else time_sampler,
            "time_sampler",
            "StochasticInterpolant",
        )

    def _drift(self, stepper) -> ConditionalVelocity:
        if not isinstance(stepper, StochasticInterpolantStepper):
            return check_drift_velocity(stepper, "stepper")
        if stepper.path != self.path:
            raise ValueError(
                "`stepper` samples the interpolant with noise_scale="
                f"{stepper.path.noise_scale}, beta_schedule={stepper.path.beta_schedule!r} "
                f"but StochasticInterpolant trains with noise_scale={self.path.noise_scale}, "
                f"beta_schedule={self.path.beta_schedule!r}. Use the same values in both "
                "(the sampling diffusion is the stepper's `sampling_noise_scale`)."
            )
        if stepper.num_input_steps != self.num_input_steps:
            raise ValueError(
                f"`stepper` has num_input_steps={stepper.num_input_steps}, but it is "
                f"trained with num_input_steps={self.num_input_steps}. Use the same "
                "history length in both."
            )
        return stepper.velocity

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        drift = self._drift(stepper)
        y, x1 = split_window(data, self.num_input_steps, "StochasticInterpolant")
        # the current state is the last of the H stacked ones
        x0 = y[:, y.shape[1] - x1.shape[1] :]
        z, s, _ = self._draw(inputs.key, x1, self.time_sampler)
        sb = per_sample(s, x1)
        interpolant = self.path.interpolant(x0, x1, z, sb)
        target = self.path.drift_target(x0, x1, z, sb)
        prediction = vmap_over_samples(call_model, drift, interpolant, y, s)
        return self.time_level_loss(prediction, target, time=s)
