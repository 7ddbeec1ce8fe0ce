"""Minibatch index sampling: trainax's `PermutationMixer` and the static-shape stream.

The training engine uses the *stream*: the per-epoch permutations are laid end to end and
step `i` takes the `batch_size` consecutive entries starting at position
`i * batch_size`. An epoch's remainder therefore continues into the next epoch's
permutation, every batch has the same shape and the step compiles once. Each sample is
still seen exactly once per epoch.
"""

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from .._argument_checks import check_positive_int


def effective_batch_size(num_total_samples: int, batch_size: int) -> int:
    """`batch_size`, or the number of samples (full-batch training) if that is smaller."""
    if batch_size > num_total_samples:
        warnings.warn(
            f"batch_size ({batch_size}) is larger than the number of windows "
            f"({num_total_samples}); training full-batch with {num_total_samples} "
            "windows per step.",
            stacklevel=3,
        )
        return num_total_samples
    return batch_size


def _shuffle_plan(num_samples: int) -> tuple[int, int]:
    """`(index_bits, rounds)` of the packed-key shuffle of `num_samples` entries.

    A sort key is 32 bits: random high bits above the entry's position in the low
    `index_bits`. Equal random parts are broken by position, so, like
    `jax.random.permutation`, several rounds are composed until collisions leave the
    distribution close to uniform. `rounds == 0` means too few random bits are left
    for a packed key.
    """
    index_bits = max(1, (num_samples - 1).bit_length())
    random_bits = 32 - index_bits
    if random_bits < 8:
        return index_bits, 0
    rounds = math.ceil(3 * math.log(max(num_samples, 2)) / (random_bits * math.log(2)))
    return index_bits, max(1, rounds)


def _epoch_permutation(key: PRNGKeyArray, num_samples: int) -> Int[Array, " num_samples"]:
    index_bits, rounds = _shuffle_plan(num_samples)
    if rounds == 0:
        bits = jax.random.bits(key, (num_samples,))
        return jnp.argsort(bits, stable=True).astype(jnp.int32)
    # One single-operand sort of unique packed keys per round: on CPU this is ~6x
    # faster than an argsort, which sorts (key, index) pairs with a generic comparator.
    position = jnp.arange(num_samples, dtype=jnp.uint32)
    low = jnp.uint32((1 << index_bits) - 1)
    permutation = None
    for round_ in range(rounds):
        bits = jax.random.bits(jax.random.fold_in(key, round_), (num_samples,), jnp.uint32)
        order = (jnp.sort((bits & ~low) | position) & low).astype(jnp.int32)
        permutation = order if permutation is None else permutation[order]
    return permutation


def epoch_permutations(
    shuffle_key: PRNGKeyArray, first_epoch: Int[Array, ""], num_epochs: int, num_samples: int
) -> Int[Array, "num_epochs num_samples"]:
    """Permutations of epochs `first_epoch, ..., first_epoch + num_epochs - 1`."""
    return permutations_of_keys(epoch_keys(shuffle_key, first_epoch, num_epochs), num_samples)


def epoch_keys(
    shuffle_key: PRNGKeyArray, first_epoch: Int[Array, ""], num_epochs: int
) -> PRNGKeyArray:
    """The shuffle keys of epochs `first_epoch, ..., first_epoch + num_epochs - 1`."""
    epochs = first_epoch + jnp.arange(num_epochs)
    return jax.vmap(lambda e: jax.random.fold_in(shuffle_key, e))(epochs)


def permutations_of_keys(
    keys: PRNGKeyArray, num_samples: int
) -> Int[Array, "num_keys num_samples"]:
    """One permutation of `range(num_samples)` per key of a flat batch of keys."""
    return jax.vmap(lambda key: _epoch_permutation(key, num_samples))(keys)


