import math
import numbers
from typing import Callable, Optional

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import BaseLoss
from ._error import AbstractErrorLoss
from ._utils import difference, require_target, safe_sqrt


class RMSELoss(AbstractErrorLoss):
    """Root mean squared error of one state.

    `sqrt(mean((prediction - target)**2))` over all channel and spatial entries of one
    state; the root is taken per state, before the batch reduction, so the default
    batch loss is the mean of the per-sample RMSEs (not the RMSE of the whole batch).
    With `target=None` it is the root mean square of the prediction.

    The derivative of the root at zero error is taken as `0` (not `nan`), so the loss
    stays differentiable when the prediction equals the target exactly.

    **Arguments:**

    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    def _statistic(self, values: Float[Array, "num_channels ..."]) -> Float[Array, ""]:
        return safe_sqrt(jnp.mean(jnp.square(values)))


class nRMSELoss(BaseLoss):
    """Normalised root mean squared error of one state (the APEBench rollout metric).

    `sqrt(mean((prediction - target)**2)) / (sqrt(mean(target**2)) + eps)` per state; the
    default batch loss is the mean of the per-sample nRMSEs. Identical fields give `0`.

    `eps` defaults to `0.0` so the value is exactly the textbook nRMSE; a target that is
    zero everywhere then gives `inf` (or `nan` when the prediction is zero too). Pass a
    small positive `eps` (e.g. `1e-8`) when such targets can occur, e.g. in training.
    The derivative of the root at zero error is taken as `0` (not `nan`).

    `target=None` raises a `ValueError`: there is nothing to normalise by.

    **Arguments:**

    - `eps`: non-negative number added to the target's root mean square in the
        denominator (default `0.0`).
    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    eps: float = eqx.field(static=True, default=0.0)

    def __init__(self, *, eps: float = 0.0, batch_reduction: Callable = jnp.mean):
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
            raise TypeError(
                f"nRMSELoss: `eps` must be a non-negative number, got {eps!r} of type "
                f"{type(eps).__name__}."
            )
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(
                f"nRMSELoss: `eps` must be a finite number >= 0, got {eps}. Use 0.0 for "
                "the plain nRMSE or a small positive value such as 1e-8."
            )
        self.eps = float(eps)
        self.batch_reduction = batch_reduction

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        require_target("nRMSELoss", target)
        error = difference("nRMSELoss", prediction, target)
        error_rms = safe_sqrt(jnp.mean(jnp.square(error)))
        target_rms = safe_sqrt(jnp.mean(jnp.square(target)))
        return error_rms / (target_rms + self.eps)
