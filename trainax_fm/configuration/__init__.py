"""Configurations: how stepper, reference and data form one scalar loss.

The second of trainax_fm's three layers. Every configuration is an `eqx.Module` whose
`__call__(stepper, data, *, ref_stepper=None, residuum_fn=None, key=None, step=None)`
returns the loss of a minibatch of windows `(B, W, C, *spatial)`. They own the rollout
structure: how many steps, where the reference branches off, where gradients are cut.

Against drifting or exploding rollouts: `Pushforward`, `InputNoise` (training noise
around any configuration), `SymmetryAugmentation` (random shifts, flips and rotations
of periodic domains around any configuration), `RolloutCurriculum` (a growing rollout length),
`InvariantMeasureMMD` (DySLIM) and `InvariantMeasureSinkhorn` (the same with the debiased
Sinkhorn divergence), `GeneralizedTeacherForcing` (the rollout's state pulled
part of the way to the truth), the time-level weight schedules
`geometric_weights`, `inverse_sqrt_weights` and `linear_weights`, and the adaptive
term balancing `ReLoBRaLo` of a `Composite`.

Many systems: `RandomAffine`, `RandomConvexCombination` and `DelayEmbedding` transform
each window with a probability by a random map of its channels (around any
configuration); `AbstractWindowAugmentation` is their base, for your own.

Invariant measure at inference time: `ThermalizerDiffusion` trains the diffusion model
and noise-level classifier of a `trainax_fm.flow.Thermalizer` on single states.

Probabilistic: `CRPSEnsemble` (ensembles of a stochastic stepper trained with the fair or
almost-fair CRPS), `PDERefiner` (a one-step prediction refined by denoising at
exponentially decreasing noise levels), and the flow-matching and flow-map configurations.
"""

from ._base import BaseConfiguration as BaseConfiguration
from ._composite import Composite as Composite
from ._crps_ensemble import CRPSEnsemble as CRPSEnsemble
from ._diverted_chain import DivertedChain as DivertedChain
from ._diverted_chain_branch_one import DivertedChainBranchOne as DivertedChainBranchOne
from ._mix_chain_post_physics import MixChainPostPhysics as MixChainPostPhysics
from ._residuum import Residuum as Residuum
from ._supervised import Supervised as Supervised
from ._teacher_forcing import TeacherForcing as TeacherForcing
from ._teacher_forcing import GeneralizedTeacherForcing as GeneralizedTeacherForcing
from ._balancing import BalancingState as BalancingState
from ._balancing import ReLoBRaLo as ReLoBRaLo
from ._pushforward import Pushforward as Pushforward
from ._input_noise import InputNoise as InputNoise
from ._symmetry_augmentation import SymmetryAugmentation as SymmetryAugmentation
from ._window_augmentation import (
    AbstractWindowAugmentation as AbstractWindowAugmentation,
)
from ._series_augmentations import DelayEmbedding as DelayEmbedding
from ._series_augmentations import RandomAffine as RandomAffine
from ._series_augmentations import RandomConvexCombination as RandomConvexCombination
from ._curriculum import RolloutCurriculum as RolloutCurriculum
from ._invariant_measure import (
    InvariantMeasureMMD as InvariantMeasureMMD,
    InvariantMeasureSinkhorn as InvariantMeasureSinkhorn,
)
from ._weights import (
    geometric_weights as geometric_weights,
    inverse_sqrt_weights as inverse_sqrt_weights,
    linear_weights as linear_weights,
)
from ._temporal_consistency import TemporalConsistency as TemporalConsistency
from ._uncertainty_weighted import UncertaintyWeighted as UncertaintyWeighted
from ._flow_matching import FlowMatching as FlowMatching
from ._flow_time import AbstractTimeSampler as AbstractTimeSampler
from ._flow_time import BetaTimeSampler as BetaTimeSampler
from ._flow_time import DyadicTimeSampler as DyadicTimeSampler
from ._flow_time import FixedStepTimeSampler as FixedStepTimeSampler
from ._flow_time import TimePairSampler as TimePairSampler
from ._flow_time import UniformTimeSampler as UniformTimeSampler
from ._lagrangian_self_distillation import (
    LagrangianSelfDistillation as LagrangianSelfDistillation,
)
from ._mean_flow import MeanFlow as MeanFlow
from ._pde_refiner import PDERefiner as PDERefiner
from ._progressive_distillation import ProgressiveDistillation as ProgressiveDistillation
from ._semigroup_distillation import SemigroupDistillation as SemigroupDistillation
from ._shortcut_model import ShortcutModel as ShortcutModel
from ._thermalizer import ThermalizerDiffusion as ThermalizerDiffusion
from ._stochastic_interpolant import StochasticInterpolant as StochasticInterpolant
