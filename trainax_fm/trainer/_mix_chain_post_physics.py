import dataclasses

from ..configuration import MixChainPostPhysics
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, RolloutKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _MixChainPostPhysicsKeywords(EngineKeywords, WindowKeywords, RolloutKeywords):
    """The keywords of `MixChainPostPhysicsTrainer`: its configuration's, the windows' and the
    engine's."""

    num_post_physics_steps: int = 1


class MixChainPostPhysicsTrainer(AbstractOneLineTrainer):
    """Mix-chain training (network steps, then reference steps) in one line (needs `ref_stepper`).

    Windows of `num_rollout_steps + num_post_physics_steps + 1` snapshots are trained
    with [`trainax_fm.configuration.MixChainPostPhysics`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.MixChainPostPhysics`][].
    """

    configuration_type = MixChainPostPhysics
    __init__ = keyword_init(_MixChainPostPhysicsKeywords)

