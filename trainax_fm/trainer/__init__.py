"""Trainers: one-line constructors of `GeneralTrainer` for each methodology.

The third of trainax_fm's three layers. Each trainer cuts the trajectories into windows
of the length its configuration needs and wires configuration, optimizer and the
training engine together. Call it as `trainer(stepper, key)` (trainax-compatible) or
`trainer.train(stepper, key)` for a fixed result type.
"""

from ._configuration_trainer import ConfigurationTrainer as ConfigurationTrainer
from ._diverted_chain import DivertedChainTrainer as DivertedChainTrainer
from ._diverted_chain_branch_one import (
    DivertedChainBranchOneTrainer as DivertedChainBranchOneTrainer,
)
from ._mix_chain_post_physics import MixChainPostPhysicsTrainer as MixChainPostPhysicsTrainer
from ._residuum import ResiduumTrainer as ResiduumTrainer
from ._supervised import SupervisedTrainer as SupervisedTrainer
from ._teacher_forcing import TeacherForcingTrainer as TeacherForcingTrainer
from ._flow_matching import FlowMatchingTrainer as FlowMatchingTrainer
from ._progressive_distillation import (
    ProgressiveDistillationTrainer as ProgressiveDistillationTrainer,
)
from ._semigroup_distillation import (
    SemigroupDistillationTrainer as SemigroupDistillationTrainer,
)
