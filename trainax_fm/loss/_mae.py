import jax.numpy as jnp
from jaxtyping import Array, Float

from ._error import AbstractErrorLoss


class MAELoss(AbstractErrorLoss):
    """Mean absolute error over all channel and spatial entries of one state.

    `mean(|prediction - target|)`; with `target=None` it is the mean absolute value of
    the prediction (used for residua).

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _statistic(self, values: Float[Array, "num_channels ..."]) -> Float[Array, ""]:
        return jnp.mean(jnp.abs(values))
