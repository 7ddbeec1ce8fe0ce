"""Augmentations for many-system training on state vectors: random affine maps, random
convex combinations of channels, and delay (Takens) embeddings of one channel."""

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._base import BaseConfiguration
from ._window_augmentation import AbstractWindowAugmentation, check_probability
from ._wrapper import check_wrapped


def _check_nonnegative_float(value, name: str, *, positive: bool) -> float:
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a finite number {bound}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (positive and value == 0.0):
        raise ValueError(f"`{name}` must be a finite number {bound}, got {value!r}.")
    return value


def _channel_map(
    matrix: Float[Array, "channels channels"], window: Float[Array, "window channels *spatial"]
) -> Float[Array, "window channels *spatial"]:
    """`matrix` applied to the channel vector of every time level (and grid point)."""
    return jnp.einsum("ij,tj...->ti...", matrix, window)


class RandomAffine(AbstractWindowAugmentation):
    r"""Random affine maps of the state, `x -> A x + b`, for any configuration.

    Each window is transformed with probability `probability` by its own map, the same
    for all its time levels (and all grid points of a field): `A` has i.i.d. entries
    $\mathcal{N}(0, 1) / \sqrt{C}$ and `b` i.i.d. entries
    $\mathcal{N}(0, \text{bias\_std}^2)$. If `x(t)` solves `dx/dt = f(x)` then
    `y = A x + b` solves `dy/dt = A f(A^{-1}(y - b))`: the transformed window is a
    trajectory of another (almost surely well-defined) system, which widens the set of
    dynamics a many-system forecaster sees. The channel count `C` is unchanged (for a
    catalogue, its fixed number of channels).

    Draws: with `transform_key` of a window as derived in
    [`trainax_fm.configuration.AbstractWindowAugmentation`][],
    `matrix_key, bias_key = jax.random.split(transform_key)`,
    `A = jax.random.normal(matrix_key, (C, C)) / sqrt(C)` and
    `b = bias_std * jax.random.normal(bias_key, (C,))`.

    **Arguments:**

    - `configuration`: the configuration to train on transformed windows.
    - `probability`: the chance that a window is transformed (default 0.2).
    - `bias_std`: the standard deviation of the offset `b` (default 0.1; 0 for linear
        maps).
    - `num_output_steps`: the trainer's `k` when it trains on blocks of `k` states
        (see [`trainax_fm.configuration.AbstractWindowAugmentation`][]).
    """

    configuration: BaseConfiguration
    probability: float = eqx.field(static=True)
    bias_std: float = eqx.field(static=True)

    def __init__(
        self,
        configuration: BaseConfiguration,
        probability: float = 0.2,
        *,
        bias_std: float = 0.1,
        num_output_steps: int = 1,
    ):
        self.configuration = check_wrapped(configuration)
        self.num_output_steps = num_output_steps
        self.probability = check_probability(probability)
        self.bias_std = _check_nonnegative_float(bias_std, "bias_std", positive=False)

    def transform_window(
        self, window: Float[Array, "window channels *spatial"], key: PRNGKeyArray
    ) -> Float[Array, "window channels *spatial"]:
        num_channels = window.shape[1]
        matrix_key, bias_key = jax.random.split(key)
        matrix = jax.random.normal(matrix_key, (num_channels, num_channels), window.dtype)
        matrix = matrix / jnp.sqrt(jnp.asarray(num_channels, window.dtype))
        bias = self.bias_std * jax.random.normal(bias_key, (num_channels,), window.dtype)
        shape = (1, num_channels) + (1,) * (window.ndim - 2)
        return _channel_map(matrix, window) + bias.reshape(shape)


