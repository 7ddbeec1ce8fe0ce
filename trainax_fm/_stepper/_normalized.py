"""A stepper that works in normalised units inside and in physical units outside."""

from typing import Any, Callable, Optional

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree

from .._argument_checks import check_bool
from ..data._normalizer import Normalizer
from ._loss_weights import WithLossWeights
from ._protocol import needs_key


class NormalizedStepper(eqx.Module):
    """Wrap a network so that it sees normalised states and returns physical ones.

    Called on a physical state `u` (or `H` states stacked on the channel axis), it
    normalises the input with the [`trainax_fm.Normalizer`][], applies the network and
    maps the output back to physical units:

    - `residual=False`: the network predicts the next normalised state `o`;
      `u_next = o * std + mean`.
    - `residual=True`: the network predicts the normalised increment `o`;
      `u_next = u + o * increment_std + increment_mean` (`u` the latest input state).

    Rollouts, metrics, plots and saved files therefore see physical units. Training
    does not: when the trained stepper is a `NormalizedStepper`, every trainer
    evaluates its configuration on normalised windows with
    [`trainax_fm.NormalizedStepper.normalized_space`][] (the network for
    `residual=False`), a reference stepper `normalize ∘ ref_stepper ∘ denormalize` and
    a residuum `residuum_fn(denormalize(z_next), denormalize(z_prev)) / std`. The loss
    is in normalised units and training equals training the bare network on
    `normalizer.normalize(data)`. The statistics are never trained.

    **Arguments:**

    - `network`: the network, mapping a normalised state (or stacked history) to the
        next normalised state (`residual=False`) or to a normalised increment.
    - `normalizer`: statistics fitted on the training data (with `increments=True`
        for `residual=True`).
    - `residual`: whether the network predicts increments.
    """

    network: Any
    normalizer: Normalizer
    residual: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.normalizer, Normalizer):
            raise TypeError(
                "`normalizer` must be a trainax_fm.Normalizer (from "
                f"`tx.Normalizer.fit(train_data)`), got {type(self.normalizer).__name__}."
            )
        check_bool(self.residual, "residual")
        if isinstance(self.network, (NormalizedStepper, WithLossWeights)):
            raise TypeError(
                f"`network` is a {type(self.network).__name__}; wrap the bare network: "
                "`WithLossWeights(NormalizedStepper(network, normalizer), names)`, "
                "never the other way round, and normalise once."
            )
        if not callable(self.network):
            raise TypeError(f"`network` must be callable, got {type(self.network).__name__}.")
        if self.residual and not self.normalizer.has_increments:
            raise ValueError(
                "`residual=True` needs the statistics of the increments; fit the "
                "normalizer with `tx.Normalizer.fit(train_data, increments=True)`."
            )
        _check_network_channels(self.network, self.normalizer)

    @property
    def needs_key(self) -> bool:
        """Whether the wrapped network is stochastic (see [`trainax_fm.rollout`][])."""
        return needs_key(self.network)

    def __call__(self, state: PyTree[Float[Array, "channels ..."]], **kwargs) -> PyTree:
        """The next physical state; keyword arguments (e.g. `key`) go to the network."""
        output = self.network(normalize_history(self.normalizer, state), **kwargs)
        if self.residual:
            return add(
                latest_state(self.normalizer, state),
                self.normalizer.denormalize_increment(output),
            )
        return self.normalizer.denormalize(output)

    def normalized_space(self) -> Callable:
        """The stepper in normalised units: normalised state(s) to the next normalised
        state. This is what the configurations train (`network` itself for
        `residual=False`)."""
        if not self.residual:
            return self.network
        return ResidualInNormalizedSpace(self.network, self.normalizer)


class ResidualInNormalizedSpace(eqx.Module):
    """`z_next = z + (o * increment_std + increment_mean) / std`, the residual update
    written in normalised units (`z = (u - mean) / std`)."""

    network: Any
    normalizer: Normalizer

    @property
    def needs_key(self) -> bool:
        # A stochastic network stays stochastic in normalised units.
        return needs_key(self.network)

    def __call__(self, state, **kwargs):
        increment = self.normalizer.denormalize_increment(self.network(state, **kwargs))
        return add(latest_state(self.normalizer, state), self.normalizer.scale(increment))


class _ReferenceInNormalizedSpace(eqx.Module):
    """`normalize ∘ ref_stepper ∘ denormalize`."""

    ref_stepper: Any
    normalizer: Normalizer

    def __call__(self, state):
        n = self.normalizer
        return n.normalize(self.ref_stepper(n.denormalize(state)))


