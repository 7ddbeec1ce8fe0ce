"""Helpers shared by the flow-matching and distillation configurations (not public)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._rollout._training import required_length_error, stack_history


def split_window(
    data, num_input_steps: int, owner: str
) -> tuple[Float[Array, "batch history_channels ..."], Float[Array, "batch channels ..."]]:
    """`(y, x1)`: the first `H` states stacked on the channels, and the state at `H`."""
    if not hasattr(data, "shape"):
        raise TypeError(
            f"{owner} needs the windows as one array `(B, W, C, *spatial)`; PyTree "
            f"states are not supported (got {type(data).__name__}). Stack the fields on "
            "the channel axis."
        )
    data = jnp.asarray(data)
    if data.ndim < 3:
        raise ValueError(
            f"{owner} needs windows shaped (B, W, C, *spatial) (an ODE state is (C,), "
            f"so at least rank 3), got shape {tuple(data.shape)}. Trajectories must be "
            "(S, T, C, *spatial): add the channel axis with `data[:, :, None]`."
        )
    if data.shape[1] < num_input_steps + 1:
        raise required_length_error(
            owner,
            num_input_steps + 1,
            data.shape[1],
            f"{num_input_steps} conditioning state(s) + 1 target",
        )
    y = stack_history(data[:, :num_input_steps])
    x1 = data[:, num_input_steps]
    return y, x1


def per_sample(values: Float[Array, " batch"], like: Float[Array, "batch ..."]):
    """Reshape `(B,)` to `(B, 1, ..., 1)` to broadcast against `like`."""
    return values.astype(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))


def interpolate(x0, x1, t):
    """`x_t = t x1 + (1 - t) x0` with `t` of shape `(B,)`."""
    tb = per_sample(t, x1)
    return tb * x1 + (1.0 - tb) * x0


def draw_noise(key, x1):
    return jax.random.normal(key, x1.shape, dtype=x1.dtype)
