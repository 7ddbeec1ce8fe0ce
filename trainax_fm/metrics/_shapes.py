"""Shape conventions and checks shared by the metrics."""

import numbers
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_bool

# One trajectory `(T, C, *spatial)` or a batch of them `(B, T, C, *spatial)`; which one
# is chosen by the `batched` flag of each metric (jaxtyping allows one variadic name).
Trajectories = Float[Array, "*batch_time_channels_spatial"]
# A state `(C, *spatial)`.
State = Float[Array, "channels *spatial"]


def as_sample_sets(samples: Any, other_samples: Any, name: str) -> tuple[Array, Array]:
    """Check two sample sets stacked on axis 0 with equal event shapes; return arrays."""
    samples = jnp.asarray(samples)
    other_samples = jnp.asarray(other_samples)
    if samples.ndim < 1 or samples.shape[1:] != other_samples.shape[1:]:
        raise ValueError(
            f"{name}: both sample sets must be stacked on axis 0 with equal event shapes, "
            f"got {tuple(samples.shape)} and {tuple(other_samples.shape)}."
        )
    return samples, other_samples


def as_batched_pair(
    prediction: Any, reference: Any, batched: Any, name: str
) -> tuple[Array, Array]:
    """Check a prediction/reference pair and return both as `(B, T, C, *spatial)`."""
    batched = check_bool(batched, "batched")
    prediction = jnp.asarray(prediction)
    reference = jnp.asarray(reference)
    if prediction.shape != reference.shape:
        raise ValueError(
            f"{name}: `prediction` has shape {tuple(prediction.shape)} but `reference` "
            f"has shape {tuple(reference.shape)}; they must match."
        )
    prediction = as_batched(prediction, batched, name, "prediction")
    reference = as_batched(reference, batched, name, "reference")
    return prediction, reference


def as_batched(array: Array, batched: bool, name: str, argname: str) -> Array:
    """Return a trajectory array with a leading batch axis (size 1 if unbatched)."""
    layout = "(B, T, C, *spatial)" if batched else "(T, C, *spatial)"
    min_rank = 3 if batched else 2
    if array.ndim < min_rank:
        raise ValueError(
            f"{name}: `{argname}` has shape {tuple(array.shape)} but must be shaped "
            f"{layout} (rank >= {min_rank}) with batched={batched}. For a single state "
            "`(C, *spatial)` add a time axis: `state[None]`."
        )
    return array if batched else array[None]


def spatial_size(array: Array, name: str, argname: str, num_leading: int) -> int:
    """Common length of the spatial axes after `num_leading` axes and the channel axis."""
    spatial = tuple(array.shape[num_leading + 1 :])
    if len(spatial) == 0:
        raise ValueError(
            f"{name}: `{argname}` has shape {tuple(array.shape)} and no spatial axis; "
            "spectral metrics need fields on a periodic grid `(C, N, ...)`."
        )
    if len(set(spatial)) != 1:
        raise ValueError(
            f"{name}: `{argname}` has spatial shape {spatial}; spectral metrics need "
            "the same number of points along every spatial axis (a cubic grid)."
        )
    if spatial[0] < 2:
        raise ValueError(
            f"{name}: `{argname}` has {spatial[0]} point(s) per spatial axis; at least "
            "2 are needed."
        )
    return spatial[0]


def check_fraction(value: Any, name: str, *, open_interval: bool = True) -> Any:
    """Check a Python number lies in (0, 1); traced values pass through unchecked."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if open_interval and not 0.0 < value < 1.0:
            raise ValueError(f"`{name}` must lie strictly between 0 and 1, got {value}.")
    return value


def normalize_ensemble(ensemble: Any, observation: Any, ensemble_axis: Any, name: str):
    """Move the ensemble axis to the front and check the observation's shape."""
    ensemble = jnp.asarray(ensemble)
    observation = jnp.asarray(observation)
    if isinstance(ensemble_axis, bool) or not isinstance(ensemble_axis, numbers.Integral):
        raise TypeError(f"{name}: `ensemble_axis` must be an int, got {ensemble_axis!r}.")
    if ensemble.ndim < 1 or not -ensemble.ndim <= ensemble_axis < ensemble.ndim:
        raise ValueError(
            f"{name}: `ensemble_axis={ensemble_axis}` is out of range for an ensemble "
            f"of shape {tuple(ensemble.shape)}."
        )
    ensemble = jnp.moveaxis(ensemble, ensemble_axis, 0)
    if tuple(ensemble.shape[1:]) != tuple(observation.shape):
        raise ValueError(
            f"{name}: the ensemble has shape {tuple(ensemble.shape)} with members on "
            f"axis {ensemble_axis}, so `observation` must be shaped "
            f"{tuple(ensemble.shape[1:])}, got {tuple(observation.shape)}."
        )
    return ensemble, observation
