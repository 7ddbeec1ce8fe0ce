"""The validation record of a run: every validation's values, the best model, patience."""

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

MonitorMode = Literal["min", "max"]


class ValidationHistory(eqx.Module):
    """What the validations of a run found, and the best stepper so far.

    An *improvement* is a value of the monitored metric better than the best so far by
    more than `min_delta` (lower for `mode="min"`, higher for `"max"`); NaN never
    improves. The best stepper is the one at the last improvement, and
    `since_improvement` counts the validations after it (early stopping ends the run
    when it reaches the patience). With seeds every value, the best stepper and the
    counters carry a leading seed axis and each seed keeps its own best.

    **Attributes:**

    - `steps`: the update count at each validation, shape `(num_validations,)`.
    - `values`: metric name to its values, shape `(num_validations,)` (or
        `(num_seeds, num_validations)`).
    - `monitor`, `mode`, `min_delta`: the rule that decides the best model.
    - `best_value`, `best_step`: the monitored value and step of the best model.
    - `best_stepper`: the best model (the stepper at `best_step`).
    - `since_improvement`: validations since the last improvement.
    """

    steps: Int[Array, " num_validations"]
    values: dict[str, Float[Array, "*seeds num_validations"]]
    best_value: Float[Array, "*seeds"]
    best_step: Int[Array, "*seeds"]
    best_stepper: PyTree
    since_improvement: Int[Array, "*seeds"]
    monitor: str = eqx.field(static=True)
    mode: MonitorMode = eqx.field(static=True, default="min")
    min_delta: float = eqx.field(static=True, default=0.0)

    @property
    def num_validations(self) -> int:
        return int(self.steps.shape[0])

    def to_dict(self) -> dict[str, list]:
        """`{"step": [...], name: [...]}` as Python lists (seed axis kept as rows)."""
        out = {"step": np.asarray(self.steps).tolist()}
        out.update({name: np.asarray(value).tolist() for name, value in self.values.items()})
        return out


def empty_history(
    stepper: PyTree,
    names: tuple[str, ...],
    monitor: str,
    mode: MonitorMode,
    min_delta: float,
    num_seeds: Any,
) -> ValidationHistory:
    """The record before the first validation (the best value is the worst possible)."""
    seed_shape = () if num_seeds is None else (num_seeds,)
    worst = jnp.inf if mode == "min" else -jnp.inf
    return ValidationHistory(
        steps=jnp.zeros((0,), jnp.int32),
        values={name: jnp.zeros(seed_shape + (0,)) for name in names},
        best_value=jnp.full(seed_shape, worst),
        best_step=jnp.full(seed_shape, -1, jnp.int32),
        best_stepper=stepper,
        since_improvement=jnp.zeros(seed_shape, jnp.int32),
        monitor=monitor,
        mode=mode,
        min_delta=min_delta,
    )


def record_validation(
    history: ValidationHistory, step: int, values: dict[str, Array], stepper: PyTree
) -> tuple[ValidationHistory, Array]:
    """`history` after a validation at `step`, and where (per seed) it improved."""
    current = jnp.asarray(values[history.monitor], dtype=history.best_value.dtype)
    if history.mode == "min":
        improved = current < history.best_value - history.min_delta
    else:
        improved = current > history.best_value + history.min_delta
    keep_new = lambda new, old: _where_seed(improved, new, old)  # noqa: E731
    best_arrays = jax.tree_util.tree_map(
        keep_new,
        eqx.filter(stepper, eqx.is_array),
        eqx.filter(history.best_stepper, eqx.is_array),
    )
    appended = {
        name: jnp.concatenate(
            [old, jnp.asarray(values[name], old.dtype)[..., None]], axis=-1
        )
        for name, old in history.values.items()
    }
    new = eqx.tree_at(
        lambda h: (h.steps, h.values, h.best_value, h.best_step, h.best_stepper,
                   h.since_improvement),
        history,
        (
            jnp.append(history.steps, jnp.int32(step)),
            appended,
            jnp.where(improved, current, history.best_value),
            jnp.where(improved, jnp.int32(step), history.best_step),
            eqx.combine(best_arrays, history.best_stepper),
            jnp.where(improved, 0, history.since_improvement + 1),
        ),
    )
    return new, improved


def _where_seed(condition: Array, new: Array, old: Array) -> Array:
    # `condition` has the seed shape; a parameter has the seed axis first.
    expanded = condition.reshape(condition.shape + (1,) * (new.ndim - condition.ndim))
    return jnp.where(expanded, new, old)
