"""Networks conditioned on per-trajectory constants, and how they meet the batch.

A [`ConditionedNetwork`][trainax_fm.ConditionedNetwork] wraps any network and feeds it
its input combined with constants (scalars such as a diffusivity, fields such as a
mask). It may sit anywhere in a stepper (around the network of a plain stepper, of a
`flow.ConditionalVelocity`, of a flow map). Training and rollouts *bind* it to the
constants of the samples at hand: `bind_constants` replaces every conditioned network
of a PyTree by one holding those constants, so configurations keep calling a stepper
with one state. In a minibatch the bound constants carry the batch axis, and
`vmap_over_samples` maps them together with the states.
"""

from typing import Any, Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree


def append_constant_channels(
    state: Float[Array, "channels ..."],
    scalars: Optional[Float[Array, " num_scalars"]],
    fields: Optional[Float[Array, "num_fields ..."]],
) -> Float[Array, "channels_in ..."]:
    """The default way to combine a state with its constants: extra channels.

    Each scalar becomes one constant channel (broadcast over the spatial axes), each
    constant field one channel; they come first, then the network's own input, so
    `[scalars, fields, input]` on axis 0. Putting them first keeps them in place when
    [`trainax_fm.flow.extend_input_channels`][] appends a channel at the end (as flow
    maps and step-size inputs do).

    **Arguments:**

    - `state`: the network's own input `(C, *spatial)` (an ODE state is `(C,)`).
    - `scalars`: `(P,)` constant scalars or `None`.
    - `fields`: `(F, *spatial)` constant fields or `None`.

    **Returns:**

    - `(P + F + C, *spatial)`.
    """
    parts = []
    if scalars is not None:
        scalars = jnp.asarray(scalars, dtype=state.dtype)
        parts.append(
            jnp.broadcast_to(
                scalars.reshape((-1,) + (1,) * (state.ndim - 1)),
                scalars.shape[:1] + tuple(state.shape[1:]),
            )
        )
    if fields is not None:
        fields = jnp.asarray(fields, dtype=state.dtype)
        if fields.shape[1:] != state.shape[1:]:
            raise ValueError(
                f"constant fields of shape {tuple(fields.shape)} cannot be appended to an "
                f"input of shape {tuple(state.shape)}: their spatial axes must match "
                "(fields are `(F, *spatial)` with the resolution of the states)."
            )
        parts.append(fields)
    return jnp.concatenate(parts + [state], axis=0)


def conditioned_channels(num_channels: int, num_scalars: int = 0, num_fields: int = 0) -> int:
    """Input channels of a network under [`trainax_fm.ConditionedNetwork`][] with the
    default combination: `num_scalars + num_fields + num_channels`.

    **Arguments:**

    - `num_channels`: the channels of the wrapped network's own input.
    - `num_scalars`: `P`, constant scalars per trajectory.
    - `num_fields`: `F`, constant fields per trajectory.

    **Returns:**

    - The number of input channels (input features of an MLP for ODE states).
    """
    counts = {"num_channels": num_channels, "num_scalars": num_scalars, "num_fields": num_fields}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be a non-negative int, got {value!r}.")
    return num_scalars + num_fields + num_channels


class SampleConstants(eqx.Module):
    """The constants a conditioned network is bound to: scalars `(P,)` and fields
    `(F, *spatial)`, each `None` when absent. `batched=True`: they carry a leading
    minibatch axis (one entry per sample), which `vmap_over_samples` maps."""

    scalars: Optional[Array]
    fields: Optional[Array]
    batched: bool = eqx.field(static=True, default=False)


def _is_constants(node: Any) -> bool:
    return isinstance(node, SampleConstants)


def _is_batched_constants(node: Any) -> bool:
    return isinstance(node, SampleConstants) and node.batched


class ConditionedNetwork(eqx.Module):
    """A network that also sees constants of its trajectory (physical parameters,
    geometry, masks): `network(combine(x, scalars, fields))`.

    Wrap the network of a stepper (or of a `flow.ConditionalVelocity`) with it and
    train on [`trainax_fm.ConditionedTrajectories`][]: every configuration then calls
    the stepper with the constants of each window's trajectory. `trainax_fm.rollout`
    takes them as `constant_scalars=` / `constant_fields=`. Calling it unbound (with no
    constants) is an error.

    **Arguments:**

    - `network`: any callable, e.g. an `eqx.Module` whose input has
        [`trainax_fm.conditioned_channels`][] channels under the default `combine`.
    - `combine`: `combine(x, scalars, fields)` builds the network input from its own
        input `x` and the constants (`None` where absent); default
        [`trainax_fm.append_constant_channels`][]. It may be an `eqx.Module` with
        parameters (they are trained) and may return any PyTree the network accepts.
    """

    network: Callable
    combine: Callable
    constants: Optional[SampleConstants]

    def __init__(
        self,
        network: Callable,
        *,
        combine: Callable = append_constant_channels,
        constants: Optional[SampleConstants] = None,
    ):
        if not callable(network):
            raise TypeError(
                f"`network` must be callable (an eqx.Module), got {type(network).__name__}."
            )
        if not callable(combine):
            raise TypeError(
                "`combine` must be a callable `combine(x, scalars, fields)`, got "
                f"{type(combine).__name__}."
            )
        if constants is not None and not isinstance(constants, SampleConstants):
            raise TypeError(
                f"`constants` must be SampleConstants or None, got {type(constants).__name__}."
            )
        self.network = network
        self.combine = combine
        self.constants = constants

    def __call__(self, x, *args, **kwargs):
        """`network(combine(x, scalars, fields), *args, **kwargs)` with the bound constants."""
        if self.constants is None:
            raise ValueError(
                "This ConditionedNetwork is not bound to constants. Train it on "
                "`trainax_fm.ConditionedTrajectories(...)`, roll it out with "
                "`trainax_fm.rollout(..., constant_scalars=..., constant_fields=...)`, or "
                "bind it yourself with `trainax_fm.bind_constants(stepper, scalars, fields)`."
            )
        inputs = self.combine(x, self.constants.scalars, self.constants.fields)
        return self.network(inputs, *args, **kwargs)


