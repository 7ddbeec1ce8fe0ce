"""Argument checks specific to the sample-data generators."""

import math
import numbers
from typing import Any

import jax
import numpy as np


def check_key(key: Any, function_name: str) -> None:
    """Raise a `TypeError` unless `key` looks like a `jax.random` key."""
    if key is None:
        raise TypeError(
            f"`{function_name}` needs a random key: pass `key=jax.random.key(0)` "
            f"(or `jax.random.PRNGKey(0)`) as a keyword argument."
        )
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(
            f"`key` of `{function_name}` must be a `jax.random` key, got {key!r} of "
            f"type {type(key).__name__}. Create one with `jax.random.key(seed)`."
        )


def check_real(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> None:
    """Check a concrete real scalar; traced or array values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (jax.Array, np.ndarray)):
        if value.ndim != 0:
            raise ValueError(
                f"`{name}` must be a scalar, got an array of shape "
                f"{tuple(value.shape)}."
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a real number, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value}. Pass a positive value.")
    if non_negative and value < 0:
        raise ValueError(
            f"`{name}` must be >= 0, got {value}. Pass a non-negative value."
        )
