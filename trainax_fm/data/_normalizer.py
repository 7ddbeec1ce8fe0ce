"""Per-channel normalisation statistics of training trajectories."""

from typing import Optional

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree

from .._argument_checks import check_bool, is_traced


class Normalizer(eqx.Module):
    """Per-channel mean and standard deviation of states (and of their increments).

    Built from training data with [`trainax_fm.Normalizer.fit`][]. Every statistic is
    a PyTree with the structure of one state whose leaves are shaped
    `(C, 1, ..., 1)`: one value per channel, with a singleton axis per spatial axis,
    so it broadcasts against a state `(C, *spatial)` and against anything with leading
    axes, such as windows `(B, W, C, *spatial)` or trajectories `(S, T, C, *spatial)`.

    The statistics are data, not parameters: the training engine never trains them
    (see [`trainax_fm.trainable_arrays`][]), and they are saved with the stepper that
    holds them ([`trainax_fm.save_stepper`][], checkpoints).

    **Arguments:**

    - `mean`, `std`: the states' per-channel mean and standard deviation.
    - `increment_mean`, `increment_std`: the same for the increments
        `u_{t+1} - u_t` (needed by residual steppers); `None` if not fitted.
    """

    mean: PyTree[Float[Array, " channels *ones"]]
    std: PyTree[Float[Array, " channels *ones"]]
    increment_mean: Optional[PyTree[Float[Array, " channels *ones"]]] = None
    increment_std: Optional[PyTree[Float[Array, " channels *ones"]]] = None

    def __check_init__(self):
        structure = jtu.tree_structure(self.mean)
        pairs = [("std", self.std)]
        if (self.increment_mean is None) != (self.increment_std is None):
            raise ValueError(
                "`increment_mean` and `increment_std` must be given together (both "
                "None, or both statistics of the increments)."
            )
        if self.increment_mean is not None:
            pairs += [
                ("increment_mean", self.increment_mean), ("increment_std", self.increment_std)
            ]
        for name, tree in pairs:
            if jtu.tree_structure(tree) != structure:
                raise ValueError(
                    f"`{name}` must have the structure of `mean` ({structure}), got "
                    f"{jtu.tree_structure(tree)}."
                )
            for m, x in zip(jtu.tree_leaves(self.mean), jtu.tree_leaves(tree)):
                if jnp.shape(m) != jnp.shape(x):
                    raise ValueError(
                        f"`{name}` leaves must have the shapes of `mean`'s, got "
                        f"{jnp.shape(x)} for {jnp.shape(m)}."
                    )
        for leaf in jtu.tree_leaves(self.mean):
            if jnp.ndim(leaf) < 1:
                raise ValueError(
                    "Normalizer statistics are shaped (C, 1, ..., 1), one value per "
                    "channel; got a scalar. Use `Normalizer.fit(trajectories)`."
                )
        stds = [self.std] + ([] if self.increment_std is None else [self.increment_std])
        if not is_traced(stds):
            for leaf in jtu.tree_leaves(stds):
                if not bool(jnp.all(jnp.asarray(leaf) > 0)):
                    raise ValueError(
                        "Normalizer standard deviations must be positive, got "
                        f"{leaf}. `Normalizer.fit` uses 1 for constant channels."
                    )

    @classmethod
    def fit(
        cls,
        train_trajectories: PyTree[Float[Array, "num_trajectories time channels ..."]],
        *,
        increments: bool = False,
    ) -> "Normalizer":
        """Per-channel statistics of training trajectories.

        Mean and (population) standard deviation of every channel over trajectories,
        time and space; with `increments=True` also of the increments
        `u_{t+1} - u_t` within each trajectory (for residual steppers). A channel that
        is constant over the data gets mean = that constant and standard deviation 1,
        so it normalises to exactly 0 and nothing is divided by zero. Every leaf of a
        PyTree of trajectories gets its own statistics.

        Fit on the training trajectories only, never on validation or test data.

        **Arguments:**

        - `train_trajectories`: an array `(S, T, C, *spatial)` or a PyTree of them.
        - `increments`: also fit the statistics of the increments (needs `T >= 2`).

        **Returns:**

        - The [`trainax_fm.Normalizer`][].
        """
        check_bool(increments, "increments")
        leaves, treedef = jtu.tree_flatten(train_trajectories)
        if not leaves:
            raise ValueError("`train_trajectories` holds no arrays.")
        for index, leaf in enumerate(leaves):
            shape = jnp.shape(leaf)
            name = (
                "`train_trajectories`" if len(leaves) == 1
                else f"leaf {index} of `train_trajectories`"
            )
            if len(shape) < 3:
                raise ValueError(
                    f"{name} must be shaped (S, T, C, *spatial) (trajectories, time, "
                    f"channels, space), got shape {shape}. Add the missing axes, e.g. "
                    "`data[:, :, None]` for one channel."
                )
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                raise TypeError(
                    f"{name} must hold floating-point values, got {jnp.result_type(leaf)}."
                )
            if increments and shape[1] < 2:
                raise ValueError(
                    f"{name} has {shape[1]} time step(s); increments `u_(t+1) - u_t` "
                    "need at least 2. Pass longer trajectories or `increments=False`."
                )
        stats = [_channel_statistics(jnp.asarray(leaf)) for leaf in leaves]
        mean, std = (jtu.tree_unflatten(treedef, [s[i] for s in stats]) for i in (0, 1))
        if not increments:
            return cls(mean, std)
        increment_stats = [
            _channel_statistics(jnp.diff(jnp.asarray(leaf), axis=1)) for leaf in leaves
        ]
        increment_mean, increment_std = (
            jtu.tree_unflatten(treedef, [s[i] for s in increment_stats]) for i in (0, 1)
        )
        return cls(mean, std, increment_mean, increment_std)

    @property
    def has_increments(self) -> bool:
        """Whether the increments' statistics were fitted (residual steppers need them)."""
        return self.increment_mean is not None

    @property
    def num_channels(self) -> PyTree[int]:
        """The channel count of every leaf of a state (a PyTree of ints)."""
        return jtu.tree_map(lambda m: int(jnp.shape(m)[0]), self.mean)

    def normalize(self, data: PyTree[Float[Array, "*leading_and_state"]]) -> PyTree:
        """`(u - mean) / std` per channel, for states with any leading axes."""
        return _apply(lambda x, m, s: (x - m) / s, data, self.mean, self.std, "data")

    def denormalize(self, data: PyTree[Float[Array, "*leading_and_state"]]) -> PyTree:
        """`z * std + mean` per channel: the inverse of `normalize`."""
        return _apply(lambda z, m, s: z * s + m, data, self.mean, self.std, "data")

    def denormalize_increment(self, data: PyTree) -> PyTree:
        """`o * increment_std + increment_mean`: a normalised increment in physical units."""
        if not self.has_increments:
            raise ValueError(
                "this Normalizer has no increment statistics; fit it with "
                "`Normalizer.fit(trajectories, increments=True)`."
            )
        return _apply(
            lambda o, m, s: o * s + m, data, self.increment_mean, self.increment_std, "increment"
        )

    def scale(self, data: PyTree) -> PyTree:
        """`d / std` per channel: a difference of states in normalised units."""
        return _apply(lambda d, m, s: d / s, data, self.mean, self.std, "difference")