class RandomConvexCombination(AbstractWindowAugmentation):
    r"""Random convex combinations of the channels, `x -> W x`, for any configuration.

    Each window is transformed with probability `probability` by its own matrix `W`,
    the same for all its time levels (and grid points): every row of `W` is drawn from
    a Dirichlet distribution with all parameters equal to `concentration`, so the rows
    are non-negative and sum to 1 and every new channel is a weighted average of the
    old ones (it stays within their range). Large `concentration` gives rows close to
    uniform averages, small ones rows close to picking one channel.

    Draws: with `transform_key` of a window as derived in
    [`trainax_fm.configuration.AbstractWindowAugmentation`][],
    `W = jax.random.dirichlet(transform_key, jnp.full((C,), concentration), (C,))`.

    **Arguments:**

    - `configuration`: the configuration to train on transformed windows.
    - `probability`: the chance that a window is transformed (default 0.2).
    - `concentration`: the Dirichlet parameter, `> 0` (default 1: rows uniform on the
        simplex).
    - `num_output_steps`: the trainer's `k` when it trains on blocks of `k` states
        (see [`trainax_fm.configuration.AbstractWindowAugmentation`][]).
    """

    configuration: BaseConfiguration
    probability: float = eqx.field(static=True)
    concentration: float = eqx.field(static=True)

    def __init__(
        self,
        configuration: BaseConfiguration,
        probability: float = 0.2,
        *,
        concentration: float = 1.0,
        num_output_steps: int = 1,
    ):
        self.configuration = check_wrapped(configuration)
        self.num_output_steps = num_output_steps
        self.probability = check_probability(probability)
        self.concentration = _check_nonnegative_float(
            concentration, "concentration", positive=True
        )

    def transform_window(
        self, window: Float[Array, "window channels *spatial"], key: PRNGKeyArray
    ) -> Float[Array, "window channels *spatial"]:
        num_channels = window.shape[1]
        alpha = jnp.full((num_channels,), self.concentration, window.dtype)
        matrix = jax.random.dirichlet(key, alpha, (num_channels,), window.dtype)
        return _channel_map(matrix, window)


class DelayEmbedding(AbstractWindowAugmentation):
    r"""Delay (Takens) coordinates of one random channel in place of the state, for any
    configuration.

    Each window is transformed with probability `probability`: one channel `j` and one
    delay `tau` in `{1, ..., max_delay}` are drawn (uniformly), and the `C` channels at
    time level `t` become
    `(x_j(t), x_j(t - tau), x_j(t - 2 tau), ..., x_j(t - (C - 1) tau))`.
    By Takens' theorem such coordinates of a generic observable reconstruct the
    attractor (up to a smooth change of coordinates), so the window is again a
    trajectory of an equivalent system seen through other coordinates.

    **Edge padding.** The window holds only its own `W` levels: a delayed time before
    the window's start (`t - k tau < 0`) takes the window's first value `x_j(0)`. The
    first `(C - 1) tau` levels of a window therefore hold padded coordinates; use
    windows longer than `(C - 1) max_delay` where this matters. It needs at least two
    channels (`C >= 2`); `C` is unchanged (for a catalogue, its fixed number of
    channels).

    Draws: with `transform_key` of a window as derived in
    [`trainax_fm.configuration.AbstractWindowAugmentation`][],
    `channel_key, delay_key = jax.random.split(transform_key)`,
    `j = jax.random.randint(channel_key, (), 0, C)` and
    `tau = jax.random.randint(delay_key, (), 1, max_delay + 1)`.

    **Arguments:**

    - `configuration`: the configuration to train on transformed windows.
    - `probability`: the chance that a window is transformed (default 0.2).
    - `max_delay`: the largest delay, in states (default 1).
    - `num_output_steps`: the trainer's `k` when it trains on blocks of `k` states
        (see [`trainax_fm.configuration.AbstractWindowAugmentation`][]).
    """

    configuration: BaseConfiguration
    probability: float = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)

    def __init__(
        self,
        configuration: BaseConfiguration,
        probability: float = 0.2,
        *,
        max_delay: int = 1,
        num_output_steps: int = 1,
    ):
        self.configuration = check_wrapped(configuration)
        self.num_output_steps = num_output_steps
        self.probability = check_probability(probability)
        self.max_delay = check_positive_int(max_delay, "max_delay")

    def transform_window(
        self, window: Float[Array, "window channels *spatial"], key: PRNGKeyArray
    ) -> Float[Array, "window channels *spatial"]:
        num_levels, num_channels = window.shape[:2]
        if num_channels < 2:
            raise ValueError(
                f"DelayEmbedding needs states with at least 2 channels (one channel and "
                f"its delays), got windows of shape {window.shape} (C = {num_channels}). "
                "Store more channels or drop DelayEmbedding."
            )
        channel_key, delay_key = jax.random.split(key)
        channel = jax.random.randint(channel_key, (), 0, num_channels)
        delay = jax.random.randint(delay_key, (), 1, self.max_delay + 1)
        series = jnp.take(window, channel, axis=1)  # (W, *spatial)
        # Level t, coordinate k reads level max(t - k tau, 0): the edge padding.
        times = jnp.arange(num_levels)[:, None] - delay * jnp.arange(num_channels)[None, :]
        return series[jnp.maximum(times, 0)]
