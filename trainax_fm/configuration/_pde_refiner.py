import equinox as eqx
import jax
import jax.numpy as jnp

from .._argument_checks import check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples
from ..flow._refiner import (
    PDERefinerStepper,
    check_min_noise_std,
    check_refiner_model,
    refinement_noise_std,
    refinement_time,
)
from ..flow._training import draw_noise, per_sample, split_window
from ..loss import BaseLoss, MSELoss
from ._base import Loss, Windows
from ._checks import AbstractCheckedConfiguration, CallInputs
from ._flow_matching import check_loss


class PDERefiner(AbstractCheckedConfiguration):
    r"""PDE-Refiner (Lippe, Veeling, Perdikaris, Turner, Brandstetter 2023): train one
    network both to predict the next state and to denoise its own prediction at `K`
    exponentially decreasing noise levels.

    For every window the first `H` states form the conditioning `y` and the state at
    index `H` is the target `u`. Each sample draws a refinement step `k` uniformly from
    `{0, ..., K}`; with `σ_k = σ_min^{k/K}` and fresh noise `ξ ~ N(0, I)`,

    $$L = \ell\big(f_\theta(0,\ y,\ 0),\ u\big)\ \text{if}\ k = 0,\qquad
      L = \ell\big(f_\theta(u + \sigma_k \xi,\ y,\ k/K),\ \xi\big)\ \text{if}\ k \ge 1,$$

    the paper's objective: at `k = 0` the network predicts the next state from the
    current one (its noisy-state input all zeros), at `k >= 1` it predicts the noise
    added to the true next state. Because `σ_k` falls exponentially, the late steps
    see noise far below the state's amplitude and must get its small-amplitude,
    high-frequency content right, which plain one-step MSE training neglects.
    [`trainax_fm.flow.PDERefinerStepper`][] samples with `K + 1` network evaluations;
    `K = 0` is one-step MSE training of `f_θ(0, y, 0)`.

    (The authors' code writes the same schedule as a DDPM with `β = σ_min^{k/K}` and a
    v-prediction target `√ᾱ ξ - √(1-ᾱ) u`: `-u` at the top level, `≈ ξ - σ u` below, so
    the same targets up to sign and `O(σ)`, but its noise standard deviation is
    `≈ √σ_k`; its `min_noise_std = 4e-7` corresponds to `σ_min ≈ 6e-4` here.)

    The trainable `stepper` is a [`trainax_fm.flow.PDERefinerStepper`][] (its `K`,
    `σ_min` and `H` must match) or its [`trainax_fm.flow.ConditionalVelocity`][],
    which sees `[ũ, y, k/K]` on the channel axis. A `key` is required for `K >= 1`.

    **Arguments:**

    - `num_refinement_steps`: `K` (>= 0), the refinement steps after the prediction.
    - `min_noise_std`: `σ_min` in `(0, 1)`, the noise level of the last step. Keep it
        well above the precision of the states (float32: `1e-3` for unit-scale states).
    - `time_level_loss`: the loss `ℓ` (default `MSELoss()`); it receives `time=k/K`.
    - `num_input_steps`: `H`, the number of previous states the network sees; windows
        need `H + 1` snapshots (later ones are ignored).
    """

    num_refinement_steps: int = eqx.field(static=True)
    min_noise_std: float = eqx.field(static=True)
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)

    def __init__(
        self,
        num_refinement_steps: int = 3,
        min_noise_std: float = 1e-3,
        *,
        time_level_loss: BaseLoss = MSELoss(),
        num_input_steps: int = 1,
    ):
        self.num_refinement_steps = check_positive_int(
            num_refinement_steps, "num_refinement_steps", minimum=0
        )
        self.min_noise_std = check_min_noise_std(min_noise_std)
        self.time_level_loss = check_loss(time_level_loss, "PDERefiner")
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")

    @property
    def required_window_length(self) -> int:
        return self.num_input_steps + 1

    @property
    def needs_key(self) -> bool:
        return self.num_refinement_steps > 0

    def _model(self, stepper):
        if isinstance(stepper, PDERefinerStepper):
            ours = (self.num_refinement_steps, self.min_noise_std, self.num_input_steps)
            theirs = (stepper.num_refinement_steps, stepper.min_noise_std, stepper.num_input_steps)
            if ours != theirs:
                raise ValueError(
                    "The PDERefinerStepper samples with (num_refinement_steps, "
                    f"min_noise_std, num_input_steps) = {theirs}, but PDERefiner trains "
                    f"with {ours}. Use the same values in both, or the stepper would "
                    "refine at noise levels it was not trained on."
                )
            return stepper.model
        return check_refiner_model(stepper, "stepper")

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        model = self._model(stepper)
        y, target = split_window(data, self.num_input_steps, "PDERefiner")
        batch, num_steps = target.shape[0], self.num_refinement_steps
        if num_steps == 0:
            k = jnp.zeros((batch,), jnp.int32)
            noise = jnp.zeros_like(target)
        else:
            key_step, key_noise = jax.random.split(inputs.key)
            k = jax.random.randint(key_step, (batch,), 0, num_steps + 1)
            noise = draw_noise(key_noise, target)
        sigma = per_sample(
            refinement_noise_std(k, num_steps, self.min_noise_std, target.dtype), target
        )
        first = (k == 0).reshape((-1,) + (1,) * (target.ndim - 1))
        noisy = jnp.where(first, jnp.zeros_like(target), target + sigma * noise)
        goal = jnp.where(first, target, noise)
        time = refinement_time(k, num_steps, target.dtype)
        prediction = vmap_over_samples(call_model, model, noisy, y, time)
        return self.time_level_loss(prediction, goal, time=time)
