import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._stepper._conditioned import vmap_over_samples
from .._stepper._normalized import NormalizedStepper
from ..flow._thermalized_stepper import ThermalizedStepper
from ..flow._thermalizer import Thermalizer
from ._base import Loss, Windows
from ._checks import AbstractCheckedConfiguration, CallInputs


def check_noise_level_weight(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`noise_level_weight` must be a float >= 0, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if not value >= 0.0:
        raise ValueError(
            f"`noise_level_weight` must be >= 0 (the weight of the classifier's "
            f"cross-entropy next to the noise MSE), got {value}."
        )
    return float(value)


class ThermalizerDiffusion(AbstractCheckedConfiguration):
    r"""Train a [`trainax_fm.flow.Thermalizer`][]: a DDPM of the system's stationary
    distribution and its noise-level classifier (Pedersen, Zanna and Bruna 2025).

    Windows hold ONE snapshot: the thermalizer learns the distribution of single
    states drawn from the trajectories, not the map from one state to the next. For
    every state `x_0` of the minibatch, a level `k ~ U{1, ..., K}` and noise
    `ε ~ N(0, I)` give `x_k = sqrt(ᾱ_k) x_0 + sqrt(1 - ᾱ_k) ε`, and

    $$L = \overline{\lVert \hat\varepsilon(x_k, k) - \varepsilon \rVert^2}
      + \lambda\,\overline{\mathrm{CE}\big(\mathrm{logits}(x_k),\ k\big)},$$

    the mean squared noise error per entry (the DDPM epsilon loss) plus
    `λ = noise_level_weight` times the cross-entropy of the classifier's `K` logits
    against the true level, both averaged over the batch. The draws: `key` splits
    into `(level_key, noise_key)`; `k = jax.random.randint(level_key, (B,), 1, K + 1)`
    and `ε = jax.random.normal(noise_key, x_0.shape)`.

    The `stepper` argument is the `Thermalizer` (it is what the trainer trains), or a
    [`trainax_fm.flow.ThermalizedStepper`][] whose thermalizer is trained (its emulator
    gets no gradient); when that thermalizer is a `trainax_fm.NormalizedStepper`
    around a `Thermalizer`, `x_0` are the normalised states
    `stop_gradient(normalize(x_0))`. A `key` is required.

    **Arguments:**

    - `noise_level_weight`: `λ >= 0`, the weight of the classifier's cross-entropy.
    """

    noise_level_weight: float = eqx.field(static=True)

    def __init__(self, *, noise_level_weight: float = 1.0):
        self.noise_level_weight = check_noise_level_weight(noise_level_weight)

    @property
    def required_window_length(self) -> int:
        return 1

    @property
    def needs_key(self) -> bool:
        return True

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        if not isinstance(data, (jax.Array, np.ndarray)):
            raise TypeError(
                "ThermalizerDiffusion takes windows as one array (B, W, C, *spatial) "
                f"(it uses the first snapshot of each), got a {type(data).__name__}."
            )
        stepper, states = _thermalizer_and_states(stepper, data[:, 0])
        level_key, noise_key = jax.random.split(inputs.key)
        batch = states.shape[0]
        num_levels = stepper.num_noise_steps
        levels = jax.random.randint(level_key, (batch,), 1, num_levels + 1)
        noise = jax.random.normal(noise_key, states.shape, states.dtype)
        noisy = jax.vmap(stepper.add_noise)(states, levels, noise)
        # `vmap_over_samples` hands each sample its own bound constants (conditioned
        # networks inside the thermalizer), where a plain `vmap` would share them.
        predicted = vmap_over_samples(
            lambda model, x, k: model.epsilon(x, k), stepper, noisy, levels, name="denoiser"
        )
        noise_loss = jnp.mean((predicted - noise) ** 2)
        if self.noise_level_weight == 0.0:
            return noise_loss
        logits = vmap_over_samples(
            lambda model, x: model.noise_logits(x), stepper, noisy, name="classifier"
        )
        log_probabilities = jax.nn.log_softmax(logits, axis=-1)
        cross_entropy = -jnp.mean(
            jnp.take_along_axis(log_probabilities, (levels - 1)[:, None], axis=-1)
        )
        return noise_loss + self.noise_level_weight * cross_entropy


def _thermalizer_and_states(stepper, states):
    """The `Thermalizer` that `stepper` trains, and the states it learns (normalised
    for a thermalizer inside a `NormalizedStepper`)."""
    if isinstance(stepper, ThermalizedStepper):
        stepper = stepper.thermalizer
        if isinstance(stepper, NormalizedStepper):
            # the statistics are fixed: no gradient may reach them through the data
            normalizer = jax.lax.stop_gradient(stepper.normalizer)
            states = normalizer.normalize(states)
            stepper = stepper.network
    if not isinstance(stepper, Thermalizer):
        raise TypeError(
            "ThermalizerDiffusion trains a trainax_fm.flow.Thermalizer (a denoiser "
            "and a noise-level classifier), or the thermalizer of a "
            f"trainax_fm.flow.ThermalizedStepper, got a {type(stepper).__name__}. Build "
            "it with tx.flow.Thermalizer(denoiser, classifier, num_noise_steps=K)."
        )
    return stepper, states
