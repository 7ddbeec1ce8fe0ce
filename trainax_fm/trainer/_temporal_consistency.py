from ..configuration import TemporalConsistency
from ._common import AbstractOneLineTrainer


class TemporalConsistencyTrainer(AbstractOneLineTrainer):
    """Unrolled training that also matches temporal differences, in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.TemporalConsistency`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.TemporalConsistency`][].
    """

    configuration_type = TemporalConsistency
