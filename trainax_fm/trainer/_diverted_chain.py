import dataclasses
from typing import Optional

from jaxtyping import Array, Float

from ..configuration import DivertedChain
from ._common import AbstractOneLineTrainer
from ._keywords import EngineKeywords, RolloutKeywords, WindowKeywords, keyword_init


@dataclasses.dataclass(eq=False, repr=False, kw_only=True)
class _DivertedChainKeywords(EngineKeywords, WindowKeywords, RolloutKeywords):
    """The keywords of `DivertedChainTrainer`: its configuration's, the windows' and the
    engine's."""

    num_branch_steps: int = 1
    cut_div_chain: bool = False
    branch_level_weights: Optional[Float[Array, " num_branch_steps"]] = None


class DivertedChainTrainer(AbstractOneLineTrainer):
    """Diverted-chain training with branches of `num_branch_steps` in one line
    (needs `ref_stepper`).

    Windows of `num_rollout_steps + 1` snapshots are cut (only their initial condition
    is used) and trained with [`trainax_fm.configuration.DivertedChain`][].

    **Arguments:** the keywords every trainer takes ([`trainax_fm.trainer`][]) and
    those of [`trainax_fm.configuration.DivertedChain`][].
    """

    configuration_type = DivertedChain
    __init__ = keyword_init(_DivertedChainKeywords)

    def window_length(self, configuration) -> int:
        # trainax cuts windows of R + 1 snapshots although only the IC is used.
        return configuration.num_rollout_steps + 1
