import dataclasses
from typing import Optional

from jaxtyping import Array, Float

from .._rollout._training import Unroll
from ..configuration import CRPSEnsemble
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, HistoryKeywords, TrainerKeywords, WindowKeywords
from ._keywords import keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _CRPSEnsembleKeywords(EngineKeywords, WindowKeywords, HistoryKeywords, TrainerKeywords):
    """The keywords of `CRPSEnsembleTrainer`: its configuration's, the windows' and the
    engine's."""

    num_rollout_steps: int = 1
    num_members: int = 4
    crps_alpha: float = 1.0
    time_level_weights: Optional[Float[Array, " num_rollout_steps"]] = None
    unroll: Unroll = "auto"


class CRPSEnsembleTrainer(AbstractOneLineTrainer):
    """CRPS-trained ensembles in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are trained with
    [`trainax_fm.configuration.CRPSEnsemble`][]: `num_members` members of a stochastic
    stepper (e.g. [`trainax_fm.NoiseInputStepper`][]) per window, scored with the fair
    (`crps_alpha=1`) or almost-fair CRPS.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.CRPSEnsemble`][].
    """

    configuration_type = CRPSEnsemble
    __init__ = keyword_init(_CRPSEnsembleKeywords)
