"""A patch transformer with channel attention that forecasts a block of states."""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from .._stepper._block import BlockStepper
from ._attention import SelfAttention


class PatchLayer(eqx.Module):
    """One layer of [`trainax_fm.networks.PatchForecaster`][] on `(C, P, width)` tokens.

    Three pre-norm residual blocks: self-attention over the `P` patches of each channel
    (with rotary positions), self-attention over the `C` channels at each patch position
    (no positions: channels are a set, so one forecaster serves systems of any
    ordering), and a GELU MLP per token.

    **Arguments:**

    - `width`: token size; `num_heads` divides it and `width / num_heads` is even.
    - `num_heads`: attention heads of both attentions.
    - `mlp_width`: hidden size of the MLP.
    - `key`: a JAX PRNG key.
    """

    temporal_norm: eqx.nn.LayerNorm
    temporal_attention: SelfAttention
    channel_norm: eqx.nn.LayerNorm
    channel_attention: SelfAttention
    mlp_norm: eqx.nn.LayerNorm
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, width: int, num_heads: int, mlp_width: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, 4)
        self.temporal_norm = eqx.nn.LayerNorm(width)
        self.temporal_attention = SelfAttention(width, num_heads, rotary=True, key=keys[0])
        self.channel_norm = eqx.nn.LayerNorm(width)
        self.channel_attention = SelfAttention(width, num_heads, rotary=False, key=keys[1])
        self.mlp_norm = eqx.nn.LayerNorm(width)
        self.mlp_in = eqx.nn.Linear(width, mlp_width, key=keys[2])
        self.mlp_out = eqx.nn.Linear(mlp_width, width, key=keys[3])

    def __call__(
        self, tokens: Float[Array, "channels patches width"]
    ) -> Float[Array, "channels patches width"]:
        def per_token(fn, x):
            return jax.vmap(jax.vmap(fn))(x)

        normed = per_token(self.temporal_norm, tokens)
        tokens = tokens + jax.vmap(self.temporal_attention)(normed)
        normed = per_token(self.channel_norm, tokens).swapaxes(0, 1)  # (P, C, width)
        tokens = tokens + jax.vmap(self.channel_attention)(normed).swapaxes(0, 1)
        normed = per_token(self.mlp_norm, tokens)
        hidden = jax.nn.gelu(per_token(self.mlp_in, normed))
        return tokens + per_token(self.mlp_out, hidden)


