import copy
import numbers

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from .._argument_checks import check_positive_int
from ._velocity import ConditionalVelocity

_SUPPORTED = (
    "eqx.nn.Conv (any number of spatial dims, groups=1) and its subclasses, "
    "pdequinox convolutions (PhysicsConv, LinearChannelAdjustBlock), eqx.nn.Linear, and "
    "any network whose first parameter in tree order belongs to one of these layers "
    "(eqx.nn.MLP, eqx.nn.Sequential, pdequinox ConvNet, ClassicUNet, ClassicResNet, "
    "DilatedResNet, ClassicFNO, ...)"
)


def _input_axis_field(layer) -> str | None:
    """Name of the integer field that counts the layer's input channels, if any."""
    for name in ("in_channels", "in_features"):
        if hasattr(layer, name):
            return name
    return None


def _is_input_layer(node) -> bool:
    if not isinstance(node, eqx.Module):
        return False
    weight = getattr(node, "weight", None)
    return (
        eqx.is_array(weight)
        and weight.ndim >= 2
        and _input_axis_field(node) is not None
    )


def _first_layer_path(network):
    """Tree path of the first parameter array, and the layer that owns it (or None)."""
    leaves, _ = jtu.tree_flatten_with_path(network, is_leaf=_is_input_layer)
    for path, leaf in leaves:
        if _is_input_layer(leaf):
            return path, leaf
        if eqx.is_inexact_array(leaf):
            return path, None
    return None, None


def _widen(layer, num_new: int):
    field = _input_axis_field(layer)
    count = getattr(layer, field)
    if not isinstance(count, numbers.Integral) or isinstance(count, bool):
        raise ValueError(
            f"extend_input_channels: the first layer ({type(layer).__name__}) has "
            f"`{field}={count!r}`; only an integer number of input channels/features "
            "can be extended (an eqx.nn.Linear('scalar', ...) has no channel axis)."
        )
    if getattr(layer, "groups", 1) != 1:
        raise ValueError(
            f"extend_input_channels: the first layer ({type(layer).__name__}) is a "
            f"grouped convolution (groups={layer.groups}); only groups=1 is supported. "
            "Use an ungrouped lifting layer."
        )
    weight = layer.weight
    if weight.shape[1] != count:
        raise ValueError(
            f"extend_input_channels: the first layer ({type(layer).__name__}) has "
            f"`{field}={count}` but its weight of shape {tuple(weight.shape)} does not "
            "consume the inputs on axis 1; this layer type is not supported. Supported: "
            + _SUPPORTED
            + "."
        )
    zeros = jnp.zeros((weight.shape[0], num_new) + weight.shape[2:], weight.dtype)
    new_layer = copy.copy(layer)
    object.__setattr__(new_layer, "weight", jnp.concatenate([weight, zeros], axis=1))
    object.__setattr__(new_layer, field, int(count) + num_new)
    return new_layer


def extend_input_channels(network, num_new_channels: int = 1):
    """A copy of `network` that takes `num_new_channels` extra input channels, initially ignored.

    The first layer that consumes the input (the layer owning the first parameter array
    in tree order) gets zero weights for the new channels, appended after the existing
    ones; everything else is copied. So for any input `z`,
    `new_network(concat([z, extra])) == network(z)` at construction, whatever `extra`.

    Supported architectures: eqx.nn.Conv (any number of spatial dims, groups=1) and its
    subclasses, pdequinox convolutions (PhysicsConv, LinearChannelAdjustBlock),
    eqx.nn.Linear, and any network whose first parameter in tree order belongs to one of
    these layers (eqx.nn.MLP, eqx.nn.Sequential, pdequinox ConvNet, ClassicUNet,
    ClassicResNet, DilatedResNet, ClassicFNO, ...). Anything else raises a `ValueError`.

    **Arguments:**

    - `network`: an `eqx.Module` whose input layer is one of the above.
    - `num_new_channels`: how many input channels to append (default 1).

    **Returns:**

    - The widened network (a new PyTree; `network` is unchanged).
    """
    num_new_channels = check_positive_int(num_new_channels, "num_new_channels")
    path, layer = _first_layer_path(network)
    if layer is None:
        where = "it has no parameter arrays" if path is None else (
            f"its first parameter `{jtu.keystr(path)}` does not belong to one"
        )
        raise ValueError(
            f"extend_input_channels cannot find the input layer of a "
            f"{type(network).__name__}: {where}. Supported: {_SUPPORTED}. Fix: build the "
            "network with the extra input channel yourself, or put a supported layer "
            "first."
        )
    widened = _widen(layer, num_new_channels)

    def replace(node):
        return widened if node is layer else node

    new_network = jtu.tree_map(replace, network, is_leaf=lambda node: node is layer)
    # Keep the bookkeeping of a wrapping eqx.nn.MLP (its `in_size`) consistent.
    old_count = getattr(layer, _input_axis_field(layer))
    if new_network is not widened and getattr(new_network, "in_size", None) == old_count:
        new_network = copy.copy(new_network)
        object.__setattr__(new_network, "in_size", old_count + num_new_channels)
    return new_network


def with_step_size_input(velocity: ConditionalVelocity) -> ConditionalVelocity:
    """The velocity with an extra, zero-initialised input channel for the step size `d`.

    The result has `step_size_input=True` and, at construction, returns exactly the
    velocity of `velocity` for every `d`: `new(x, y, t, d) == velocity(x, y, t)`.
    It is the natural initialisation of a progressive-distillation student and of the
    correction network `phi` of a [`trainax_fm.flow.FlowMap`][]. See
    [`trainax_fm.flow.extend_input_channels`][] for the supported architectures.

    **Arguments:**

    - `velocity`: a trained `ConditionalVelocity` with `step_size_input=False`.

    **Returns:**

    - A new `ConditionalVelocity(network_with_one_more_input, step_size_input=True)`.
    """
    if not isinstance(velocity, ConditionalVelocity):
        raise TypeError(
            "`velocity` must be a trainax_fm.flow.ConditionalVelocity, got "
            f"{type(velocity).__name__}. Wrap your network: ConditionalVelocity(net)."
        )
    if velocity.step_size_input:
        raise ValueError(
            "`velocity` already takes the step size (`step_size_input=True`); it needs "
            "no extra channel."
        )
    network = extend_input_channels(velocity.network, 1)
    # A fresh copy of the arrays, so that the new network never aliases the old one.
    network = jtu.tree_map(lambda a: jnp.array(a) if eqx.is_array(a) else a, network)
    return ConditionalVelocity(network, step_size_input=True)
