import dataclasses

from ..configuration import PDERefiner
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, FlowKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _PDERefinerKeywords(EngineKeywords, WindowKeywords, FlowKeywords):
    """The keywords of `PDERefinerTrainer`: its configuration's, the windows' and the engine's."""

    num_refinement_steps: int = 3
    min_noise_std: float = 1e-3


class PDERefinerTrainer(AbstractOneLineTrainer):
    """PDE-Refiner in one line.

    Windows of `num_input_steps + 1` snapshots are trained with
    [`trainax_fm.configuration.PDERefiner`][]; the engine passes a fresh key
    (refinement steps and noise) every update. Train a
    [`trainax_fm.flow.PDERefinerStepper`][] with the same `num_refinement_steps` and
    `min_noise_std`; the trained stepper rolls out with
    `trainax_fm.rollout(stepper, ic, n, key=key)` at `K + 1` network evaluations per
    step:

    ```python
    model = tx.flow.ConditionalVelocity(network)  # [u_noisy, u, k/K] -> C channels
    stepper = tx.flow.PDERefinerStepper(model, num_refinement_steps=3, min_noise_std=1e-3)
    trainer = tx.trainer.PDERefinerTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=5_000, batch_size=32,
        num_refinement_steps=3, min_noise_std=1e-3,
    )
    stepper, losses = trainer(stepper, jax.random.key(0))
    ```

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.PDERefiner`][].
    """

    configuration_type = PDERefiner
    __init__ = keyword_init(_PDERefinerKeywords)
