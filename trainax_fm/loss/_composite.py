import numbers
import warnings
from typing import Callable, Optional, Sequence, Union

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import BaseLoss


class CompositeLoss(BaseLoss):
    """Weighted sum of time-level losses, e.g. `MSE + 0.1 * Sobolev`.

    Per state, `sum_i weights[i] * losses[i].single_batch(prediction, target)`; the
    per-state sums are then reduced over the batch with this loss's `batch_reduction`.
    The flow-matching `time` is forwarded: `single_batch_at_time` combines the
    children's `single_batch_at_time`, so time-dependent children (e.g. a `SobolevLoss`
    with callable weights) work inside a composite.

    The children's own `batch_reduction` is not used (the reduction happens once, on the
    weighted sum); a warning is emitted at construction if a child's differs from this
    one's. For the default `jnp.mean` everywhere, `CompositeLoss(...)(pred, tgt)` equals
    `sum_i weights[i] * losses[i](pred, tgt)`.

    **Arguments:**

    - `losses`: a non-empty sequence of [`trainax_fm.loss.BaseLoss`][] instances.
    - `weights`: a sequence of scalar weights, one per loss.
    - `batch_reduction`: how the per-state losses of a batch are reduced
        (default `jnp.mean`).
    """

    losses: tuple[BaseLoss, ...]
    weights: tuple[Union[float, Float[Array, ""]], ...]

    def __init__(
        self,
        losses: Sequence[BaseLoss],
        weights: Sequence[Union[float, Float[Array, ""]]],
        *,
        batch_reduction: Callable = jnp.mean,
    ):
        if isinstance(losses, BaseLoss) or not isinstance(losses, Sequence):
            raise TypeError(
                "CompositeLoss: `losses` must be a list or tuple of losses, got "
                f"{type(losses).__name__}. Wrap a single loss in a list: [loss]."
            )
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError(
                "CompositeLoss: `weights` must be a list or tuple with one scalar per "
                f"loss, got {weights!r}."
            )
        losses = tuple(losses)
        if len(losses) == 0:
            raise ValueError("CompositeLoss: `losses` must contain at least one loss.")
        for i, loss in enumerate(losses):
            if not isinstance(loss, BaseLoss):
                raise TypeError(
                    f"CompositeLoss: `losses[{i}]` must be a trainax_fm loss "
                    f"(a BaseLoss instance), got {type(loss).__name__}."
                )
        if len(weights) != len(losses):
            raise ValueError(
                f"CompositeLoss: got {len(losses)} losses but {len(weights)} weights; "
                "pass exactly one weight per loss."
            )
        checked_weights = []
        for i, weight in enumerate(weights):
            if isinstance(weight, bool):
                raise TypeError(
                    f"CompositeLoss: `weights[{i}]` must be a number, got a bool."
                )
            if isinstance(weight, numbers.Real):
                checked_weights.append(float(weight))
            else:
                if jnp.ndim(weight) != 0:
                    raise ValueError(
                        f"CompositeLoss: `weights[{i}]` must be a scalar, got shape "
                        f"{tuple(jnp.shape(weight))}."
                    )
                checked_weights.append(weight)
        for i, loss in enumerate(losses):
            if loss.batch_reduction is not batch_reduction:
                warnings.warn(
                    f"CompositeLoss: `losses[{i}]` ({type(loss).__name__}) has its own "
                    f"batch_reduction {loss.batch_reduction!r}, which is ignored; the "
                    f"composite reduces the weighted sum with {batch_reduction!r}.",
                    stacklevel=2,
                )
        self.losses = losses
        self.weights = tuple(checked_weights)
        self.batch_reduction = batch_reduction

    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        return sum(
            weight * loss.single_batch(prediction, target)
            for loss, weight in zip(self.losses, self.weights)
        )

    def single_batch_at_time(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]],
        time: Float[Array, ""],
    ) -> Float[Array, ""]:
        return sum(
            weight * loss.single_batch_at_time(prediction, target, time)
            for loss, weight in zip(self.losses, self.weights)
        )