class PatchForecaster(eqx.Module):
    """A PatchTST-style transformer with channel attention (as in Panda) for ODE states.

    It maps a context of `context_length` states of `C` channels to the next
    `prediction_length` states:

    1. *per-series scaling*: each channel is normalised over the context (minus its
        mean, divided by its standard deviation plus `eps`); the forecast is mapped
        back with the same statistics, so the network sees every system at unit scale;
    2. each channel's context is cut into `context_length / patch_length` patches of
        `patch_length` steps and each patch is embedded linearly into `width` features;
    3. `num_layers` [`trainax_fm.networks.PatchLayer`][]s: attention over the patches
        of a channel (rotary position embeddings), attention across channels per patch
        position, an MLP; pre-layer norms, residual connections;
    4. a final layer norm and a linear head from each channel's flattened patch tokens
        to its `prediction_length` future values.

    **Layout.** Input and output follow trainax_fm's history and block layout for ODE
    states `(C,)`: the input is `(context_length*C,)`, time-major (state `t` is
    `x[t*C:(t+1)*C]`), the output `(prediction_length*C,)`. So with `k =
    prediction_length` and `context_length = H*k` it is a stepper for the trainers
    with `num_input_steps=H` and `num_output_steps=k`, and
    [`trainax_fm.networks.PatchForecaster.block_stepper`][] rolls it out with
    [`trainax_fm.rollout`][] on a sliding context.

    **Arguments:**

    - `num_channels`: `C`, the state size.
    - `context_length`: states in the context, a multiple of `patch_length`.
    - `prediction_length`: states forecast per call (`k`).
    - `patch_length`: states per patch.
    - `width`: token size (divisible by `num_heads`, with an even head size for the
        rotary embedding).
    - `num_layers`: number of layers `L` (>= 1).
    - `num_heads`: attention heads.
    - `mlp_width`: hidden size of the MLPs (default `4*width`).
    - `eps`: added to each channel's standard deviation in the scaling.
    - `key`: a JAX PRNG key for the initial weights (keyword only).
    """

    embedding: eqx.nn.Linear
    layers: tuple[PatchLayer, ...]
    final_norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear
    num_channels: int = eqx.field(static=True)
    context_length: int = eqx.field(static=True)
    prediction_length: int = eqx.field(static=True)
    patch_length: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(
        self,
        num_channels: int,
        context_length: int,
        prediction_length: int,
        patch_length: int,
        *,
        width: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_width: Optional[int] = None,
        eps: float = 1e-5,
        key: PRNGKeyArray,
    ):
        num_channels = check_positive_int(num_channels, "num_channels")
        context_length = check_positive_int(context_length, "context_length")
        prediction_length = check_positive_int(prediction_length, "prediction_length")
        patch_length = check_positive_int(patch_length, "patch_length")
        width = check_positive_int(width, "width")
        num_layers = check_positive_int(num_layers, "num_layers")
        num_heads = check_positive_int(num_heads, "num_heads")
        mlp_width = 4 * width if mlp_width is None else check_positive_int(mlp_width, "mlp_width")
        if context_length % patch_length:
            raise ValueError(
                f"`context_length` ({context_length}) must be a multiple of "
                f"`patch_length` ({patch_length}) so the context splits into whole "
                "patches; change one of them."
            )
        if width % num_heads or (width // num_heads) % 2:
            raise ValueError(
                f"`width` ({width}) must be divisible by `num_heads` ({num_heads}) into "
                "heads of even size (rotary embeddings rotate feature pairs); e.g. "
                f"width={2 * num_heads * max(1, width // (2 * num_heads))}."
            )
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"`eps` must be a positive float, got {eps!r}.")
        num_patches = context_length // patch_length
        keys = jax.random.split(key, num_layers + 2)
        self.embedding = eqx.nn.Linear(patch_length, width, key=keys[0])
        self.layers = tuple(
            PatchLayer(width, num_heads, mlp_width, key=layer_key) for layer_key in keys[2:]
        )
        self.final_norm = eqx.nn.LayerNorm(width)
        self.head = eqx.nn.Linear(num_patches * width, prediction_length, key=keys[1])
        self.num_channels = num_channels
        self.context_length = context_length
        self.prediction_length = prediction_length
        self.patch_length = patch_length
        self.eps = float(eps)

    def __call__(
        self, context: Float[Array, " context_states"]
    ) -> Float[Array, " predicted_states"]:
        """Forecast the next `prediction_length` states.

        **Arguments:**

        - `context`: `(context_length*C,)`, the latest states, time-major, oldest
            first.

        **Returns:**

        - `(prediction_length*C,)`, the next states, time-major.
        """
        expected = self.context_length * self.num_channels
        if context.shape != (expected,):
            raise ValueError(
                f"PatchForecaster(num_channels={self.num_channels}, context_length="
                f"{self.context_length}) takes a context of shape ({expected},) = "
                f"(context_length*C,), got {tuple(context.shape)}. Stack the "
                "context's states on one axis, time-major (a trainer with "
                "num_input_steps=H, num_output_steps=k does so when context_length = H*k)."
            )
        series = context.reshape(self.context_length, self.num_channels).T  # (C, T)
        mean = jnp.mean(series, axis=1, keepdims=True)
        scale = jnp.std(series, axis=1, keepdims=True) + self.eps
        patches = ((series - mean) / scale).reshape(self.num_channels, -1, self.patch_length)
        tokens = jax.vmap(jax.vmap(self.embedding))(patches)  # (C, P, width)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = jax.vmap(jax.vmap(self.final_norm))(tokens)
        forecast = jax.vmap(self.head)(tokens.reshape(self.num_channels, -1))  # (C, k)
        forecast = forecast * scale + mean
        return forecast.T.reshape(-1).astype(context.dtype)

    def block_stepper(self) -> BlockStepper:
        """This forecaster as a [`trainax_fm.BlockStepper`][] over a sliding context.

        The block stepper predicts `k = prediction_length` states per call;
        [`trainax_fm.rollout`][] takes it with `num_input_steps=context_length` and an
        `ic` of `context_length` states `(context_length, C)`, and after every call the
        newest `k` states enter the context and the oldest `k` leave. (For training,
        the forecaster itself is the stepper, see above.)

        **Returns:**

        - `BlockStepper.sliding(self, prediction_length, context_length)`.
        """
        return BlockStepper.sliding(self, self.prediction_length, self.context_length)
