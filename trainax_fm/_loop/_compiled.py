"""The compiled pieces of the training loop: the kernels and their compilation cache.

Sampling, window gathering and the update of `_problem.py` (loss, gradient, optax) all
run on device. `one_step` is straight-line code (one update per dispatch); `many_steps` runs a
dynamic number of updates inside one `lax.fori_loop` (many updates per dispatch).
"""

from collections import OrderedDict
from typing import Any

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from ..data._mixer import epoch_keys, epoch_permutations, permutations_of_keys
from .._argument_checks import is_traced
from ._problem import Problem, step_key
from ._sharding import constrain_state


@eqx.filter_jit
def make_permutations(
    shuffle_key, first_epoch, num_epochs: int, num_samples: int, seeds: bool = False
):
    if not seeds:
        return epoch_permutations(shuffle_key, first_epoch, num_epochs, num_samples)
    # One flat batch of (seed, epoch) keys: it compiles faster than nested vmaps.
    keys = jax.vmap(lambda k: epoch_keys(k, first_epoch, num_epochs))(shuffle_key)
    flat = keys.reshape((-1,) + keys.shape[2:])
    table = permutations_of_keys(flat, num_samples)
    return table.reshape(keys.shape[:2] + (num_samples,))


def one_step(
    problem: Problem,
    stepper: PyTree,
    opt_state: PyTree,
    permutations: Int[Array, "epochs samples"],
    first_epoch: Int[Array, ""],
    run_key: PRNGKeyArray,
    step: Int[Array, ""],
):
    """One update (straight-line code)."""
    stepper, opt_state, loss = problem.step(
        stepper, opt_state, permutations, first_epoch, run_key, step
    )
    return stepper, opt_state, loss, loss


def streamed_step(
    problem: Problem,
    stepper: PyTree,
    opt_state: PyTree,
    batch: PyTree,
    run_key: PRNGKeyArray,
    step: Int[Array, ""],
):
    """One update on a minibatch read on the host (data on disk), already placed and
    sharded over the devices."""
    stepper, opt_state, loss = problem.update(
        stepper, opt_state, batch, step_key(run_key, step), step
    )
    return stepper, opt_state, loss, loss


def many_steps(
    problem: Problem,
    stepper: PyTree,
    opt_state: PyTree,
    permutations: Int[Array, "epochs samples"],
    first_epoch: Int[Array, ""],
    run_key: PRNGKeyArray,
    start: Int[Array, ""],
    num_steps: Int[Array, ""],
    buffer_size: int,
):
    """`num_steps <= buffer_size` updates inside one `lax.fori_loop`."""
    params, static = eqx.partition(stepper, eqx.is_array)

    def body(i, carry):
        params, opt_state, losses = carry
        new_stepper, opt_state, loss = problem.step(
            eqx.combine(params, static), opt_state, permutations, first_epoch, run_key,
            start + i,
        )
        new_params = eqx.filter(new_stepper, eqx.is_array)
        return new_params, opt_state, losses.at[i].set(loss)

    losses = jnp.full((buffer_size,), jnp.nan)
    params, opt_state, losses = jax.lax.fori_loop(
        0, num_steps, body, (params, opt_state, losses)
    )
    return eqx.combine(params, static), opt_state, losses, losses[num_steps - 1]


# Compiled updates kept for reuse by later runs with equal static parts; least recently
# used ones are dropped past this many (each holds an XLA executable).
MAX_CACHED_UPDATES = 32
_COMPILED_CACHE: "OrderedDict[Any, _Compiled]" = OrderedDict()


class _Compiled:
    """A jitted update with, per argument signature, its lowered program, its cost and
    its executable."""

    def __init__(self, jitted):
        self.jitted = jitted
        self.lowered: dict = {}
        self.costs: dict = {}
        self.executables: dict = {}

    def _lower(self, signature, args) -> None:
        """Trace and lower; the cost is kept, the lowered program until it is compiled."""
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), args
        )
        traced = self.jitted.trace(*abstract)
        lowered = traced.lower()
        self.costs[signature] = update_cost(traced, lowered)
        self.lowered[signature] = lowered

    def cost(self, args) -> "UpdateCost":
        signature = _signature(args)
        if signature not in self.costs:
            self._lower(signature, args)
        return self.costs[signature]

    def executable(self, args):
        # Only for unsharded concrete arguments (sharded and traced calls use `jitted`).
        signature = _signature(args)
        if signature not in self.executables:
            if signature not in self.lowered:
                self._lower(signature, args)
            self.executables[signature] = self.lowered.pop(signature).compile()
        return self.executables[signature]


def _signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves)


def update_cost(traced, lowered) -> "UpdateCost":
    """What XLA's cost analysis says about one update (before optimisation)."""
    analysis = lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one entry per computation
        analysis = analysis[0] if analysis else {}
    return UpdateCost(
        flops=float((analysis or {}).get("flops", 0.0)),
        has_convolution=_has_convolution(traced.jaxpr.jaxpr),
    )


