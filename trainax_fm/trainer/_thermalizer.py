import dataclasses

from ..configuration import ThermalizerDiffusion
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, TrainerKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _ThermalizerKeywords(EngineKeywords, WindowKeywords, TrainerKeywords):
    """The keywords of `ThermalizerTrainer`: its configuration's, the windows' and the
    engine's."""

    noise_level_weight: float = 1.0


class ThermalizerTrainer(AbstractOneLineTrainer):
    """Train a [`trainax_fm.flow.Thermalizer`][] in one line.

    Windows of ONE snapshot (single states of the trajectories, every state of every
    trajectory a sample of the stationary distribution) are trained with
    [`trainax_fm.configuration.ThermalizerDiffusion`][]: the DDPM noise loss plus
    `noise_level_weight` times the classifier's cross-entropy. The engine passes a
    fresh key (levels and noise) every update.

    ```python
    thermalizer = tx.flow.Thermalizer(denoiser, classifier, num_noise_steps=1000)
    trainer = tx.trainer.ThermalizerTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=20_000, batch_size=64
    )
    thermalizer, losses = trainer(thermalizer, jax.random.key(0))
    stable = tx.flow.ThermalizedStepper(emulator, thermalizer, threshold=10)
    ```

    Drop the transient of the trajectories first: the thermalizer should learn the
    stationary distribution, not the path to it.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.ThermalizerDiffusion`][].
    """

    configuration_type = ThermalizerDiffusion
    __init__ = keyword_init(_ThermalizerKeywords)
