from ..configuration import TeacherForcing
from ._common import AbstractOneLineTrainer


class TeacherForcingTrainer(AbstractOneLineTrainer):
    """Teacher forcing (scheduled sampling) in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are trained with
    [`trainax_fm.configuration.TeacherForcing`][]; the probability schedule runs over the
    training steps.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.TeacherForcing`][].
    """

    configuration_type = TeacherForcing
