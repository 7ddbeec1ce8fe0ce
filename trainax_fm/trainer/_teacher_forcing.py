import dataclasses

from ..configuration import TeacherForcing
from ..configuration._schedule import Schedule
from ._common import AbstractOneLineTrainer
from ._keywords import (
    EngineKeywords,
    HistoryKeywords,
    RolloutKeywords,
    WindowKeywords,
    keyword_init,
)


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _TeacherForcingKeywords(EngineKeywords, WindowKeywords, HistoryKeywords, RolloutKeywords):
    """The keywords of `TeacherForcingTrainer`: its configuration's, the windows' and the
    engine's."""

    teacher_forcing_probability: Schedule = 1.0


class TeacherForcingTrainer(AbstractOneLineTrainer):
    """Teacher forcing (scheduled sampling) in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are trained with
    [`trainax_fm.configuration.TeacherForcing`][]; the probability schedule runs over the
    training steps.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.TeacherForcing`][].
    """

    configuration_type = TeacherForcing
    __init__ = keyword_init(_TeacherForcingKeywords)

