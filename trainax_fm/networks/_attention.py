"""Multi-head self-attention over a set or sequence of tokens."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._rotary import rotary_embedding


class SelfAttention(eqx.Module):
    """Multi-head self-attention, `(N, width) -> (N, width)`.

    With `rotary=True` queries and keys carry rotary position embeddings (the tokens
    form a sequence, see [`trainax_fm.networks.rotary_embedding`][]); without, the
    layer is equivariant to permutations of the tokens (a set, e.g. channels).

    **Arguments:**

    - `width`: token feature size, divisible by `num_heads`.
    - `num_heads`: attention heads.
    - `rotary`: whether to rotate queries and keys by their position.
    - `key`: a JAX PRNG key for the initial weights.
    """

    query_projection: eqx.nn.Linear
    key_projection: eqx.nn.Linear
    value_projection: eqx.nn.Linear
    output_projection: eqx.nn.Linear
    num_heads: int = eqx.field(static=True)
    rotary: bool = eqx.field(static=True)

    def __init__(self, width: int, num_heads: int, *, rotary: bool, key: PRNGKeyArray):
        keys = jax.random.split(key, 4)
        self.query_projection = eqx.nn.Linear(width, width, key=keys[0])
        self.key_projection = eqx.nn.Linear(width, width, key=keys[1])
        self.value_projection = eqx.nn.Linear(width, width, key=keys[2])
        self.output_projection = eqx.nn.Linear(width, width, key=keys[3])
        self.num_heads = num_heads
        self.rotary = rotary

    def __call__(
        self, tokens: Float[Array, "num_tokens width"]
    ) -> Float[Array, "num_tokens width"]:
        num_tokens, width = tokens.shape
        head = width // self.num_heads

        def heads(projection):
            # (N, width) -> (heads, N, head)
            projected = jax.vmap(projection)(tokens)
            return projected.reshape(num_tokens, self.num_heads, head).swapaxes(0, 1)

        q = heads(self.query_projection)
        k = heads(self.key_projection)
        v = heads(self.value_projection)
        if self.rotary:
            q, k = jax.vmap(rotary_embedding)(q), jax.vmap(rotary_embedding)(k)
        scores = jnp.einsum("hnd,hmd->hnm", q, k) / math.sqrt(head)
        mixed = jnp.einsum("hnm,hmd->hnd", jax.nn.softmax(scores, axis=-1), v)
        merged = mixed.swapaxes(0, 1).reshape(num_tokens, width)
        return jax.vmap(self.output_projection)(merged)
