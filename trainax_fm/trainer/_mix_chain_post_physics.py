from ..configuration import MixChainPostPhysics
from ._common import AbstractOneLineTrainer


class MixChainPostPhysicsTrainer(AbstractOneLineTrainer):
    """Mix-chain training (network steps, then reference steps) in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + num_post_physics_steps + 1` snapshots are trained
    with [`trainax_fm.configuration.MixChainPostPhysics`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.MixChainPostPhysics`][].
    """

    configuration_type = MixChainPostPhysics
