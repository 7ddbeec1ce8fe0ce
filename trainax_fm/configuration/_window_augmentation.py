"""`AbstractWindowAugmentation`: one random transform per window, applied with a
probability; the base of the augmentations of many-system training and of users' own."""

import abc
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._base import BaseConfiguration, Windows
from ._wrapper import AbstractAugmentation


def check_probability(probability, name: str = "probability") -> float:
    """`probability` as a float in [0, 1], or a clear error."""
    if isinstance(probability, bool) or not isinstance(probability, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number in [0, 1], got {probability!r} of type "
            f"{type(probability).__name__}."
        )
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1] (the chance that a window is transformed), "
            f"got {probability!r}."
        )
    return float(probability)


class AbstractWindowAugmentation(AbstractAugmentation):
    r"""Transform each window of a minibatch, with probability `probability`, by its own
    random map, before the wrapped configuration sees it.

    The same map acts on every time level of a window, so its inputs and targets are
    transformed alike and a window stays a trajectory (of a transformed system). Shapes
    never change: a window `(W, C, *spatial)` stays `(W, C, *spatial)` (under `jit`
    shapes are static; for a catalogue of systems the fixed channel count of the
    catalogue sets `C`).

    **Key derivation.** With the update's key split by the wrapper into
    `augmentation_key, inner_key = jax.random.split(key)` (the wrapped configuration
    gets `inner_key`), window `b` of a minibatch of `B` uses
    `window_key = jax.random.split(augmentation_key, B)[b]` and
    `apply_key, transform_key = jax.random.split(window_key)`; it is transformed iff
    `jax.random.bernoulli(apply_key, probability)`, by
    `transform_window(window, transform_key)`.

    **Your own augmentation.** Subclass, declare `configuration` and `probability`
    (and your hyperparameters, as static fields) and implement one method,
    `transform_window(window, key)`, for one window `(W, C, *spatial)`:

    ```python
    import equinox as eqx
    import jax
    import trainax_fm as tx


    class RandomScale(tx.configuration.AbstractWindowAugmentation):
        configuration: tx.configuration.BaseConfiguration
        probability: float = eqx.field(static=True)
        max_scale: float = eqx.field(static=True)

        def __init__(self, configuration, probability=0.2, max_scale=2.0):
            self.configuration = configuration
            self.probability = probability
            self.max_scale = max_scale

        def transform_window(self, window, key):
            scale = jax.random.uniform(key, (), minval=1.0, maxval=self.max_scale)
            return scale * window


    configuration = RandomScale(tx.configuration.Supervised(3), probability=0.5)
    ```

    The windows must be one array `(B, W, C, *spatial)` (trajectories with constants,
    `ConditionedTrajectories`, are not augmented by these maps).

    **Blocks.** A trainer with `num_output_steps=k` hands configurations windows of
    blocks, `k` states stacked on the channel axis, `(B, W, k*C, *spatial)`. Pass the
    same `num_output_steps=k` to the augmentation: it then unstacks every window into
    its `W*k` states `(W*k, C, *spatial)` (in time order) before `transform_window`
    and stacks them back after, so a map of the `C` channels acts on each state and a
    delay counts states, not blocks. Without it, a map would mix the states of a block.
    """

    probability: eqx.AbstractVar[float]
    num_output_steps: int = eqx.field(default=1, static=True, kw_only=True)

    def __check_init__(self):
        # Also guards users' subclasses, whatever their `__init__` stores.
        check_probability(self.probability)
        check_positive_int(self.num_output_steps, "num_output_steps")
        if not isinstance(self.configuration, BaseConfiguration):
            raise TypeError(
                f"{type(self).__name__}: `configuration` must be a trainax_fm "
                f"configuration (e.g. Supervised()), got {type(self.configuration).__name__}."
            )

    @abc.abstractmethod
    def transform_window(
        self, window: Float[Array, "window channels *spatial"], key: PRNGKeyArray
    ) -> Float[Array, "window channels *spatial"]:
        """The transformed window (same shape and dtype).

        **Arguments:**

        - `window`: one window `(W, C, *spatial)`.
        - `key`: this window's `transform_key` (see the class).

        **Returns:**

        - The window under this augmentation's random map.
        """

    def augment(self, data: Windows, key: PRNGKeyArray) -> Windows:
        """Each window of `data` transformed with probability `probability`.

        **Arguments:**

        - `data`: windows `(B, W, C, *spatial)`.
        - `key`: the augmentation key (`augmentation_key` in the class).

        **Returns:**

        - The windows, transformed or not, same shapes.
        """
        name = type(self).__name__
        if not isinstance(data, (jax.Array, jnp.ndarray)) or data.ndim < 3:
            raise TypeError(
                f"{name} transforms windows given as one array (B, W, C, *spatial); got "
                f"{type(data).__name__}"
                + (f" of shape {tuple(data.shape)}" if hasattr(data, "shape") else "")
                + ". Train on plain trajectories (S, T, C, *spatial), not a PyTree or "
                "trajectories with constants."
            )

        k = self.num_output_steps
        if data.shape[2] % k:
            raise ValueError(
                f"{name}(num_output_steps={k}) needs windows of blocks of {k} states "
                f"stacked on the channel axis, but the windows have {data.shape[2]} "
                "channels, not a multiple of it. Pass the trainer's num_output_steps."
            )

        def one(window_key, blocks):
            apply_key, transform_key = jax.random.split(window_key)
            # Blocks (W, k*C, ...) -> states (W*k, C, ...), time-major.
            window = blocks.reshape((blocks.shape[0] * k, blocks.shape[1] // k) + blocks.shape[2:])
            transformed = self.transform_window(window, transform_key)
            if transformed.shape != window.shape or transformed.dtype != window.dtype:
                raise ValueError(
                    f"{name}.transform_window must keep the window's shape and dtype "
                    f"{window.shape} {window.dtype}, got {transformed.shape} "
                    f"{transformed.dtype}."
                )
            apply = jax.random.bernoulli(apply_key, self.probability)
            return jnp.where(apply, transformed, window).reshape(blocks.shape)

        window_keys = jax.random.split(key, data.shape[0])
        return jax.vmap(one)(window_keys, data)
