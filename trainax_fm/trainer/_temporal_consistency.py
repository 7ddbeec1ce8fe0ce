import dataclasses

from ..configuration import TemporalConsistency
from ._common import AbstractOneLineTrainer
from ._keywords import (
    EngineKeywords,
    HistoryKeywords,
    RolloutKeywords,
    WindowKeywords,
    keyword_init,
)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _TemporalConsistencyKeywords(
    EngineKeywords, WindowKeywords, HistoryKeywords, RolloutKeywords
):
    """The keywords of `TemporalConsistencyTrainer`: its configuration's, the windows' and the
    engine's."""


class TemporalConsistencyTrainer(AbstractOneLineTrainer):
    """Unrolled training that also matches temporal differences, in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.TemporalConsistency`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.TemporalConsistency`][].
    """

    configuration_type = TemporalConsistency
    __init__ = keyword_init(_TemporalConsistencyKeywords)

