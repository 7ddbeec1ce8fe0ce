"""The minibatch stream: tables of per-epoch permutations, regenerated as steps advance."""

from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from ..data._mixer import StreamPlan
from ._compiled import make_permutations


class PermutationStream:
    """Which permutation table holds the batch of a step.

    A table covers `plan.epochs_per_segment` epochs starting at `first_epoch`; every
    batch (a `batch_size` slice of the concatenated epochs) lies inside one table, so a
    compiled loop can run until the end of its table. The batch of step `s` depends
    only on `(shuffle_key, s)`.

    **Arguments:**

    - `shuffle_key`: the shuffle key (with a leading seed axis when `seeds`).
    - `plan`: the static table sizes.
    - `seeds`: whether the key carries a seed axis.
    """

    def __init__(self, shuffle_key: PRNGKeyArray, plan: StreamPlan, seeds: bool):
        self.shuffle_key = shuffle_key
        self.plan = plan
        self.seeds = seeds
        self.first_epoch: Optional[int] = None
        self.table: Optional[Int[Array, "... epochs samples"]] = None
        self.first_epoch_array: Optional[Int[Array, ""]] = None

    def _end(self) -> int:
        """First stream position past the current table."""
        return (self.first_epoch + self.plan.epochs_per_segment) * self.plan.num_samples

    def table_for(self, step: int) -> tuple[Int[Array, "... epochs samples"], Int[Array, ""]]:
        """The table holding the batch of `step` and its first epoch."""
        first_epoch = self.plan.first_epoch(step)
        if self.table is None or not (
            self.first_epoch <= first_epoch
            and (step + 1) * self.plan.batch_size <= self._end()
        ):
            self.first_epoch = first_epoch
            self.table = make_permutations(
                self.shuffle_key,
                jnp.asarray(first_epoch),
                self.plan.epochs_per_segment,
                self.plan.num_samples,
                self.seeds,
            )
            self.first_epoch_array = jnp.asarray(first_epoch)
        return self.table, self.first_epoch_array

    def table_end(self, step: int) -> int:
        """The first step (exclusive) past the table that holds the batch of `step`."""
        self.table_for(step)
        return self._end() // self.plan.batch_size