class _ResiduumInNormalizedSpace(eqx.Module):
    """The residuum of the physical states, in units of the states' std (a residuum
    such as `u_next - P(u_prev)` is a difference of states: scaled, never shifted, so
    that zero stays zero)."""

    residuum_fn: Any
    normalizer: Normalizer

    def __call__(self, next_states, previous_states):
        n = self.normalizer
        return n.scale(self.residuum_fn(n.denormalize(next_states), n.denormalize(previous_states)))


def to_normalized_space(
    stepper, data, ref_stepper: Optional[Callable], residuum_fn: Optional[Callable]
):
    """What a configuration sees when `stepper` is trained (the one place, used by the
    engine for every trainer): for a [`trainax_fm.NormalizedStepper`][] (also inside
    [`trainax_fm.WithLossWeights`][]) its normalised-space stepper, the normalised
    windows and the reference stepper and residuum in normalised units; anything else
    unchanged."""
    if isinstance(stepper, WithLossWeights):
        inner, data, ref_stepper, residuum_fn = to_normalized_space(
            stepper.stepper, data, ref_stepper, residuum_fn
        )
        return eqx.tree_at(lambda s: s.stepper, stepper, inner), data, ref_stepper, residuum_fn
    if not isinstance(stepper, NormalizedStepper):
        return stepper, data, ref_stepper, residuum_fn
    normalizer = stepper.normalizer
    if ref_stepper is not None:
        ref_stepper = _ReferenceInNormalizedSpace(ref_stepper, normalizer)
    if residuum_fn is not None:
        residuum_fn = _ResiduumInNormalizedSpace(residuum_fn, normalizer)
    return stepper.normalized_space(), normalizer.normalize(data), ref_stepper, residuum_fn


def normalize_history(normalizer: Normalizer, state: PyTree) -> PyTree:
    """Normalise a state, or `H` states stacked on the channel axis, state by state."""
    histories = _split_history(normalizer, state)
    merged = lambda h: h.reshape((-1,) + h.shape[2:])  # noqa: E731
    return jtu.tree_map(merged, normalizer.normalize(histories))


def latest_state(normalizer: Normalizer, state: PyTree) -> PyTree:
    """The last of `H` states stacked on the channel axis (the state itself for H=1)."""
    return jtu.tree_map(lambda h: h[-1], _split_history(normalizer, state))


def add(a: PyTree, b: PyTree) -> PyTree:
    return jtu.tree_map(jnp.add, a, b)


def _split_history(normalizer: Normalizer, state: PyTree) -> PyTree:
    """`(H*C, *spatial) -> (H, C, *spatial)` per leaf, with a clear channel check."""
    if jtu.tree_structure(state) != jtu.tree_structure(normalizer.mean):
        raise ValueError(
            "the state must have the PyTree structure of the data the Normalizer was "
            f"fitted on ({jtu.tree_structure(normalizer.mean)}), got "
            f"{jtu.tree_structure(state)}."
        )

    def split(x, m):
        channels = m.shape[0]
        if jnp.ndim(x) != m.ndim or x.shape[0] % channels != 0:
            raise ValueError(
                f"NormalizedStepper got a state of shape {jnp.shape(x)}, but its "
                f"statistics are for states of {channels} channels and {m.ndim - 1} "
                f"spatial axes (shape {m.shape}): expected (k*{channels}, *spatial) for "
                "k stacked input states. Fit the Normalizer on data with the "
                "stepper's channels."
            )
        return x.reshape((x.shape[0] // channels, channels) + x.shape[1:])

    return jtu.tree_map(split, state, normalizer.mean)


def _check_network_channels(network, normalizer: Normalizer) -> None:
    """Compare the statistics' channel count with the layers whose channels are known
    (equinox convolutions and MLPs on array states); other networks are checked at
    their first call."""
    leaves = jtu.tree_leaves(normalizer.mean)
    if len(leaves) != 1:
        return
    channels, num_axes = leaves[0].shape[0], leaves[0].ndim
    if isinstance(network, eqx.nn.Conv) and network.num_spatial_dims == num_axes - 1:
        sizes = network.in_channels, network.out_channels
    elif isinstance(network, eqx.nn.MLP) and num_axes == 1:
        sizes = network.in_size, network.out_size
    else:
        return
    inputs, outputs = sizes
    if not isinstance(inputs, int) or not isinstance(outputs, int):
        return
    if inputs % channels != 0 or outputs != channels:
        raise ValueError(
            f"the normalizer's statistics have {channels} channels, but `network` takes "
            f"{inputs} input and gives {outputs} output channels (expected a multiple "
            f"of {channels} in and {channels} out). Fit the Normalizer on the training "
            "data of this network."
        )
