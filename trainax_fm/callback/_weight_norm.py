import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree

from ._base import BaseCallback


def squared_l2_norm(tree: PyTree) -> Float[Array, ""]:
    """Sum of the squared magnitudes of all array leaves of `tree` (0 if none)."""
    leaves = jtu.tree_leaves(eqx.filter(tree, eqx.is_array))
    total = jnp.asarray(0.0)
    for leaf in leaves:
        total = total + jnp.sum(jnp.square(jnp.abs(leaf)))
    return total


def l2_norm(tree: PyTree, squared: bool) -> Float[Array, ""]:
    """The L2 norm of all array leaves of `tree` as one vector (squared if `squared`)."""
    norm_squared = squared_l2_norm(tree)
    return norm_squared if squared else jnp.sqrt(norm_squared)


class WeightNorm(BaseCallback):
    """The L2 norm of all parameters of the stepper, every `every` updates.

    All array leaves (`eqx.filter(stepper, eqx.is_array)`) count as one long vector.

    **Arguments:**

    - `every`: the period in updates.
    - `squared`: return the squared norm instead of the norm.
    - `name`: the key of the result (default `"weight_norm"`).
    """

    squared: bool = eqx.field(static=True)

    def __init__(self, every: int, squared: bool = False, name: str = "weight_norm"):
        self.every = every
        self.squared = bool(squared)
        self.name = name

    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> Float[Array, ""]:
        """**Returns:** the (squared) L2 norm of the stepper's arrays, a scalar."""
        return l2_norm(stepper, self.squared)
