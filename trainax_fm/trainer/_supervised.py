from ..configuration import Supervised
from ._common import AbstractOneLineTrainer


class SupervisedTrainer(AbstractOneLineTrainer):
    """Supervised (unrolled) training in one line.

    Windows of `num_input_steps + num_rollout_steps` snapshots are cut from the
    trajectories and trained with [`trainax_fm.configuration.Supervised`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.Supervised`][].
    """

    configuration_type = Supervised
