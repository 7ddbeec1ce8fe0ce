import jax.numpy as jnp
from jaxtyping import Array, Float

from ._error import AbstractNormalizedErrorLoss


class Normalized_MSELoss(AbstractNormalizedErrorLoss):
    """Mean squared error of one state divided by the mean square of its target.

    `mean((prediction - target)**2) / mean(target**2)`, computed per state (the ratio is
    taken before the batch reduction). A target that is zero everywhere gives a division
    by zero (`inf` or `nan`), exactly as the formula says.

    `target=None` raises a `ValueError`: there is nothing to normalise by.

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _statistic(self, values: Float[Array, "num_channels ..."]) -> Float[Array, ""]:
        return jnp.mean(jnp.square(values))


class Normalized_MAELoss(AbstractNormalizedErrorLoss):
    """Mean absolute error of one state divided by the mean absolute value of its target.

    `mean(|prediction - target|) / mean(|target|)`, computed per state (the ratio is
    taken before the batch reduction). A target that is zero everywhere gives a division
    by zero (`inf` or `nan`).

    `target=None` raises a `ValueError`: there is nothing to normalise by.

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _statistic(self, values: Float[Array, "num_channels ..."]) -> Float[Array, ""]:
        return jnp.mean(jnp.abs(values))
