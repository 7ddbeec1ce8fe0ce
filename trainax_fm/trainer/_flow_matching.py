import dataclasses
from typing import Optional


from ..configuration import FlowMatching
from ..configuration._flow_time import AbstractTimeSampler
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _FlowMatchingKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `FlowMatchingTrainer`: its configuration's, the windows' and the engine's."""

    time_sampler: Optional[AbstractTimeSampler] = None


class FlowMatchingTrainer(AbstractOneLineTrainer):
    """Conditional flow matching in one line.

    Windows of `num_input_steps + 1` snapshots are trained with
    [`trainax_fm.configuration.FlowMatching`][]; the engine passes a fresh key (noise
    and flow times) every update. Train a [`trainax_fm.flow.ConditionalVelocity`][] or,
    to get a stepper that is ready for stochastic rollouts, a
    [`trainax_fm.flow.FlowMatchingStepper`][]:

    ```python
    velocity = tx.flow.ConditionalVelocity(network)
    stepper = tx.flow.FlowMatchingStepper(velocity, num_steps=10, method="heun")
    trainer = tx.trainer.FlowMatchingTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    stepper, losses = trainer(stepper, jax.random.key(0))
    samples = tx.rollout(stepper, ic, 100, key=jax.random.key(1))
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.FlowMatching`][].
    """

    configuration_type = FlowMatching
    __init__ = keyword_init(_FlowMatchingKeywords)

