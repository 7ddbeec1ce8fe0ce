import optax

from ..flow._optimizer import flow_map_optimizer
from ..configuration import SemigroupDistillation
from ._common import AbstractOneLineTrainer


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

    def prepare_optimizer(self, optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
        return flow_map_optimizer(optimizer)
