from ..configuration import Pushforward
from ._common import AbstractOneLineTrainer


class PushforwardTrainer(AbstractOneLineTrainer):
    """Pushforward training in one line.

    Windows of `num_pushforward_steps + num_rollout_steps + 1` snapshots are cut from
    the trajectories and trained with [`trainax_fm.configuration.Pushforward`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Pushforward`][].
    """

    configuration_type = Pushforward
