"""Piecewise-constant schedules over training steps.

One grammar for every quantity that changes during training: the teacher-forcing
probability and the rollout length of a curriculum.
"""

from typing import Callable, Optional, Union

import jax.numpy as jnp
from jaxtyping import Array, Float

Schedule = Union[float, str, Callable[[Array], Float[Array, ""]]]


def parse_schedule(
    schedule: Schedule,
    name: str = "teacher_forcing_probability",
    check_values: Optional[Callable[[list, str], None]] = None,
):
    """Validate a schedule and return it in canonical form.

    A float is constant. A string `"s1:p1,s2:p2,...,sk:pk"` means `p1` for steps
    `< s1`, `p2` for `s1 <= step < s2`, ..., and `pk` from `s_{k-1}` on (also after
    `sk`). A callable maps the (traced) step to a probability.
    `check_values(values, name)` checks the values (default: fractions in [0, 1], such as
    probabilities).
    """
    check_values = _check_probabilities if check_values is None else check_values
    if callable(schedule):
        return schedule
    if isinstance(schedule, str):
        boundaries, values = [], []
        for part in schedule.split(","):
            try:
                boundary, value = part.split(":")
                boundaries.append(int(boundary))
                values.append(float(value))
            except ValueError:
                raise ValueError(
                    f"`{name}` string must look like '150:1.0,250:0.9,300:0.7' "
                    f"(step:value pairs), got {schedule!r} (bad part {part!r})."
                ) from None
        if boundaries != sorted(boundaries) or len(set(boundaries)) != len(boundaries):
            raise ValueError(
                f"`{name}` steps must increase strictly, got {boundaries} in {schedule!r}."
            )
        check_values(values, name)
        return (tuple(boundaries), tuple(values))
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        check_values([float(schedule)], name)
        return float(schedule)
    raise TypeError(
        f"`{name}` must be a number, a 'step:value,...' string or a callable of the "
        f"step, got {type(schedule).__name__}."
    )


def _check_probabilities(values, name):
    for value in values:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`{name}` values must lie in [0, 1], got {value}.")


def evaluate_schedule(schedule, step: Optional[Array], name: str) -> Float[Array, ""]:
    """Probability at `step`; outside training (`step=None`) a string schedule gives
    its last value and a callable is an error."""
    if isinstance(schedule, float):
        return jnp.asarray(schedule)
    if isinstance(schedule, tuple):
        boundaries, values = schedule
        if step is None:
            return jnp.asarray(values[-1])
        index = jnp.searchsorted(jnp.asarray(boundaries[:-1]), step, side="right")
        return jnp.asarray(values)[index]
    if step is None:
        raise ValueError(
            f"`{name}` is a callable of the training step, but no `step` was given; "
            "pass `step=` when calling the configuration outside of a trainer."
        )
    return jnp.asarray(schedule(step))


def is_deterministic(schedule) -> bool:
    """True if the schedule only ever gives 0 or 1 (no random draws needed)."""
    if isinstance(schedule, float):
        return schedule in (0.0, 1.0)
    if isinstance(schedule, tuple):
        return all(v in (0.0, 1.0) for v in schedule[1])
    return False
