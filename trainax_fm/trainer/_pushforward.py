import dataclasses

from ..configuration import Pushforward
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, RolloutKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _PushforwardKeywords(EngineKeywords, WindowKeywords, RolloutKeywords):
    """The keywords of `PushforwardTrainer`: its configuration's, the windows' and the engine's."""

    num_pushforward_steps: int = 1
    random_pushforward: bool = False


class PushforwardTrainer(AbstractOneLineTrainer):
    """Pushforward training in one line.

    Windows of `num_pushforward_steps + num_rollout_steps + 1` snapshots are cut from
    the trajectories and trained with [`trainax_fm.configuration.Pushforward`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Pushforward`][].
    """

    configuration_type = Pushforward
    __init__ = keyword_init(_PushforwardKeywords)

