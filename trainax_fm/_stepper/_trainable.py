"""Which arrays of a stepper the optimizer trains."""

import equinox as eqx
import jax.tree_util as jtu
from jaxtyping import PyTree

from ..data._normalizer import Normalizer


def _is_normalizer(node) -> bool:
    return isinstance(node, Normalizer)


def trainable_filter(stepper: PyTree) -> PyTree[bool]:
    """A filter specification (for `eqx.filter`/`eqx.partition`) of the trainable
    arrays of `stepper`: see [`trainax_fm.trainable_arrays`][]."""
    return jtu.tree_map(
        lambda node: False if _is_normalizer(node) else eqx.is_inexact_array(node),
        stepper,
        is_leaf=_is_normalizer,
    )


def trainable_arrays(stepper: PyTree) -> PyTree:
    """The arrays of `stepper` an optimizer trains, `None` elsewhere.

    Floating-point arrays, except the statistics of every
    [`trainax_fm.Normalizer`][] inside the stepper: they describe the data and are
    never trained (nor decayed by `optax.adamw`). The engine initialises optimizer
    states with this and takes gradients with respect to it only; do the same in a
    hand-written loop: `optimizer.init(tx.trainable_arrays(stepper))`.

    **Arguments:**

    - `stepper`: any PyTree (usually an `eqx.Module`).

    **Returns:**

    - `stepper` with every non-trainable leaf replaced by `None`.
    """
    return eqx.filter(stepper, trainable_filter(stepper))
