"""trainax_fm: training methodologies for autoregressive neural emulators in JAX.

A drop-in superset of trainax 0.0.2, plus a fast on-device training engine and
flow-matching emulators with progressive and semigroup distillation.
"""


from . import callback as callback
from . import configuration as configuration
from . import experiment as experiment
from . import flow as flow
from . import hook as hook
from . import loss as loss
from . import metrics as metrics
from . import networks as networks
from . import plot as plot
from . import sample_data as sample_data
from . import systems as systems
from . import trainer as trainer
from ._loop._caches import clear_caches as clear_caches
from ._loop._options import EngineOptions as EngineOptions
from ._loop._precision import MixedPrecision as MixedPrecision
from ._rollout._inference import rollout as rollout
from ._state._checkpoint import load_train_state as load_train_state
from ._state._checkpoint import save_train_state as save_train_state
from ._state._stepper_file import load_stepper as load_stepper
from ._state._stepper_file import save_stepper as save_stepper
from ._state._train_state import TrainResult as TrainResult
from ._state._train_state import TrainState as TrainState
from ._state._validation_history import ValidationHistory as ValidationHistory
from ._stepper._block import BlockStepper as BlockStepper
from ._stepper._conditioned import ConditionedNetwork as ConditionedNetwork
from ._stepper._conditioned import append_constant_channels as append_constant_channels
from ._stepper._conditioned import bind_constants as bind_constants
from ._stepper._conditioned import conditioned_channels as conditioned_channels
from ._stepper._loss_weights import WithLossWeights as WithLossWeights
from ._stepper._loss_weights import loss_weights as loss_weights
from ._stepper._noise_input import NoiseInputStepper as NoiseInputStepper
from ._stepper._normalized import NormalizedStepper as NormalizedStepper
from ._stepper._trainable import trainable_arrays as trainable_arrays
from ._version import __version__ as __version__
from .data._conditioned import ConditionedTrajectories as ConditionedTrajectories
from .data._mixer import PermutationMixer as PermutationMixer
from .data._normalizer import Normalizer as Normalizer
from .data._windows import TrajectorySubStacker as TrajectorySubStacker
from .hook._nonfinite import NonFiniteLossError as NonFiniteLossError
from .trainer._general import GeneralTrainer as GeneralTrainer
from .trainer._stages import Stage as Stage
from .trainer._stages import train_stages as train_stages
