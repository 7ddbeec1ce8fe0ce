"""What one update computes: the minibatch, the loss the configuration sees, its
gradient and the optax update (with mixed precision and loss scaling where asked).
`_compiled.py` compiles and caches the kernels that run it."""

from typing import Any, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, PRNGKeyArray

from ..configuration._base import BaseConfiguration
from ..data._conditioned import bind_to_windows
from ..data._mixer import stream_batch
from ..data._windows import TrajectorySubStacker
from .._stepper._normalized import to_normalized_space
from .._stepper._trainable import trainable_filter
from ._configuration_state import ConfigurationOptState
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


def full_dataset_loss(problem: Problem, stepper, key: Optional[PRNGKeyArray]):
    return problem.loss(stepper, problem.stacker.data_sub_trajectories, key, None)
