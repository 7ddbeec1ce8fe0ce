from ..configuration import Residuum
from ._common import AbstractOneLineTrainer


class ResiduumTrainer(AbstractOneLineTrainer):
    """Residuum training in one line (needs `residuum_fn`).

    Windows of `num_rollout_steps + 1` snapshots are cut (as in trainax; only their
    initial condition is used) and trained with [`trainax_fm.configuration.Residuum`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Residuum`][].
    """

    configuration_type = Residuum

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