def stream_batch(
    permutations: Int[Array, "num_epochs num_samples"],
    first_epoch: Int[Array, ""],
    step: Int[Array, ""],
    batch_size: int,
    xnp=jnp,
) -> Int[Array, " batch_size"]:
    """Window indices of training step `step` from a table of epoch permutations.

    With `xnp=np` the same arithmetic runs on the host on a NumPy copy of the table:
    that is how minibatches of on-disk data are chosen, so they equal the in-memory
    ones.
    """
    num_samples = permutations.shape[1]
    position = step * batch_size + xnp.arange(batch_size)
    epoch = position // num_samples - first_epoch
    return permutations[epoch, position % num_samples]


class StreamPlan(eqx.Module):
    """How many epoch permutations a segment of training steps needs (static sizes)."""

    num_samples: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    steps_per_segment: int = eqx.field(static=True)
    epochs_per_segment: int = eqx.field(static=True)

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        max_table_entries: int = 2**20,
        max_epochs: int = 32,
        target_steps: int = 1024,
    ):
        self.num_samples = num_samples
        self.batch_size = batch_size
        # Small enough that regenerating the table is cheap and a short run does not
        # shuffle epochs it never reaches, large enough that it happens rarely: about
        # `target_steps` (one full compiled loop) per table.
        epochs_for_target = math.ceil(target_steps * batch_size / num_samples) + 1
        max_epochs = max(
            2, min(max_epochs, epochs_for_target, max_table_entries // num_samples)
        )
        self.steps_per_segment = max(1, ((max_epochs - 1) * num_samples) // batch_size)
        # Any `steps_per_segment` consecutive steps touch at most this many epochs.
        self.epochs_per_segment = (
            math.ceil(self.steps_per_segment * batch_size / num_samples) + 1
        )

    def first_epoch(self, step: int) -> int:
        return (step * self.batch_size) // self.num_samples


class PermutationMixer(eqx.Module):
    """Minibatch indices from one fresh permutation per epoch (trainax semantics).

    The last minibatch of an epoch may be smaller than `batch_size` (it is not filled
    from the next epoch). The training engine of trainax_fm uses a static-shape stream
    instead (see `trainax_fm.data._mixer`); this class is kept for compatibility.

    **Arguments:**

    - `num_total_samples`: number of windows.
    - `num_minibatches`: total number of minibatches to serve.
    - `batch_size`: samples per minibatch (full-batch with a warning if larger than
        `num_total_samples`).
    - `shuffle_key`: key for the permutations.
    """

    num_total_samples: int = eqx.field(static=True)
    num_minibatches: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    num_minibatches_per_epoch: int = eqx.field(static=True)
    num_epochs: int = eqx.field(static=True)
    permutations: Int[Array, "num_epochs num_total_samples"]

    def __init__(
        self,
        num_total_samples: int,
        num_minibatches: int,
        batch_size: int,
        shuffle_key: PRNGKeyArray,
    ):
        num_total_samples = check_positive_int(num_total_samples, "num_total_samples")
        num_minibatches = check_positive_int(num_minibatches, "num_minibatches")
        batch_size = effective_batch_size(
            num_total_samples, check_positive_int(batch_size, "batch_size")
        )
        self.num_total_samples = num_total_samples
        self.num_minibatches = num_minibatches
        self.batch_size = batch_size
        self.num_minibatches_per_epoch = math.ceil(num_total_samples / batch_size)
        self.num_epochs = math.ceil(num_minibatches / self.num_minibatches_per_epoch)
        self.permutations = epoch_permutations(
            shuffle_key, jnp.asarray(0), self.num_epochs, num_total_samples
        )

    def __call__(self, i: int, *, return_info: bool = False):
        """Indices of minibatch `i`.

        **Arguments:**

        - `i`: minibatch index in `[0, num_minibatches)`.
        - `return_info`: also return `(epoch, batch_within_epoch)`.

        **Returns:**

        - The index array, plus `(epoch, batch)` if `return_info`.
        """
        if not 0 <= i < self.num_minibatches:
            raise ValueError(
                f"minibatch index `i` must be in [0, {self.num_minibatches}), got {i}."
            )
        epoch, batch = divmod(i, self.num_minibatches_per_epoch)
        start = batch * self.batch_size
        stop = min(start + self.batch_size, self.num_total_samples)
        indices = self.permutations[epoch, start:stop]
        return (indices, (epoch, batch)) if return_info else indices
