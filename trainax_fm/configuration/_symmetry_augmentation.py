from collections.abc import Sequence
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_bool
from ._base import BaseConfiguration, Windows
from ._wrapper import AbstractAugmentation, check_wrapped


def _check_indices(values, name: str) -> tuple[int, ...]:
    """`values` as a tuple of distinct non-negative integers."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"`{name}` must be a sequence of integers, got {values!r}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"`{name}` must hold non-negative integers (spatial axes count from 0, the "
                f"first axis after the channels; channels from 0), got {values!r}."
            )
    if len(set(values)) != len(values):
        raise ValueError(f"`{name}` must not repeat an entry, got {values!r}.")
    return tuple(int(v) for v in values)


class SymmetryAugmentation(AbstractAugmentation):
    r"""Random symmetries of a periodic domain for any configuration.

    Before the wrapped configuration sees a minibatch, every window is transformed by its
    own random element of the domain's symmetry group, the same for all its time levels
    (so inputs and targets are transformed alike and a window stays a trajectory of the
    transformed system):

    1. a periodic shift (integer `jnp.roll`) by a uniform number of grid points along
        each of `shift_axes`;
    2. a flip of each of `flip_axes`, each with probability 1/2;
    3. with `rotations=True`, a rotation by a uniform multiple of 90 degrees in the plane
        of the two spatial axes (2D, square grids).

    An emulator of a translation- (reflection-, rotation-) equivariant PDE should commute
    with these maps; training on transformed windows teaches it so from fewer
    trajectories. Use only the symmetries the dynamics have: a flip of an axis along
    which the PDE has an odd derivative term with a fixed sign (an advection with a
    fixed velocity, the Burgers nonlinearity of a scalar field) is not one.

    **Vector fields.** Under a flip of axis `d` the velocity component along `d` changes
    sign. List those channels in `flip_sign_channels` (one sequence per entry of
    `flip_axes`): e.g. a 2D velocity `(u, v)` on channels `(0, 1)` with
    `flip_axes=(0, 1)` takes `flip_sign_channels=((0,), (1,))`. Rotations permute vector
    components, which this wrapper does not do: `rotations=True` is for scalar fields
    only (every channel a scalar) and rejects `flip_sign_channels`.

    Spatial axes count from 0 (the first axis after the channel axis); every leaf of a
    PyTree of windows must share the grid. The draws of window `b` are, with
    `augmentation_key, inner_key = jax.random.split(key)` and
    `window_key = jax.random.split(augmentation_key, B)[b]` and
    `shift_key, flip_key, rotation_key = jax.random.split(window_key, 3)`: shifts
    `jax.random.randint(shift_key, (len(shift_axes),), 0, sizes)`, flips
    `jax.random.bernoulli(flip_key, 0.5, (len(flip_axes),))` and quarter turns
    `jax.random.randint(rotation_key, (), 0, 4)`. The wrapped configuration gets
    `inner_key`.

    **Arguments:**

    - `configuration`: the configuration to train on transformed windows.
    - `shift_axes`: the spatial axes to shift, or `None` (default) for all of them; `()`
        for no shifts.
    - `flip_axes`: the spatial axes that may be flipped (default none).
    - `flip_sign_channels`: per entry of `flip_axes`, the channels that change sign
        under that flip; `None` (default) if every channel is a scalar.
    - `rotations`: whether to rotate by multiples of 90 degrees (2D square grids, scalar
        fields).
    """

    configuration: BaseConfiguration
    shift_axes: Optional[tuple[int, ...]] = eqx.field(static=True)
    flip_axes: tuple[int, ...] = eqx.field(static=True)
    flip_sign_channels: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    rotations: bool = eqx.field(static=True)

    def __init__(
        self,
        configuration: BaseConfiguration,
        *,
        shift_axes: Optional[Sequence[int]] = None,
        flip_axes: Sequence[int] = (),
        flip_sign_channels: Optional[Sequence[Sequence[int]]] = None,
        rotations: bool = False,
    ):
        self.configuration = check_wrapped(configuration)
        self.shift_axes = (
            None if shift_axes is None else _check_indices(shift_axes, "shift_axes")
        )
        self.flip_axes = _check_indices(flip_axes, "flip_axes")
        if flip_sign_channels is None:
            self.flip_sign_channels = ((),) * len(self.flip_axes)
        else:
            if isinstance(flip_sign_channels, (str, bytes)) or not isinstance(
                flip_sign_channels, Sequence
            ):
                raise TypeError(
                    "`flip_sign_channels` must be one sequence of channels per entry of "
                    f"`flip_axes`, got {flip_sign_channels!r}."
                )
            if len(flip_sign_channels) != len(self.flip_axes):
                raise ValueError(
                    f"`flip_sign_channels` needs one sequence of channels per entry of "
                    f"`flip_axes` ({len(self.flip_axes)}), got {len(flip_sign_channels)}: "
                    f"{flip_sign_channels!r}."
                )
            self.flip_sign_channels = tuple(
                _check_indices(channels, "flip_sign_channels")
                for channels in flip_sign_channels
            )
        self.rotations = check_bool(rotations, "rotations")
        if self.rotations and any(self.flip_sign_channels):
            raise ValueError(
                "`rotations=True` rotates scalar fields only (a vector field's "
                "components would have to be permuted); drop `flip_sign_channels` or "
                "the rotations."
            )

    def _check_grid(self, spatial_shape: tuple[int, ...], num_channels: int) -> None:
        """Trace-time checks of the axes and channels against the data's grid."""
        name = type(self).__name__
        num_axes = len(spatial_shape)
        checked = ((self.shift_axes or (), "shift_axes"), (self.flip_axes, "flip_axes"))
        for axes, what in checked:
            if any(axis >= num_axes for axis in axes):
                raise ValueError(
                    f"{name}: `{what}` = {axes}, but the states have {num_axes} spatial "
                    f"axes (grid {spatial_shape}); spatial axes count from 0 after the "
                    "channel axis."
                )
        if any(c >= num_channels for channels in self.flip_sign_channels for c in channels):
            raise ValueError(
                f"{name}: `flip_sign_channels` = {self.flip_sign_channels}, but the "
                f"states have {num_channels} channel(s)."
            )
        if self.rotations and (num_axes != 2 or spatial_shape[0] != spatial_shape[1]):
            raise ValueError(
                f"{name}: `rotations=True` needs a square 2D grid, got the grid "
                f"{spatial_shape}; set `rotations=False`."
            )

    def augment(self, data: Windows, key: PRNGKeyArray) -> Windows:
        """Every window of `data` under its own random symmetry (see the class).

        **Arguments:**

        - `data`: windows `(B, W, C, *spatial)`, or a PyTree of them on one grid.
        - `key`: the augmentation key (`augmentation_key` above).

        **Returns:**

        - The transformed windows, same shapes.
        """
        leaves, treedef = jtu.tree_flatten(data)
        spatial_shape = tuple(leaves[0].shape[3:])
        for leaf in leaves:
            if tuple(leaf.shape[3:]) != spatial_shape or leaf.ndim < 4:
                raise ValueError(
                    f"{type(self).__name__} transforms windows (B, W, C, *spatial) with at "
                    "least one spatial axis, all leaves on one grid; got leaves of shapes "
                    f"{[tuple(x.shape) for x in leaves]}."
                )
            self._check_grid(spatial_shape, leaf.shape[2])
        shift_axes = (
            tuple(range(len(spatial_shape))) if self.shift_axes is None else self.shift_axes
        )
        sizes = jnp.asarray([spatial_shape[axis] for axis in shift_axes], jnp.int32)

        def transform(window_key, *windows):
            shift_key, flip_key, rotation_key = jax.random.split(window_key, 3)
            shifts = jax.random.randint(shift_key, (len(shift_axes),), 0, sizes)
            flips = jax.random.bernoulli(flip_key, 0.5, (len(self.flip_axes),))
            quarter_turns = jax.random.randint(rotation_key, (), 0, 4)
            return tuple(
                self._transform_window(window, shift_axes, shifts, flips, quarter_turns)
                for window in windows
            )

        window_keys = jax.random.split(key, leaves[0].shape[0])
        transformed = jax.vmap(transform)(window_keys, *leaves)
        return jtu.tree_unflatten(treedef, list(transformed))

    def _transform_window(
        self,
        window: Float[Array, "window channels ..."],
        shift_axes: tuple[int, ...],
        shifts: Array,
        flips: Array,
        quarter_turns: Array,
    ) -> Float[Array, "window channels ..."]:
        # Spatial axis `d` of a window `(W, C, *spatial)` is array axis `2 + d`.
        for axis, shift in zip(shift_axes, shifts):
            window = jnp.roll(window, shift, axis=2 + axis)
        for axis, channels, flip in zip(self.flip_axes, self.flip_sign_channels, flips):
            sign = jnp.ones(window.shape[1], window.dtype)
            sign = sign.at[jnp.asarray(channels, int)].set(-1)
            flipped = jnp.flip(window, axis=2 + axis) * sign.reshape(
                (1, -1) + (1,) * (window.ndim - 2)
            )
            window = jnp.where(flip, flipped, window)
        if self.rotations:
            window = jax.lax.switch(
                quarter_turns,
                [lambda x, k=k: jnp.rot90(x, k, axes=(2, 3)) for k in range(4)],
                window,
            )
        return window