def _is_conditioned(node: Any) -> bool:
    return isinstance(node, ConditionedNetwork)


def count_conditioned(tree: PyTree) -> int:
    """How many `ConditionedNetwork`s `tree` holds."""
    nodes = jtu.tree_leaves(tree, is_leaf=_is_conditioned)
    return sum(_is_conditioned(node) for node in nodes)


def bind_constants(
    tree: PyTree,
    scalars: Optional[Float[Array, "... num_scalars"]] = None,
    fields: Optional[Float[Array, "num_fields ..."]] = None,
    *,
    batched: bool = False,
) -> PyTree:
    """`tree` with every [`trainax_fm.ConditionedNetwork`][] bound to these constants.

    **Arguments:**

    - `tree`: a stepper (or any PyTree) holding conditioned networks.
    - `scalars`: `(P,)` constant scalars of one trajectory, or `None`.
    - `fields`: `(F, *spatial)` constant fields of one trajectory, or `None`.
    - `batched`: the constants carry a leading minibatch axis, one entry per sample
        (what the training engine binds); configurations then map them with the
        states.

    **Returns:**

    - The same PyTree, its conditioned networks bound (a bound stepper maps one state
      to the next like any other).
    """
    constants = SampleConstants(scalars, fields, batched)

    def bind(node):
        if _is_conditioned(node):
            return ConditionedNetwork(node.network, combine=node.combine, constants=constants)
        return node

    return jtu.tree_map(bind, tree, is_leaf=_is_conditioned)


class NetworkInputError(ValueError):
    """A model failed on the per-sample inputs a configuration gave it (typically a
    network built for other channels or dimensions than the data's). The trainers
    turn it into a message about the data (see `check_stepper_fits_data`).

    **Arguments:**

    - `name`: what failed, e.g. `"stepper"` or `"ref_stepper"`.
    - `input_shapes`: the shapes of its per-sample array inputs.
    - `reason`: the underlying error message.
    """

    def __init__(self, name: str, input_shapes: list, reason: str):
        self.name, self.input_shapes, self.reason = name, input_shapes, reason
        shapes = ", ".join(str(shape) for shape in input_shapes)
        super().__init__(f"`{name}` failed on an input of shape {shapes}: {reason}")


def call_model(model: Callable, *args):
    """`model(*args)`: the function `vmap_over_samples` maps to evaluate a model."""
    return model(*args)


def vmap_over_samples(fn: Callable, model: PyTree, *batched: PyTree, name: str = "stepper"):
    """`jax.vmap` of `fn(model, *batched)` over the leading axis of `batched`.

    Constants bound with a batch axis (a minibatch's) are mapped along with the
    states, so each sample's stepper sees its own trajectory's constants; everything
    else in `model` is shared. Without bound constants this is `jax.vmap` itself.
    A shape or type error of the call is raised as a `NetworkInputError` naming
    `name` and the per-sample input shapes (JAX's own messages name neither).
    """

    def guarded(model, *xs):
        try:
            return fn(model, *xs)
        except NetworkInputError:
            raise
        except (TypeError, ValueError) as error:
            shapes = [tuple(x.shape) for x in jtu.tree_leaves(xs) if hasattr(x, "shape")]
            raise NetworkInputError(name, shapes[:1], " ".join(map(str, error.args))) from error

    constants, shared = eqx.partition(
        model, _is_batched_constants, is_leaf=_is_constants
    )
    if not jtu.tree_leaves(constants):
        return jax.vmap(lambda *xs: guarded(model, *xs))(*batched)

    def one(sample_constants, *xs):
        return guarded(eqx.combine(sample_constants, shared, is_leaf=_is_constants), *xs)

    return jax.vmap(one)(constants, *batched)


def select_samples(model: PyTree, rows: slice) -> PyTree:
    """`model` with the per-sample constants it is bound to cut to the samples `rows`
    (to evaluate it on part of a minibatch with `vmap_over_samples`)."""
    constants, shared = eqx.partition(model, _is_batched_constants, is_leaf=_is_constants)
    constants = jtu.tree_map(lambda array: array[rows], constants)
    return eqx.combine(constants, shared, is_leaf=_is_constants)
