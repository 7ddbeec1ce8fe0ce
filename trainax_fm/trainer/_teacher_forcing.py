import dataclasses

from ..configuration import GeneralizedTeacherForcing, TeacherForcing
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



@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _GeneralizedTeacherForcingKeywords(
    EngineKeywords, WindowKeywords, HistoryKeywords, RolloutKeywords
):
    """The keywords of `GeneralizedTeacherForcingTrainer`: its configuration's, the
    windows' and the engine's."""

    forcing_alpha: Schedule
    forcing_every: int = 1
    teacher_forcing_probability: Schedule = 0.0


class GeneralizedTeacherForcingTrainer(AbstractOneLineTrainer):
    """Generalized teacher forcing in one line: after every `forcing_every`-th rollout
    step the state is pulled towards the truth, `z <- alpha x + (1 - alpha) z`.

    Windows of `num_input_steps + num_rollout_steps` snapshots are trained with
    [`trainax_fm.configuration.GeneralizedTeacherForcing`][]; `forcing_alpha` may be a
    schedule over the training steps.

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.GeneralizedTeacherForcing`][].
    """

    configuration_type = GeneralizedTeacherForcing
    __init__ = keyword_init(_GeneralizedTeacherForcingKeywords)
