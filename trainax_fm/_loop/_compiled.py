"""The compiled pieces of the training loop.

Sampling, window gathering, the loss, its gradient and the optax update all run on
device. `one_step` is straight-line code (one update per dispatch); `many_steps` runs a
dynamic number of updates inside one `lax.fori_loop` (many updates per dispatch).
"""

from collections import OrderedDict
from typing import Any, Optional

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PRNGKeyArray, PyTree

from ..data._mixer import epoch_keys, epoch_permutations, permutations_of_keys, stream_batch
from ..data._conditioned import bind_to_windows
from .._stepper._normalized import to_normalized_space
from .._stepper._trainable import trainable_filter
from ..data._windows import TrajectorySubStacker
from .._argument_checks import is_traced
from ..configuration._base import BaseConfiguration
from ._configuration_state import ConfigurationOptState
from ._sharding import constrain_state
from ._precision import (
    LossScaledOptState,
    MixedPrecision,
    all_finite,
    loss_scale_of,
    next_loss_scale,
)


class Problem(eqx.Module):
    """What a compiled step needs besides the trained state."""

    stacker: TrajectorySubStacker
    # Wrapped by `as_configuration` where the trainer builds the problem.
    configuration: BaseConfiguration
    ref_stepper: Any
    residuum_fn: Any
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    skip_nonfinite: bool = eqx.field(static=True, default=False)
    mesh: Optional[jax.sharding.Mesh] = eqx.field(static=True, default=None)
    batch_axis: str = eqx.field(static=True, default="batch")
    precision: Optional[MixedPrecision] = eqx.field(static=True, default=None)
    parameter_axis: Optional[str] = eqx.field(static=True, default=None)

    def prepared(self, stepper, batch):
        """What the configuration sees: conditioned networks bound to the minibatch's
        constants (of the stepper, the reference, the residuum, a teacher inside the
        configuration), and, for a normalised stepper, everything in normalised units."""
        batch, stepper, configuration, ref_stepper, residuum_fn = bind_to_windows(
            batch, stepper, self.configuration, self.ref_stepper, self.residuum_fn
        )
        stepper, batch, ref_stepper, residuum_fn = to_normalized_space(
            stepper, batch, ref_stepper, residuum_fn
        )
        if self.precision is not None:
            stepper = self.precision.for_compute(stepper)
        return stepper, batch, configuration, ref_stepper, residuum_fn

    def loss(self, stepper, batch, key, step):
        stepper, batch, configuration, ref_stepper, residuum_fn = self.prepared(stepper, batch)
        return configuration(
            stepper, batch, ref_stepper=ref_stepper, residuum_fn=residuum_fn, key=key, step=step
        )

    def stateful_loss(self, stepper, batch, state, key, step):
        stepper, batch, configuration, ref_stepper, residuum_fn = self.prepared(stepper, batch)
        return configuration.stateful_loss(
            stepper, batch, state, ref_stepper=ref_stepper, residuum_fn=residuum_fn,
            key=key, step=step,
        )

    def value_and_grad(self, stepper, batch, key, step, state=None, scale=None):
        """The loss (with the configuration's next state if `state` is given) and its
        gradient with respect to the trainable arrays only (`trainable_arrays`: never
        normalisation statistics). With a loss `scale`, the loss is differentiated
        multiplied by it and the gradients divided by it again."""
        params, frozen = eqx.partition(stepper, trainable_filter(stepper))

        def objective(p):
            if state is None:
                loss, aux = self.loss(eqx.combine(p, frozen), batch, key, step), None
            else:
                loss, aux = self.stateful_loss(eqx.combine(p, frozen), batch, state, key, step)
            return (loss if scale is None else loss * scale), aux

        (loss, aux), grads = eqx.filter_value_and_grad(objective, has_aux=True)(params)
        if scale is not None:
            loss = loss / scale
            grads = jax.tree_util.tree_map(lambda g: g / scale, grads)
        return (loss, aux), grads

    def update(self, stepper, opt_state, batch, key, step):
        params = eqx.filter(stepper, trainable_filter(stepper))
        scaled = isinstance(opt_state, LossScaledOptState)
        if self.precision is not None and self.precision.scaling == "dynamic" and not scaled:
            raise ValueError(
                "dynamic loss scaling keeps its scale in the optimizer state: start from "
                "`trainer.optimizer.init(...)` (or no `opt_state`), and give `precision` to "
                "the trainer rather than to one `train` call."
            )
        scale = loss_scale_of(opt_state, self.precision)
        inner_state = opt_state.inner if scaled else opt_state
        if isinstance(inner_state, ConfigurationOptState):
            # A stateful configuration: its state rides in the optimizer state.
            (loss, state), grads = self.value_and_grad(
                stepper, batch, key, step, inner_state.configuration_state, scale
            )
            updates, new_opt_state = self.optimizer.update(
                grads, opt_state, params, configuration_state=state
            )
        else:
            (loss, _), grads = self.value_and_grad(stepper, batch, key, step, scale=scale)
            updates, new_opt_state = self.optimizer.update(grads, opt_state, params)
        new_stepper = eqx.apply_updates(stepper, updates)
        if scaled:
            # Overflowed gradients are the loss scale's business: skip the update and
            # shrink the scale, which the next update uses.
            finite = all_finite(grads)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
            new_stepper = _select(keep, new_stepper, stepper)
            new_opt_state = LossScaledOptState(
                _select(keep, new_opt_state.inner, opt_state.inner),
                next_loss_scale(opt_state.loss_scale, finite, self.precision),
            )
        if self.skip_nonfinite:
            # Keep the old parameters and optimizer state when the loss or a gradient
            # is NaN/Inf; the recorded loss still shows the bad value.
            finite = jnp.isfinite(loss) & all_finite(grads)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
            new_stepper = _select(keep, new_stepper, stepper)
            new_opt_state = _select(keep, new_opt_state, opt_state)
        return new_stepper, new_opt_state, loss

    def step(self, stepper, opt_state, permutations, first_epoch, run_key, step):
        """Update `step`: its minibatch from the permutation table, its key, the update."""
        batch = self.batch(permutations, first_epoch, step)
        return self.update(stepper, opt_state, batch, step_key(run_key, step), step)

    def batch(self, permutations, first_epoch, step):
        indices = stream_batch(permutations, first_epoch, step, self.batch_size)
        windows = self.stacker(indices)
        if self.mesh is None:
            return windows
        # Data parallelism: split the minibatch over the mesh's batch axis; XLA then
        # partitions the rollout and all-reduces the (replicated) gradients.
        sharding = jax.sharding.NamedSharding(
            self.mesh, jax.sharding.PartitionSpec(self.batch_axis)
        )
        constrain = lambda x: jax.lax.with_sharding_constraint(x, sharding)  # noqa: E731
        return jax.tree_util.tree_map(constrain, windows)


def _select(choose, new, old):
    new_arrays, static = eqx.partition(new, eqx.is_array)
    old_arrays = eqx.filter(old, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(choose, new_arrays, old_arrays), static)


def step_key(run_key: PRNGKeyArray, step: Int[Array, ""]) -> PRNGKeyArray:
    """The configuration's key at training step `step` (independent of dispatch mode)."""
    return jax.random.fold_in(run_key, step)


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


def full_dataset_loss(problem: Problem, stepper, key: Optional[PRNGKeyArray]):
    return problem.loss(stepper, problem.stacker.data_sub_trajectories, key, None)
