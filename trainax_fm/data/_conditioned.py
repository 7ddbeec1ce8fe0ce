"""Trajectories that come with constants per trajectory (physical parameters, geometry)."""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._argument_checks import check_trajectories, is_traced
from .._stepper._conditioned import SampleConstants, bind_constants, count_conditioned


class ConditionedTrajectories(eqx.Module):
    """Trajectories with constant scalars and constant fields per trajectory.

    Pass it wherever trajectories are expected (`TrajectorySubStacker`, every trainer):
    each window then carries the constants of its trajectory, and the stepper's
    [`trainax_fm.ConditionedNetwork`][]s are bound to them for every sample, in every
    configuration. The constants are gathered with the windows inside the compiled
    update.

    **Arguments:**

    - `trajectories`: `(S, T, C, *spatial)` (or a PyTree of such arrays).
    - `constant_scalars`: `(S, P)` scalars per trajectory (e.g. a diffusivity), or
        `None`.
    - `constant_fields`: `(S, F, *spatial)` fields per trajectory (e.g. a mask), with
        the spatial shape of the states, or `None`.

    At least one of the two must be given.
    """

    trajectories: PyTree[Float[Array, "num_trajectories time ..."]]
    constant_scalars: Optional[Float[Array, "num_trajectories num_scalars"]]
    constant_fields: Optional[Float[Array, "num_trajectories num_fields ..."]]

    def __init__(
        self,
        trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        constant_scalars: Optional[Float[Array, "num_trajectories num_scalars"]] = None,
        constant_fields: Optional[Float[Array, "num_trajectories num_fields ..."]] = None,
    ):
        if isinstance(trajectories, ConditionedTrajectories):
            raise TypeError("`trajectories` is already a ConditionedTrajectories.")
        num_trajectories, _ = check_trajectories(trajectories, "trajectories")
        if constant_scalars is None and constant_fields is None:
            raise ValueError(
                "ConditionedTrajectories needs `constant_scalars` (S, P) and/or "
                "`constant_fields` (S, F, *spatial); without constants pass the "
                "trajectories themselves."
            )
        state_shapes = {tuple(leaf.shape[2:]) for leaf in jtu.tree_leaves(trajectories)}
        if constant_scalars is not None:
            constant_scalars = jnp.asarray(constant_scalars)
            if constant_scalars.ndim != 2 or constant_scalars.shape[0] != num_trajectories:
                raise ValueError(
                    "`constant_scalars` must be shaped (S, P) = "
                    f"({num_trajectories}, num_scalars), one row per trajectory, got "
                    f"{tuple(constant_scalars.shape)}. For one parameter per trajectory "
                    "use `values[:, None]`."
                )
        if constant_fields is not None:
            constant_fields = jnp.asarray(constant_fields)
            spatial = {shape[1:] for shape in state_shapes}
            if (
                constant_fields.ndim < 2
                or constant_fields.shape[0] != num_trajectories
                or len(spatial) != 1
                or tuple(constant_fields.shape[2:]) != next(iter(spatial))
            ):
                raise ValueError(
                    "`constant_fields` must be shaped (S, F, *spatial) with S = "
                    f"{num_trajectories} trajectories and the spatial shape of the "
                    f"states (state shapes: {sorted(state_shapes)}), got "
                    f"{tuple(constant_fields.shape)}. For one field per trajectory use "
                    "`fields[:, None]`."
                )
        constants = {"constant_scalars": constant_scalars, "constant_fields": constant_fields}
        for name, value in constants.items():
            if value is not None:
                if not jnp.issubdtype(value.dtype, jnp.floating):
                    raise TypeError(f"`{name}` must be floating point, got {value.dtype}.")
                if is_traced(value):
                    continue
                rows = value.reshape(value.shape[0], -1)
                finite = np.asarray(jnp.all(jnp.isfinite(rows), axis=1))
                if not finite.all():
                    raise ValueError(
                        f"`{name}` contains NaN or Inf, first at trajectory "
                        f"{int(np.argmin(finite))}."
                    )
        self.trajectories = jtu.tree_map(jnp.asarray, trajectories)
        self.constant_scalars = constant_scalars
        self.constant_fields = constant_fields

    def constants_of(self, trajectory_index) -> SampleConstants:
        """The constants of the trajectories `trajectory_index` (an index array)."""
        take = lambda x: None if x is None else x[trajectory_index]  # noqa: E731
        return SampleConstants(take(self.constant_scalars), take(self.constant_fields))


class ConditionedWindows(eqx.Module):
    """A minibatch of windows `(B, W, ...)` with the constants of their trajectories
    (scalars `(B, P)`, fields `(B, F, *spatial)`), as the stacker gathers them from
    [`trainax_fm.ConditionedTrajectories`][]."""

    windows: PyTree[Float[Array, "batch window ..."]]
    constants: SampleConstants


def bind_to_windows(batch, stepper, *others):
    """Split a gathered minibatch into its windows and bind the conditioned networks
    of `stepper` (and of `others`: reference stepper, residuum, configuration) to its
    constants.

    **Returns:**

    - `(windows, stepper, *others)`; unchanged when `batch` carries no constants.
    """
    if not isinstance(batch, ConditionedWindows):
        return (batch, stepper, *others)
    if count_conditioned(stepper) == 0:
        raise ValueError(
            "The data carry constants per trajectory (ConditionedTrajectories) but the "
            "stepper holds no trainax_fm.ConditionedNetwork to receive them. Wrap its "
            "network: `ConditionedNetwork(network)` (the network then sees "
            "`conditioned_channels(C, P, F)` input channels)."
        )
    constants = batch.constants
    bound = bind_constants(
        (stepper, *others), constants.scalars, constants.fields, batched=True
    )
    return (batch.windows, *bound)
