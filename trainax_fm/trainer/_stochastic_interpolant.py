import dataclasses
from typing import Optional

from ..configuration import StochasticInterpolant
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._interpolant import BetaSchedule
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _StochasticInterpolantKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `StochasticInterpolantTrainer`: its configuration's, the windows'
    and the engine's."""

    noise_scale: float = 1.0
    beta_schedule: BetaSchedule = "quadratic"
    time_sampler: Optional[AbstractTimeSampler] = None


class StochasticInterpolantTrainer(AbstractOneLineTrainer):
    """Stochastic-interpolant forecasting (Chen et al. 2024) in one line.

    Windows of `num_input_steps + 1` snapshots are trained with
    [`trainax_fm.configuration.StochasticInterpolant`][]; the engine passes a fresh key
    (noise and flow times) every update. Train a
    [`trainax_fm.flow.StochasticInterpolantStepper`][] with the same `noise_scale` and
    `beta_schedule`; the trained stepper samples from the current state:

    ```python
    velocity = tx.flow.ConditionalVelocity(network)
    stepper = tx.flow.StochasticInterpolantStepper(velocity, num_steps=20)
    trainer = tx.trainer.StochasticInterpolantTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    stepper, losses = trainer(stepper, jax.random.key(0))
    samples = tx.rollout(stepper, ic, 100, key=jax.random.key(1))
    # another sampling diffusion, no retraining:
    calmer = stepper.with_sampling_noise_scale(0.5)
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.StochasticInterpolant`][].
    """

    configuration_type = StochasticInterpolant
    __init__ = keyword_init(_StochasticInterpolantKeywords)
