"""Where the trained state lives on a mesh: replicated, or sharded over one mesh axis
(fully-sharded data parallelism)."""

from typing import Optional

import equinox as eqx
import jax
import jax.tree_util as jtu
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree


def parameter_spec(shape: tuple[int, ...], num_shards: int, axis: str) -> PartitionSpec:
    """The partition of one parameter (or optimizer-state) array over `num_shards`
    devices of mesh axis `axis`: its largest array axis that `num_shards` divides is
    split, ties going to the leading axis; arrays with no such axis (scalars, biases of
    odd size) are replicated."""
    candidates = [i for i, size in enumerate(shape) if size % num_shards == 0 and size > 0]
    if not candidates:
        return PartitionSpec()
    split = max(candidates, key=lambda i: (shape[i], -i))
    return PartitionSpec(*[axis if i == split else None for i in range(len(shape))])


def state_shardings(
    tree: PyTree, mesh: Mesh, parameter_axis: Optional[str]
) -> PyTree:
    """A `NamedSharding` for every array of `tree` (a stepper and optimizer state):
    replicated, or with `parameter_axis` each array split by `parameter_spec`."""
    if parameter_axis is None:
        replicated = NamedSharding(mesh, PartitionSpec())
        return jtu.tree_map(lambda _: replicated, eqx.filter(tree, eqx.is_array))
    num_shards = mesh.shape[parameter_axis]
    return jtu.tree_map(
        lambda x: NamedSharding(mesh, parameter_spec(x.shape, num_shards, parameter_axis)),
        eqx.filter(tree, eqx.is_array),
    )


def place_state(tree: PyTree, mesh: Mesh, parameter_axis: Optional[str]) -> PyTree:
    """`tree` with its arrays put on `mesh` as `state_shardings` says."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    placed = jax.device_put(arrays, state_shardings(tree, mesh, parameter_axis))
    return eqx.combine(placed, static)


def constrain_state(tree: PyTree, mesh: Mesh, parameter_axis: str) -> PyTree:
    """Inside the compiled update: keep the updated state split like its input, so
    XLA's partitioner gathers each parameter where it is used and scatters its
    gradient back (instead of choosing to replicate the result)."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    constrained = jtu.tree_map(
        jax.lax.with_sharding_constraint, arrays, state_shardings(tree, mesh, parameter_axis)
    )
    return eqx.combine(constrained, static)
