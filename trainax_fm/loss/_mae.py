from typing import Optional

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import BaseLoss
from ._utils import difference


class MAELoss(BaseLoss):
    """Mean absolute error over all channel and spatial entries of one state.

    `mean(|prediction - target|)`; with `target=None` it is the mean absolute value of
    the prediction (used for residua).

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        return jnp.mean(jnp.abs(difference("MAELoss", prediction, target)))
