"""Time-level weight schedules for rollout configurations.

Each returns `num_steps` positive weights, normalised to mean one so that the loss
keeps the scale of the default all-ones weights, for the `time_level_weights`
argument of any rollout configuration. Early steps weigh most: far steps of a chaotic
rollout carry large, noisy errors whose gradients can swamp the early ones.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int


def _mean_one(weights: Array) -> Float[Array, " num_steps"]:
    return weights / jnp.mean(weights)


def geometric_weights(num_steps: int, ratio: float = 0.9) -> Float[Array, " num_steps"]:
    r"""Geometric weights $w_t \propto \rho^t$.

    **Arguments:**

    - `num_steps`: the number of time levels (e.g. `num_rollout_steps`).
    - `ratio`: `ρ` in (0, 1] (1 gives all ones).

    **Returns:**

    - `num_steps` weights with mean one.
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"`ratio` must be a number in (0, 1], got {ratio!r}.")
    return _mean_one(float(ratio) ** jnp.arange(num_steps, dtype=jnp.float32))


def inverse_sqrt_weights(num_steps: int) -> Float[Array, " num_steps"]:
    r"""Inverse-square-root weights $w_t \propto 1/\sqrt{t+1}$.

    **Arguments:**

    - `num_steps`: the number of time levels.

    **Returns:**

    - `num_steps` weights with mean one.
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    return _mean_one(1.0 / jnp.sqrt(jnp.arange(1, num_steps + 1, dtype=jnp.float32)))


def linear_weights(num_steps: int) -> Float[Array, " num_steps"]:
    r"""Linearly decaying weights $w_t \propto R - t$ (from `R` down to 1).

    **Arguments:**

    - `num_steps`: the number of time levels `R`.

    **Returns:**

    - `num_steps` weights with mean one.
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    return _mean_one(jnp.arange(num_steps, 0, -1, dtype=jnp.float32))