def _channel_statistics(x: Float[Array, "S T C ..."]):
    """Mean and std per channel `(C, 1, ..., 1)`; constant channels get std 1."""
    axes = (0, 1) + tuple(range(3, x.ndim))
    x = x.astype(jnp.result_type(float, x.dtype))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True))
    low = jnp.min(x, axis=axes, keepdims=True)
    constant = low == jnp.max(x, axis=axes, keepdims=True)
    # The rounded mean of a constant channel need not equal the constant, which would
    # leave a tiny std to divide by: use the constant itself and std 1 (exact zeros).
    mean = jnp.where(constant, low, mean)
    std = jnp.where(constant | (std == 0), 1.0, std)
    return mean[0, 0], std[0, 0]


def _apply(function, data, mean, std, what: str):
    structure = jtu.tree_structure(mean)
    if jtu.tree_structure(data) != structure:
        raise ValueError(
            f"the {what} must have the PyTree structure of the states the Normalizer "
            f"was fitted on ({structure}), got {jtu.tree_structure(data)}."
        )

    def one(x, m, s):
        x = jnp.asarray(x)
        axis = x.ndim - m.ndim
        if axis < 0 or x.shape[axis] != m.shape[0]:
            found = "no channel axis" if axis < 0 else f"{x.shape[axis]} channels"
            raise ValueError(
                f"the {what} has shape {x.shape} ({found} at axis {axis} for states "
                f"with {m.ndim - 1} spatial axes), but the Normalizer's statistics "
                f"have {m.shape[0]} channels (shape {m.shape}). Fit the Normalizer on "
                "trajectories with the stepper's channels, `Normalizer.fit(train_data)`."
            )
        # Explicit leading axes: works under `jax_numpy_rank_promotion="raise"`.
        expand = lambda a: a.astype(x.dtype).reshape((1,) * axis + a.shape)  # noqa: E731
        return function(x, expand(m), expand(s))

    return jtu.tree_map(one, data, mean, std)

