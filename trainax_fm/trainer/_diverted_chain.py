from ..configuration import DivertedChain
from ._common import AbstractOneLineTrainer


class DivertedChainTrainer(AbstractOneLineTrainer):
    """Diverted-chain training with branches of `num_branch_steps` in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + 1` snapshots are cut (only their initial condition
    is used) and trained with [`trainax_fm.configuration.DivertedChain`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.DivertedChain`][].
    """

    configuration_type = DivertedChain

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
