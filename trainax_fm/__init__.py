"""trainax_fm: training methodologies for autoregressive neural emulators in JAX.

A drop-in superset of trainax 0.0.2, plus a fast on-device training engine and
flow-matching emulators with progressive and semigroup distillation.
"""

import importlib.metadata as _metadata

from . import callback as callback
from . import configuration as configuration
from . import experiment as experiment
from . import flow as flow
from . import hook as hook
from . import loss as loss
from . import metrics as metrics
from . import plot as plot
from . import sample_data as sample_data
from . import trainer as trainer
from ._block_stepper import BlockStepper as BlockStepper
from ._checkpoint import load_train_state as load_train_state
from ._checkpoint import save_train_state as save_train_state
from ._caches import clear_caches as clear_caches
from ._conditioned_data import ConditionedTrajectories as ConditionedTrajectories
from ._conditioned_network import ConditionedNetwork as ConditionedNetwork
from ._conditioned_network import append_constant_channels as append_constant_channels
from ._conditioned_network import bind_constants as bind_constants
from ._conditioned_network import conditioned_channels as conditioned_channels
from ._general_trainer import GeneralTrainer as GeneralTrainer
from ._loop._options import EngineOptions as EngineOptions
from ._loss_weights import WithLossWeights as WithLossWeights
from ._loss_weights import loss_weights as loss_weights
from ._mixer import PermutationMixer as PermutationMixer
from ._normalized_stepper import NormalizedStepper as NormalizedStepper
from ._normalizer import Normalizer as Normalizer
from ._public_rollout import rollout as rollout
from ._stages import Stage as Stage
from ._stages import train_stages as train_stages
from ._stepper_file import load_stepper as load_stepper
from ._stepper_file import save_stepper as save_stepper
from ._trainable import trainable_arrays as trainable_arrays
from ._train_state import TrainResult as TrainResult
from ._train_state import TrainState as TrainState
from ._validation_history import ValidationHistory as ValidationHistory
from ._windows import TrajectorySubStacker as TrajectorySubStacker
from .hook._nonfinite import NonFiniteLossError as NonFiniteLossError

try:
    __version__ = _metadata.version("trainax_fm")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"
