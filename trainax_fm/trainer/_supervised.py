import dataclasses

from ..configuration import Supervised
from ._common import AbstractOneLineTrainer
from ._keywords import (
    EngineKeywords,
    HistoryKeywords,
    RolloutKeywords,
    WindowKeywords,
    keyword_init,
)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _SupervisedKeywords(EngineKeywords, WindowKeywords, HistoryKeywords, RolloutKeywords):
    """The keywords of `SupervisedTrainer`: its configuration's, the windows' and the engine's."""


class SupervisedTrainer(AbstractOneLineTrainer):
    """Supervised (unrolled) training in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.Supervised`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Supervised`][].
    """

    configuration_type = Supervised
    __init__ = keyword_init(_SupervisedKeywords)

