from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import BaseLoss
from ._utils import difference, require_target


class Normalized_MSELoss(BaseLoss):
    """Mean squared error of one state divided by the mean square of its target.

    `mean((prediction - target)**2) / mean(target**2)`, computed per state (the ratio is
    taken before the batch reduction). A target that is zero everywhere gives a division
    by zero (`inf` or `nan`), exactly as the formula says.

    `target=None` raises a `ValueError`: there is nothing to normalise by.

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        require_target("Normalized_MSELoss", target)
        error = difference("Normalized_MSELoss", prediction, target)
        return jnp.mean(jnp.square(error)) / jnp.mean(jnp.square(target))


class Normalized_MAELoss(BaseLoss):
    """Mean absolute error of one state divided by the mean absolute value of its target.

    `mean(|prediction - target|) / mean(|target|)`, computed per state (the ratio is
    taken before the batch reduction). A target that is zero everywhere gives a division
    by zero (`inf` or `nan`).

    `target=None` raises a `ValueError`: there is nothing to normalise by.

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        require_target("Normalized_MAELoss", target)
        error = difference("Normalized_MAELoss", prediction, target)
        return jnp.mean(jnp.abs(error)) / jnp.mean(jnp.abs(target))
