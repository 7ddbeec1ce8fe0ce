"""Argument checks shared by every public entry point.

Each helper raises a `ValueError`/`TypeError` whose message names the argument, the
expected and the actual value, and how to fix it.
"""

import numbers
from typing import Any

import jax
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return `value` as an `int`, or raise if it is not an integer `>= minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer >= {minimum}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}, got {value}. "
            f"Pass a value of at least {minimum}."
        )
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """Return `value` if it is a Python bool, else raise a `TypeError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def check_weights(weights: Any, length: int, name: str, length_name: str):
    """Turn `None` into ones and check that a weight vector has `length` entries."""
    import jax.numpy as jnp

    if weights is None:
        return jnp.ones(length)
    weights = jnp.asarray(weights)
    if weights.ndim != 1 or weights.shape[0] != length:
        raise ValueError(
            f"`{name}` must be a 1D sequence with one entry per {length_name} "
            f"(length {length}), got shape {tuple(weights.shape)}. Pass {length} "
            f"weights or None for all ones."
        )
    return weights


def is_traced(tree: Any) -> bool:
    """True if any leaf of `tree` is a JAX tracer (inside jit, vmap or grad)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(tree))


def describe_leaves(tree: Any) -> str:
    """Short `path: shape` listing of a PyTree for error messages."""
    leaves, _ = jtu.tree_flatten_with_path(tree)
    parts = [
        f"{jtu.keystr(path) or '<root>'}: {tuple(getattr(leaf, 'shape', ()))}"
        for path, leaf in leaves
    ]
    return "{" + ", ".join(parts) + "}"


def check_trajectories(data: PyTree, name: str = "data_trajectories") -> tuple[int, int]:
    """Check that `data` is a PyTree of arrays shaped `(S, T, ...)` with shared S and T.

    **Returns:**

    - `(num_trajectories, num_time_steps)`.
    """
    leaves = jtu.tree_leaves(data)
    if not leaves:
        raise ValueError(f"`{name}` is empty; pass an array shaped (S, T, C, *spatial).")
    for leaf in leaves:
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(
                f"`{name}` must be an array or a PyTree of arrays shaped "
                f"(S, T, C, *spatial), found a leaf of type {type(leaf).__name__}."
            )
        if leaf.ndim < 3:
            raise ValueError(
                f"`{name}` must have a trajectory axis, a time axis and a channel axis: "
                f"expected shape (S, T, C, *spatial) (or (S, T, C) for ODE states), got "
                f"{tuple(leaf.shape)}. For a single trajectory add a leading axis "
                "(`data[None]`); for scalar states add a channel axis (`data[..., None]`)."
            )
    shapes = {tuple(leaf.shape[:2]) for leaf in leaves}
    if len(shapes) != 1:
        raise ValueError(
            f"all leaves of `{name}` must share the leading (S, T) axes, got "
            f"{describe_leaves(data)}."
        )
    num_trajectories, num_time_steps = shapes.pop()
    if num_trajectories < 1 or num_time_steps < 1:
        raise ValueError(
            f"`{name}` has no samples: shape (S, T) = {(num_trajectories, num_time_steps)}."
        )
    return num_trajectories, num_time_steps
