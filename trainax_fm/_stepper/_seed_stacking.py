"""Seed-stacked steppers: one initialisation per key, arrays stacked on a seed axis."""

import equinox as eqx
import jax
import jax.numpy as jnp


def stack_seed_steppers(make_stepper, init_keys):
    """`make_stepper` of every key, with the arrays stacked along a leading seed axis.

    The steppers are built one at a time: after the first, every eager operation of the
    initialisation hits JAX's per-shape cache, whereas `eqx.filter_vmap(make_stepper)`
    compiles each random operation anew for the seed-batched shapes (seconds for a
    small MLP on a CPU). Seed `i` is bit-identical to `make_stepper(init_keys[i])`.
    """
    steppers = [make_stepper(key) for key in init_keys]
    arrays = [eqx.filter(stepper, eqx.is_array) for stepper in steppers]
    structure = jax.tree_util.tree_structure(arrays[0])
    for seed, seed_arrays in enumerate(arrays[1:], start=1):
        if jax.tree_util.tree_structure(seed_arrays) != structure:
            raise ValueError(
                "train_seeds: `make_stepper` built steppers of different structures for "
                f"seed 0 and seed {seed}; every seed must have the same architecture "
                "(only the key may change the values)."
            )
    return eqx.combine(_stack_trees(*arrays), steppers[0])


@jax.jit
def _stack_trees(*trees):
    # One compiled program for all leaves instead of one eager `stack` per shape.
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)
