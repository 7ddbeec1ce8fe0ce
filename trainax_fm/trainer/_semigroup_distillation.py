import dataclasses
from typing import Any, Optional

import optax

from ..configuration import SemigroupDistillation
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._optimizer import flow_map_optimizer
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _SemigroupDistillationKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `SemigroupDistillationTrainer`: its configuration's, the windows' and the
    engine's."""

    step_sampler: Optional[AbstractTimeSampler] = None
    teacher: Any = None
    velocity_space: bool = False


class SemigroupDistillationTrainer(AbstractOneLineTrainer):
    """Semigroup distillation of a flow map in one line.

    Trains a [`trainax_fm.flow.FlowMap`][] (or a `FlowMapStepper` holding one, or an
    [`trainax_fm.flow.EMAFlowMap`][]) with
    [`trainax_fm.configuration.SemigroupDistillation`][] on windows of
    `num_input_steps + 1` snapshots. The optimizer is wrapped with
    [`trainax_fm.flow.flow_map_optimizer`][], so only the correction `phi` is
    trained and the flow-matching velocity `v` stays exactly as it was. To compute the
    target with an exponential moving average of the weights, train a
    [`trainax_fm.flow.EMAFlowMap`][] (`EMAFlowMap(flow_map, decay=0.999)`); the wrapped
    optimizer moves the average after every update.

    ```python
    flow_map = tx.flow.FlowMap(trained_velocity)  # F_d == one Euler step at first
    trainer = tx.trainer.SemigroupDistillationTrainer(
        data, optimizer=optax.adam(1e-4), num_training_steps=5_000, batch_size=32
    )
    flow_map, losses = trainer(flow_map, jax.random.key(0))
    stepper = tx.flow.FlowMapStepper(flow_map, num_steps=2)
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.SemigroupDistillation`][].
    """

    configuration_type = SemigroupDistillation
    __init__ = keyword_init(_SemigroupDistillationKeywords)

    def prepare_optimizer(
        self, optimizer: optax.GradientTransformation
    ) -> optax.GradientTransformation:
        return flow_map_optimizer(optimizer)
