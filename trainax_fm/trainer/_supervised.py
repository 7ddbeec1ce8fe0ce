from ..configuration import Supervised
from ._common import AbstractOneLineTrainer


class SupervisedTrainer(AbstractOneLineTrainer):
    """Supervised (unrolled) training in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.Supervised`][].

    **Arguments:**

    - the keywords every trainer shares (`data_trajectories`, `optimizer`,
        `num_training_steps`, `batch_size`, `callback_fn`, `do_sub_stacking`,
        `ref_stepper`, `residuum_fn`) and the engine options: see
        [`trainax_fm.trainer`][].
    - `num_rollout_steps`, `time_level_loss`, `cut_bptt`, `cut_bptt_every`,
        `time_level_weights`, `num_input_steps`, `unroll`, `remat`: see
        [`trainax_fm.configuration.Supervised`][].
    """

    configuration_type = Supervised
