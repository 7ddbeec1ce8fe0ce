"""Rotary position embeddings (RoPE): positions enter attention as rotations."""

import jax.numpy as jnp
from jaxtyping import Array, Float


def rotary_embedding(
    x: Float[Array, "positions dim"], *, base: float = 10000.0
) -> Float[Array, "positions dim"]:
    """Rotate the feature pairs `(x[p, 2i], x[p, 2i+1])` by the angle `p * base**(-2i/dim)`.

    Applied to queries and keys, the dot product of a query at position `m` with a key
    at position `n` then depends on the positions only through `m - n` (each pair is
    rotated by `m*theta_i` and `n*theta_i`, and rotations compose), which is what lets
    attention over patches see relative time.

    **Arguments:**

    - `x`: `(P, D)` features of `P` positions; `D` must be even.
    - `base`: the wavelength scale; pair `i` turns with frequency `base**(-2i/D)`.

    **Returns:**

    - The rotated features, `(P, D)`, same dtype.
    """
    num_positions, dim = x.shape
    if dim % 2:
        raise ValueError(
            f"rotary_embedding rotates feature pairs, so the feature size must be even; "
            f"got features of shape {tuple(x.shape)}. Use an even head size."
        )
    frequencies = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    angles = jnp.arange(num_positions, dtype=jnp.float32)[:, None] * frequencies[None, :]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    even, odd = x[:, 0::2], x[:, 1::2]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(num_positions, dim)
