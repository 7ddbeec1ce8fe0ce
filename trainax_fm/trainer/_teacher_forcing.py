from ..configuration import TeacherForcing
from ._common import AbstractOneLineTrainer


class TeacherForcingTrainer(AbstractOneLineTrainer):
    """Teacher forcing (scheduled sampling) in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are trained with
    [`trainax_fm.configuration.TeacherForcing`][]; the probability schedule runs over the
    training steps.

    **Arguments:**

    - the keywords every trainer shares (`data_trajectories`, `optimizer`,
        `num_training_steps`, `batch_size`, `callback_fn`, `do_sub_stacking`,
        `ref_stepper`, `residuum_fn`) and the engine options: see
        [`trainax_fm.trainer`][].
    - all other arguments: see [`trainax_fm.configuration.TeacherForcing`][].
    """

    configuration_type = TeacherForcing
