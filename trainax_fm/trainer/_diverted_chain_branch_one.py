from ..configuration import DivertedChainBranchOne
from ._common import AbstractOneLineTrainer


class DivertedChainBranchOneTrainer(AbstractOneLineTrainer):
    """Diverted-chain training with one-step branches in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + 1` snapshots are cut (as in trainax; only their
    initial condition is used) and trained with
    [`trainax_fm.configuration.DivertedChainBranchOne`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.DivertedChainBranchOne`][].
    """

    configuration_type = DivertedChainBranchOne

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
