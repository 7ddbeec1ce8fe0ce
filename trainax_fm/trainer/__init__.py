"""Trainers: one-line constructors of `GeneralTrainer` for each methodology.

The third of trainax_fm's three layers. Each trainer cuts the trajectories into windows
of the length its configuration needs and wires configuration, optimizer and the
training engine together. Call it as `trainer(stepper, key)` (trainax-compatible) or
`trainer.train(stepper, key)` for a fixed result type.

Every trainer takes, besides its methodology's keywords (those of its configuration),
the same keywords, all after the data and keyword-only:

- `data_trajectories`: trajectories `(S, T, C, *spatial)` or a PyTree of them, or
    [`trainax_fm.ConditionedTrajectories`][] (with constants per trajectory).
- `ref_stepper`, `residuum_fn`: the reference simulator and the residuum, for the
    methodologies that need them (accepted and unused by the others, as in trainax).
- `optimizer`: an `optax.GradientTransformation`.
- `callback_fn`: optional callback, see [`trainax_fm.callback`][].
- `num_training_steps`: number of updates.
- `batch_size`: windows per update.
- `do_sub_stacking`: use every window of each trajectory (`True`) or only the first.
- `num_output_steps`: `k > 1` for a stepper that predicts `k` states per call
    ([`trainax_fm.BlockStepper`][]): the configuration then works on blocks of `k`
    states (rollout lengths and time-level weights count blocks).
- the engine options of [`trainax_fm.EngineOptions`][]: `steps_per_dispatch`, `mesh`,
    `batch_axis`, `num_seeds`, `checkpoint_path`, `checkpoint_every`, `on_nonfinite`,
    `validation_data`, `validate_every`, `validation_metrics`, `monitor`,
    `monitor_mode`, `patience`, `min_delta`, `best_path`.

Each trainer's keywords are one declared record (a dataclass built from shared groups),
so IDEs, static type checkers and this reference show every one with its default.
"""

from ._configuration_trainer import ConfigurationTrainer as ConfigurationTrainer
from ._crps_ensemble import CRPSEnsembleTrainer as CRPSEnsembleTrainer
from ._diverted_chain import DivertedChainTrainer as DivertedChainTrainer
from ._diverted_chain_branch_one import (
    DivertedChainBranchOneTrainer as DivertedChainBranchOneTrainer,
)
from ._mix_chain_post_physics import MixChainPostPhysicsTrainer as MixChainPostPhysicsTrainer
from ._pushforward import PushforwardTrainer as PushforwardTrainer
from ._residuum import ResiduumTrainer as ResiduumTrainer
from ._supervised import SupervisedTrainer as SupervisedTrainer
from ._teacher_forcing import (
    GeneralizedTeacherForcingTrainer as GeneralizedTeacherForcingTrainer,
)
from ._teacher_forcing import TeacherForcingTrainer as TeacherForcingTrainer
from ._temporal_consistency import TemporalConsistencyTrainer as TemporalConsistencyTrainer
from ._flow_matching import FlowMatchingTrainer as FlowMatchingTrainer
from ._stochastic_interpolant import (
    StochasticInterpolantTrainer as StochasticInterpolantTrainer,
)
from ._progressive_distillation import (
    ProgressiveDistillationTrainer as ProgressiveDistillationTrainer,
)
from ._semigroup_distillation import (
    SemigroupDistillationTrainer as SemigroupDistillationTrainer,
)
from ._lagrangian_self_distillation import (
    LagrangianSelfDistillationTrainer as LagrangianSelfDistillationTrainer,
)
from ._mean_flow import MeanFlowTrainer as MeanFlowTrainer
from ._pde_refiner import PDERefinerTrainer as PDERefinerTrainer
from ._shortcut_model import ShortcutModelTrainer as ShortcutModelTrainer
from ._thermalizer import ThermalizerTrainer as ThermalizerTrainer
