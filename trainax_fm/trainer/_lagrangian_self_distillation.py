import dataclasses
from typing import Any, Optional


from ..configuration import LagrangianSelfDistillation
from ..configuration._flow_time import AbstractTimeSampler
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _LagrangianSelfDistillationKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `LagrangianSelfDistillationTrainer`: its configuration's, the
    windows' and the engine's."""

    time_sampler: Optional[AbstractTimeSampler] = None
    teacher: Any = None


class LagrangianSelfDistillationTrainer(AbstractOneLineTrainer):
    """Lagrangian self-distillation of a two-time flow map in one line.

    Trains a step-size-conditioned velocity `u(x, y, t, d)` (the flow map
    `X_(t,t+d)(x) = x + d u`) with
    [`trainax_fm.configuration.LagrangianSelfDistillation`][] on windows of
    `num_input_steps + 1` snapshots: flow matching on the diagonal, the Lagrangian
    condition off it. From scratch:

    ```python
    network = pdequinox.arch.ConvNet(
        1, tx.flow.velocity_input_channels(1, step_size_input=True), 1, key=key
    )
    model = tx.flow.ConditionalVelocity(network, step_size_input=True)
    trainer = tx.trainer.LagrangianSelfDistillationTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32
    )
    model, losses = trainer(model, jax.random.key(0))
    stepper = tx.flow.FlowMatchingStepper(model, num_steps=1)  # 1 network evaluation
    ```

    From a trained velocity: pass `teacher=velocity` and start from
    `tx.flow.with_step_size_input(velocity)`.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.LagrangianSelfDistillation`][].
    """

    configuration_type = LagrangianSelfDistillation
    __init__ = keyword_init(_LagrangianSelfDistillationKeywords)

