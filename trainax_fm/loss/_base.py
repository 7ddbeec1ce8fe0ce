import abc
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class BaseLoss(eqx.Module):
    """Base class of every time-level loss.

    A time-level loss compares one predicted state with one target state (or reduces a
    single state, e.g. a residuum, when `target=None`). The state has no batch axis: it is
    shaped `(C, *spatial)`. [`trainax_fm.loss.BaseLoss.multi_batch`][] vmaps it over a
    leading batch axis and reduces with `batch_reduction`.

    Subclasses implement [`trainax_fm.loss.BaseLoss.single_batch`][].
    """

    batch_reduction: Callable = eqx.field(static=True, default=jnp.mean)

    @abc.abstractmethod
    def single_batch(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]] = None,
    ) -> Float[Array, ""]:
        """Scalar loss of one state.

        **Arguments:**

        - `prediction`: one predicted state, shape `(C, *spatial)`.
        - `target`: the matching target state, or `None` to reduce `prediction` alone.

        **Returns:**

        - A scalar.
        """

    def single_batch_at_time(
        self,
        prediction: Float[Array, "num_channels ..."],
        target: Optional[Float[Array, "num_channels ..."]],
        time: Float[Array, ""],
    ) -> Float[Array, ""]:
        """Scalar loss of one state at flow-matching time `time`.

        Losses whose weights depend on the flow time (e.g. `SobolevLoss` with callable
        `alpha`/`beta`) override this; the default ignores `time`.
        """
        del time
        return self.single_batch(prediction, target)

    def multi_batch(
        self,
        prediction: Float[Array, "batch num_channels ..."],
        target: Optional[Float[Array, "batch num_channels ..."]] = None,
        *,
        time: Optional[Float[Array, " batch"]] = None,
    ) -> Float[Array, ""]:
        """Apply `single_batch` to every entry of the leading batch axis and reduce.

        **Arguments:**

        - `prediction`: batched states, shape `(B, C, *spatial)`.
        - `target`: batched targets of the same shape, or `None`.
        - `time`: optional flow-matching time per batch entry, shape `(B,)`; when given,
            `single_batch_at_time` is used instead of `single_batch`.

        **Returns:**

        - `batch_reduction` of the `B` per-state losses (a scalar for the default mean).
        """
        if target is not None and jnp.shape(prediction) != jnp.shape(target):
            raise ValueError(
                f"{type(self).__name__}: `prediction` has shape "
                f"{tuple(jnp.shape(prediction))} but `target` has shape "
                f"{tuple(jnp.shape(target))}; they must match. Check that the network "
                "output has the same channels and resolution as the data."
            )
        target_axis = None if target is None else 0
        if time is None:
            per_sample = jax.vmap(self.single_batch, in_axes=(0, target_axis))(
                prediction, target
            )
        else:
            per_sample = jax.vmap(self.single_batch_at_time, in_axes=(0, target_axis, 0))(
                prediction, target, jnp.broadcast_to(time, (jnp.shape(prediction)[0],))
            )
        return self.batch_reduction(per_sample)

    def __call__(
        self,
        prediction: Float[Array, "batch num_channels ..."],
        target: Optional[Float[Array, "batch num_channels ..."]] = None,
        *,
        time: Optional[Float[Array, " batch"]] = None,
    ) -> Float[Array, ""]:
        """Same as [`trainax_fm.loss.BaseLoss.multi_batch`][]."""
        return self.multi_batch(prediction, target, time=time)