def _has_convolution(jaxpr) -> bool:
    """Whether a jaxpr (or one nested in it: scans, loops, remat) convolves."""
    for equation in jaxpr.eqns:
        if equation.primitive.name == "conv_general_dilated":
            return True
        for value in equation.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(inner, jax.extend.core.ClosedJaxpr):
                    inner = inner.jaxpr
                if isinstance(inner, jax.extend.core.Jaxpr) and _has_convolution(inner):
                    return True
    return False


class UpdateCost(eqx.Module):
    """The static cost of one update, from which the dispatch mode is chosen."""

    flops: float
    has_convolution: bool


def clear_compiled_cache() -> None:
    _COMPILED_CACHE.clear()


class CompiledUpdate:
    """A compiled update function with the static parts split off once.

    `eqx.filter_jit` re-partitions every argument on every call; for one update per
    dispatch that Python overhead dominates light steps, so the partition is done once
    here and the compiled function only sees arrays. Concrete calls run an
    ahead-of-time executable (lowered once, which also yields the update's cost);
    traced calls (inside `eqx.filter_vmap`) go through `jax.jit`. Compiled functions
    are shared by trainer calls whose static parts (configuration, optimizer, network
    structure) are equal, in a cache of bounded size.
    """

    def __init__(
        self, kernel, problem: Problem, stepper, opt_state, *static_args, seeds: bool = False
    ):
        dynamic, static = eqx.partition((problem, stepper, opt_state), eqx.is_array)
        self.dynamic_problem = dynamic[0]
        self.static = static
        self.sharded = problem.mesh is not None

        def one_seed(problem_arrays, stepper_arrays, opt_arrays, *args):
            problem, stepper, opt_state = eqx.combine(
                (problem_arrays, stepper_arrays, opt_arrays), static
            )
            stepper, opt_state, losses, last = kernel(
                problem, stepper, opt_state, *args, *static_args
            )
            if problem.parameter_axis is not None:
                stepper, opt_state = constrain_state(
                    (stepper, opt_state), problem.mesh, problem.parameter_axis
                )
            return eqx.filter((stepper, opt_state), eqx.is_array), losses, last

        def compiled(dynamic, *args):
            if not seeds:
                return one_seed(*dynamic, *args)
            # Seeds in parallel: every seed has its own parameters, optimizer state,
            # minibatch order (the permutation table, first argument) and noise (the run
            # key, third); data, first epoch and step counter are shared.
            in_axes = (None, 0, 0, 0, None, 0) + (None,) * (len(args) - 3)
            return jax.vmap(one_seed, in_axes=in_axes)(*dynamic, *args)

        leaves, treedef = jax.tree_util.tree_flatten(static)
        try:
            cache_key = (kernel, treedef, tuple(leaves), static_args, seeds)
            hash(cache_key)
        except TypeError:  # an unhashable static leaf: compile for this call only
            cache_key = None
        entry = _COMPILED_CACHE.get(cache_key) if cache_key is not None else None
        if entry is None:
            entry = _Compiled(jax.jit(compiled))
            if cache_key is not None:
                _COMPILED_CACHE[cache_key] = entry
                while len(_COMPILED_CACHE) > MAX_CACHED_UPDATES:
                    _COMPILED_CACHE.popitem(last=False)
        elif cache_key is not None:
            _COMPILED_CACHE.move_to_end(cache_key)
        self.entry = entry

    def _arguments(self, stepper, opt_state, args):
        state = eqx.filter((stepper, opt_state), eqx.is_array)
        return ((self.dynamic_problem, state[0], state[1]),) + tuple(args)

    def cost(self, stepper, opt_state, *args) -> UpdateCost:
        """The static cost of one call (from the lowered program, not compiled)."""
        return self.entry.cost(self._arguments(stepper, opt_state, args))

    def __call__(self, stepper, opt_state, *args):
        arguments = self._arguments(stepper, opt_state, args)
        # Traced calls (seeds under `eqx.filter_vmap`) and sharded ones go through
        # `jax.jit`, which traces along and reshards as needed.
        if self.sharded or is_traced(arguments):
            run = self.entry.jitted
        else:
            run = self.entry.executable(arguments)
        new_state, losses, last = run(*arguments)
        stepper, opt_state = eqx.combine(new_state, (self.static[1], self.static[2]))
        return stepper, opt_state, losses, last


@eqx.filter_jit
def gather_batch(problem: Problem, permutations, first_epoch, step, seeds: bool = False):
    gather = lambda p: problem.batch(p, first_epoch, step)  # noqa: E731
    return jax.vmap(gather)(permutations) if seeds else gather(permutations)
