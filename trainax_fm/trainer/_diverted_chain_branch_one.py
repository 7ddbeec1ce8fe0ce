import dataclasses

from ..configuration import DivertedChainBranchOne
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, RolloutKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _DivertedChainBranchOneKeywords(EngineKeywords, WindowKeywords, RolloutKeywords):
    """The keywords of `DivertedChainBranchOneTrainer`: its configuration's, the windows' and the
    engine's."""

    cut_div_chain: bool = False


class DivertedChainBranchOneTrainer(AbstractOneLineTrainer):
    """Diverted-chain training with one-step branches in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + 1` snapshots are cut (as in trainax; only their
    initial condition is used) and trained with
    [`trainax_fm.configuration.DivertedChainBranchOne`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.DivertedChainBranchOne`][].
    """

    configuration_type = DivertedChainBranchOne
    __init__ = keyword_init(_DivertedChainBranchOneKeywords)

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
