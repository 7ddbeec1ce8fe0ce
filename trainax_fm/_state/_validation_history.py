"""The validation record of a run: every validation's values, the best model, patience."""

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

from ._hook_state import AbstractHookState

MonitorMode = Literal["min", "max"]


class ValidationHistory(AbstractHookState):
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

    def describe(self) -> dict:
        return {
            "names": sorted(self.values),
            "num_validations": self.num_validations,
            "value_dtype": str(self.best_value.dtype),
            "monitor": self.monitor,
            "mode": self.mode,
            "min_delta": self.min_delta,
        }

    @classmethod
    def like(cls, description: dict, stepper_like: PyTree, num_seeds) -> "ValidationHistory":
        seed_shape = () if num_seeds is None else (num_seeds,)
        count, dtype = description["num_validations"], description["value_dtype"]
        names = description["names"]
        empty = empty_history(
            stepper_like, tuple(names), description["monitor"], description["mode"],
            description["min_delta"], num_seeds,
        )
        return eqx.tree_at(
            lambda h: (h.steps, h.values, h.best_value),
            empty,
            (
                np.zeros((count,), np.int32),
                {name: np.zeros(seed_shape + (count,), dtype) for name in names},
                np.zeros(seed_shape, dtype),
            ),
        )


def empty_history(
    stepper: PyTree,
    names: tuple[str, ...],
    monitor: str,
    mode: MonitorMode,
    min_delta: float,
    num_seeds: Any,
) -> ValidationHistory:
    """The record before the first validation (the best value is the worst possible).

    The record's own arrays are NumPy arrays on the host: a validation appends to
    them, and growing device arrays would compile an eager operation per length.
    """
    seed_shape = () if num_seeds is None else (num_seeds,)
    worst = np.inf if mode == "min" else -np.inf
    return ValidationHistory(
        steps=np.zeros((0,), np.int32),
        values={name: np.zeros(seed_shape + (0,), np.float32) for name in names},
        best_value=np.full(seed_shape, worst, np.float32),
        best_step=np.full(seed_shape, -1, np.int32),
        best_stepper=stepper,
        since_improvement=np.zeros(seed_shape, np.int32),
        monitor=monitor,
        mode=mode,
        min_delta=min_delta,
    )


def record_validation(
    history: ValidationHistory, step: int, values: dict[str, Array], stepper: PyTree
) -> tuple[ValidationHistory, np.ndarray]:
    """`history` after a validation at `step`, and where (per seed) it improved."""
    best_value = np.asarray(history.best_value)
    current = np.asarray(values[history.monitor], dtype=best_value.dtype)
    with np.errstate(invalid="ignore"):
        if history.mode == "min":
            improved = current < best_value - history.min_delta
        else:
            improved = current > best_value + history.min_delta
    appended = {
        name: np.concatenate(
            [np.asarray(old), np.asarray(values[name], old.dtype)[..., None]], axis=-1
        )
        for name, old in history.values.items()
    }
    new = eqx.tree_at(
        lambda h: (h.steps, h.values, h.best_value, h.best_step, h.best_stepper,
                   h.since_improvement),
        history,
        (
            np.append(np.asarray(history.steps), np.int32(step)),
            appended,
            np.where(improved, current, best_value),
            np.where(improved, np.int32(step), np.asarray(history.best_step)),
            _best_stepper(improved, stepper, history.best_stepper),
            np.where(improved, 0, np.asarray(history.since_improvement) + 1).astype(np.int32),
        ),
        is_leaf=lambda x: x is None,
    )
    return new, improved


def _best_stepper(improved: np.ndarray, new: PyTree, old: PyTree) -> PyTree:
    if np.all(improved):
        return new
    if not np.any(improved):
        return old
    # Some seeds improved: take their parameters (the seed axis is first).
    def choose(new_leaf, old_leaf):
        condition = improved.reshape(improved.shape + (1,) * (new_leaf.ndim - improved.ndim))
        return jnp.where(condition, new_leaf, old_leaf)

    arrays = jax.tree_util.tree_map(
        choose, eqx.filter(new, eqx.is_array), eqx.filter(old, eqx.is_array)
    )
    return eqx.combine(arrays, old)
