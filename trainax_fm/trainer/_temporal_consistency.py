from ..configuration import TemporalConsistency
from ._common import AbstractOneLineTrainer


class TemporalConsistencyTrainer(AbstractOneLineTrainer):
    """Unrolled training that also matches temporal differences, in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.TemporalConsistency`][].

    **Arguments:**

    - the keywords every trainer shares (`data_trajectories`, `optimizer`,
        `num_training_steps`, `batch_size`, `callback_fn`, `do_sub_stacking`,
        `ref_stepper`, `residuum_fn`) and the engine options: see
        [`trainax_fm.trainer`][].
    - all other arguments: see [`trainax_fm.configuration.TemporalConsistency`][].
    """

    configuration_type = TemporalConsistency
