import dataclasses
from typing import Optional

import optax

from ..configuration import ShortcutModel
from ..configuration._flow_time import AbstractTimeSampler
from ..flow._optimizer import flow_map_optimizer
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _ShortcutModelKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `ShortcutModelTrainer`: its configuration's, the windows' and the
    engine's."""

    max_level: int = 6
    bootstrap_share: float = 0.25
    time_sampler: Optional[AbstractTimeSampler] = None


class ShortcutModelTrainer(AbstractOneLineTrainer):
    """Shortcut models in one line: flow matching plus dyadic self-consistency.

    Trains a step-size-conditioned velocity `s(x, y, t, d)` (or an
    [`trainax_fm.flow.EMAVelocity`][] holding one, for EMA targets) with
    [`trainax_fm.configuration.ShortcutModel`][] on windows of
    `num_input_steps + 1` snapshots. The optimizer is wrapped with
    [`trainax_fm.flow.flow_map_optimizer`][], which moves the average of an
    `EMAVelocity` after every update.

    ```python
    model = tx.flow.EMAVelocity(
        tx.flow.ConditionalVelocity(network, step_size_input=True), decay=0.999
    )
    trainer = tx.trainer.ShortcutModelTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    model, losses = trainer(model, jax.random.key(0))
    stepper = tx.flow.FlowMatchingStepper(model.ema, num_steps=2)  # 2 evaluations
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.ShortcutModel`][].
    """

    configuration_type = ShortcutModel
    __init__ = keyword_init(_ShortcutModelKeywords)

    def prepare_optimizer(
        self, optimizer: optax.GradientTransformation
    ) -> optax.GradientTransformation:
        return flow_map_optimizer(optimizer)
