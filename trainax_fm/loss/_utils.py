"""Helpers shared by the time-level losses (private)."""

from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Float


def check_same_shape(
    loss_name: str,
    prediction: Float[Array, "..."],
    target: Optional[Float[Array, "..."]],
) -> None:
    """Raise a `ValueError` if `target` is given and its shape differs from `prediction`.

    Runs at trace time (shapes are static), so it also works under `jax.jit`/`jax.vmap`.
    """
    if target is not None and jnp.shape(prediction) != jnp.shape(target):
        raise ValueError(
            f"{loss_name}: the predicted state has shape {tuple(jnp.shape(prediction))} "
            f"but the target state has shape {tuple(jnp.shape(target))}; they must "
            "match (no broadcasting). Check that the network output has the same "
            "channels and resolution as the data."
        )


def difference(
    loss_name: str,
    prediction: Float[Array, "..."],
    target: Optional[Float[Array, "..."]],
) -> Float[Array, "..."]:
    """`prediction - target`, or `prediction` alone when `target is None`."""
    check_same_shape(loss_name, prediction, target)
    return prediction if target is None else prediction - target


def require_target(loss_name: str, target: Optional[Float[Array, "..."]]) -> None:
    """Raise a `ValueError` for losses that normalise by the target."""
    if target is None:
        raise ValueError(
            f"{loss_name} normalises by the target state, so it needs a `target`; got "
            "`target=None`. To reduce a single state (e.g. a residuum) use an "
            "unnormalised loss such as MSELoss, MAELoss or RMSELoss."
        )


def safe_sqrt(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Square root whose derivative at `x == 0` is `0` instead of `inf`/`nan`.

    Losses built on a root (RMSE, nRMSE) are then differentiable when the prediction
    equals the target exactly (the subgradient `0` is used there).
    """
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
