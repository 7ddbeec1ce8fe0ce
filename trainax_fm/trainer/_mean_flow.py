import dataclasses
from typing import Optional


from ..configuration import MeanFlow
from ..configuration._flow_time import AbstractTimeSampler
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _MeanFlowKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `MeanFlowTrainer`: its configuration's, the windows' and the engine's."""

    time_sampler: Optional[AbstractTimeSampler] = None
    adaptive_weight_power: float = 0.0
    adaptive_weight_offset: float = 0.001


class MeanFlowTrainer(AbstractOneLineTrainer):
    """MeanFlow in one line: an average velocity trained from data, without a teacher.

    Trains a step-size-conditioned velocity `u(x, y, t, d)` with
    [`trainax_fm.configuration.MeanFlow`][] on windows of `num_input_steps + 1`
    snapshots; the engine passes a fresh key (noise and time pairs) every update.

    ```python
    model = tx.flow.ConditionalVelocity(network, step_size_input=True)
    trainer = tx.trainer.MeanFlowTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32,
        adaptive_weight_power=1.0,
    )
    model, losses = trainer(model, jax.random.key(0))
    stepper = tx.flow.FlowMatchingStepper(model, num_steps=1)  # 1 network evaluation
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.MeanFlow`][].
    """

    configuration_type = MeanFlow
    __init__ = keyword_init(_MeanFlowKeywords)

