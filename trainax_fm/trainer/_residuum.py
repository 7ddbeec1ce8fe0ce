import dataclasses

from ..configuration import Residuum
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, RolloutKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _ResiduumKeywords(EngineKeywords, WindowKeywords, RolloutKeywords):
    """The keywords of `ResiduumTrainer`: its configuration's, the windows' and the engine's."""

    cut_prev: bool = False
    cut_next: bool = False


class ResiduumTrainer(AbstractOneLineTrainer):
    """Residuum training in one line (needs `residuum_fn`).

    Windows of `num_rollout_steps + 1` snapshots are cut (as in trainax; only their
    initial condition is used) and trained with [`trainax_fm.configuration.Residuum`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Residuum`][].
    """

    configuration_type = Residuum
    __init__ = keyword_init(_ResiduumKeywords)

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
