"""Validation metrics of a stepper on held-out trajectories.

The built-in metrics of one validation (the configuration's loss on every validation
window, the rollout nRMSE at each horizon) are one compiled program; user metrics are
called on the host afterwards.
"""

import dataclasses
import re
from typing import Any, Callable, Optional, Sequence, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._argument_checks import check_positive_int, check_trajectories, describe_leaves
from .._rollout._inference import rollout
from .._stepper._block import BlockStepper
from ..data._conditioned import ConditionedTrajectories
from ..data._disk import DiskTrajectories
from ..data._windows import TrajectorySubStacker
from ..flow._steppers import AbstractFlowStepper
from ..metrics._errors import nrmse
from ._problem import Problem

LOSS_METRIC = "loss"
_NRMSE = re.compile(r"^nrmse@([1-9][0-9]*)$")

MetricSpec = Union[str, Callable[[Any, Any], dict]]


class MetricSet(eqx.Module):
    """The parsed `validation_metrics`: built-in names and user callables."""

    with_loss: bool = eqx.field(static=True)
    horizons: tuple[int, ...] = eqx.field(static=True)
    user_metrics: tuple[Callable, ...] = eqx.field(static=True)

    @property
    def builtin_names(self) -> tuple[str, ...]:
        names = (LOSS_METRIC,) if self.with_loss else ()
        return names + tuple(f"nrmse@{k}" for k in self.horizons)


def parse_metrics(metrics: Sequence[MetricSpec]) -> MetricSet:
    """Check `validation_metrics` and split it into built-ins and callables."""
    if isinstance(metrics, (str, bytes)) or callable(metrics):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise TypeError(
            "`validation_metrics` must be a sequence of metric names ('loss', "
            f"'nrmse@10') and callables, got {type(metrics).__name__}."
        ) from None
    with_loss, horizons, user = False, [], []
    for metric in metrics:
        if callable(metric):
            user.append(metric)
        elif metric == LOSS_METRIC:
            with_loss = True
        elif isinstance(metric, str) and _NRMSE.match(metric):
            horizons.append(int(_NRMSE.match(metric).group(1)))
        else:
            raise ValueError(
                f"unknown validation metric {metric!r}: use 'loss' (the training "
                "configuration on validation windows), 'nrmse@K' (rollout nRMSE after K "
                "steps, e.g. 'nrmse@10') or a callable `metric(stepper, data) -> dict`."
            )
    if len(set(horizons)) != len(horizons):
        raise ValueError(f"`validation_metrics` repeats an nRMSE horizon: {metrics}.")
    return MetricSet(with_loss, tuple(sorted(horizons)), tuple(user))


def check_validation_data(
    validation_data: PyTree, training_data: PyTree, metrics: MetricSet, window_length: int,
    num_input_steps: int,
) -> None:
    """Validation trajectories must look like the training ones and be long enough."""
    conditioned = isinstance(training_data, ConditionedTrajectories)
    if conditioned != isinstance(validation_data, ConditionedTrajectories):
        raise ValueError(
            "`validation_data` must be a ConditionedTrajectories exactly when the "
            f"training data is one (training data: {type(training_data).__name__}, "
            f"validation_data: {type(validation_data).__name__}); the stepper needs the "
            "same constants on both."
        )
    if conditioned:
        for name in ("constant_scalars", "constant_fields"):
            train_value = getattr(training_data, name)
            value = getattr(validation_data, name)
            train_shape = None if train_value is None else tuple(train_value.shape[1:])
            shape = None if value is None else tuple(value.shape[1:])
            if shape != train_shape:
                raise ValueError(
                    f"`validation_data.{name}` must hold per trajectory what the training "
                    f"data holds (shape per trajectory {train_shape}), got {shape}."
                )
        validation_data = validation_data.trajectories
        training_data = training_data.trajectories
    check_trajectories(validation_data, "validation_data")
    if isinstance(training_data, DiskTrajectories):  # its shape, without reading it
        training_data = jax.ShapeDtypeStruct(training_data.shape, training_data.dtype)
    train_structure = jtu.tree_structure(training_data)
    if jtu.tree_structure(validation_data) != train_structure:
        raise ValueError(
            "`validation_data` must have the structure of the training trajectories "
            f"{describe_leaves(training_data)}, got {describe_leaves(validation_data)}."
        )
    for validation, training in zip(
        jtu.tree_leaves(validation_data), jtu.tree_leaves(training_data)
    ):
        if tuple(validation.shape[2:]) != tuple(training.shape[2:]):
            raise ValueError(
                "`validation_data` states must have the shape of the training states "
                f"(C, *spatial) = {tuple(training.shape[2:])}, got {tuple(validation.shape[2:])} "
                f"(validation_data shape {tuple(validation.shape)}). Hold out trajectories "
                "of the same simulation setup."
            )
    num_time_steps = jtu.tree_leaves(validation_data)[0].shape[1]
    needed = max(
        window_length if metrics.with_loss else 1,
        num_input_steps + max(metrics.horizons, default=0),
    )
    if num_time_steps < needed:
        raise ValueError(
            f"`validation_data` trajectories have {num_time_steps} snapshots, but the "
            f"validation metrics need {needed} (windows of {window_length} for 'loss', "
            f"{num_input_steps} initial states plus the longest nRMSE horizon). Use "
            "longer validation trajectories or shorter horizons."
        )
    if metrics.horizons and not isinstance(validation_data, (jax.Array, np.ndarray)):
        raise ValueError(
            "'nrmse@K' validation metrics need array trajectories (S, T, C, *spatial); "
            "for PyTree data use 'loss' and your own metric callables."
        )


def rollout_signature(stepper) -> tuple[bool, int]:
    """Whether rolling `stepper` out needs keys, and how many past states it sees."""
    if isinstance(stepper, AbstractFlowStepper):
        return True, stepper.num_input_steps
    if isinstance(stepper, BlockStepper):
        # Its rollout starts from as many states as its network sees.
        return False, stepper.num_context_steps
    return False, 1


def check_validation_options(options, stacker: TrajectorySubStacker) -> None:
    """At trainer construction: validation data that cannot work with these windows."""
    if options.validation_data is not None:
        check_validation_data(
            options.validation_data, stacker.data_trajectories, options.metric_set,
            stacker.window_length * stacker.num_output_steps, 1,
        )


class ValidationPlan(eqx.Module):
    """Everything one validation computes, ready to compile.

    **Attributes:**

    - `data`: the validation trajectories; `windows`: their training-length windows.
    - `metrics`: what to compute; `chunk_size`: windows per loss evaluation.
    - `stochastic`: whether the rollout passes keys to the stepper.
    - `num_input_steps`: past states the stepper sees in a rollout.
    """

    data: PyTree
    windows: Optional[TrajectorySubStacker]
    metrics: MetricSet
    chunk_size: int = eqx.field(static=True)
    stochastic: bool = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    num_output_steps: int = eqx.field(static=True)

    def __init__(self, data, metrics: MetricSet, window_length: int, chunk_size: int,
                 stochastic: bool, num_input_steps: int, num_output_steps: int = 1):
        if not isinstance(data, ConditionedTrajectories):
            data = jtu.tree_map(jnp.asarray, data)
        self.data = data
        # `window_length` counts the time levels the configuration sees (blocks of
        # `num_output_steps` states for a block stepper), as in the training windows.
        self.windows = (
            TrajectorySubStacker(
                self.data, window_length * num_output_steps, num_output_steps=num_output_steps
            )
            if metrics.with_loss
            else None
        )
        self.metrics = metrics
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.stochastic = stochastic
        self.num_input_steps = num_input_steps
        self.num_output_steps = num_output_steps

    def evaluate(self, problem: Problem, stepper, key: PRNGKeyArray, step, seeds: bool) -> dict:
        """All metrics of one validation, as host floats (seed arrays with seeds)."""
        values = _builtin_metrics(self, loss_only(problem), stepper, key, step, seeds)
        values = {name: np.asarray(value) for name, value in values.items()}
        for metric in self.metrics.user_metrics:
            values.update(_user_metric(metric, stepper, self.data, seeds, values))
        return values


def loss_only(problem: Problem) -> Problem:
    """`problem` without what only the update needs (its optimizer and training data),
    so that the compiled validation is shared by runs with other optimizer objects."""
    return dataclasses.replace(problem, stacker=None, optimizer=None)


def windows_loss(plan: ValidationPlan, problem: Problem, stepper, key, step) -> Array:
    """The configuration's mean loss over every validation window, in chunks."""
    num_windows = plan.windows.num_total_samples
    size = min(plan.chunk_size, num_windows)
    num_full, rest = divmod(num_windows, size)

    def chunk_loss(start, count, chunk_key):
        windows = plan.windows(start + jnp.arange(count))
        return problem.loss(stepper, windows, chunk_key, step)

    keys = jax.random.split(key, num_full + 1)
    total = jnp.sum(
        jax.lax.map(
            lambda i: chunk_loss(i * size, size, keys[i]), jnp.arange(num_full)
        )
    ) * size
    if rest:
        total = total + chunk_loss(num_full * size, rest, keys[num_full]) * rest
    return total / num_windows


def rollout_nrmse(plan: ValidationPlan, stepper, key) -> dict[str, Array]:
    """nRMSE after each horizon, mean over the validation trajectories."""
    history = plan.num_input_steps
    longest = max(plan.metrics.horizons)
    data, constants = plan.data, {}
    if isinstance(data, ConditionedTrajectories):
        constants = {
            "constant_scalars": data.constant_scalars,
            "constant_fields": data.constant_fields,
        }
        data = data.trajectories
    initial = data[:, 0] if history == 1 else data[:, :history]
    # A block stepper returns `num_output_steps` states per call.
    num_calls = -(-longest // plan.num_output_steps)
    prediction = rollout(
        stepper, initial, num_calls, batched=True, num_input_steps=history,
        key=key if plan.stochastic else None, **constants,
    )[:, :longest]
    curve = nrmse(prediction, data[:, history : history + longest], batched=True)
    return {f"nrmse@{k}": curve[k - 1] for k in plan.metrics.horizons}


@eqx.filter_jit
def _builtin_metrics(plan: ValidationPlan, problem: Problem, stepper, key, step, seeds: bool):
    def one_seed(stepper):
        loss_key, rollout_key = jax.random.split(key)
        values = {}
        if plan.metrics.with_loss:
            values[LOSS_METRIC] = windows_loss(plan, problem, stepper, loss_key, step)
        if plan.metrics.horizons:
            values.update(rollout_nrmse(plan, stepper, rollout_key))
        return values

    return eqx.filter_vmap(one_seed)(stepper) if seeds else one_seed(stepper)


def _user_metric(metric: Callable, stepper, data, seeds: bool, known: dict) -> dict:
    name = getattr(metric, "__name__", type(metric).__name__)
    if seeds:
        num_seeds = jtu.tree_leaves(eqx.filter(stepper, eqx.is_array))[0].shape[0]
        per_seed = [
            _check_metric_output(
                metric(jtu.tree_map(lambda x: x[i] if eqx.is_array(x) else x, stepper), data),
                name,
            )
            for i in range(num_seeds)
        ]
        result = {key: np.stack([values[key] for values in per_seed]) for key in per_seed[0]}
    else:
        result = _check_metric_output(metric(stepper, data), name)
    clashes = sorted(set(result) & set(known))
    if clashes:
        raise ValueError(
            f"validation metric {name} returned {clashes}, which another metric already "
            "reports; give your metric's values distinct names."
        )
    return result


def _check_metric_output(values: Any, name: str) -> dict:
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise TypeError(
            f"validation metric {name} must return a dict of name -> scalar, got "
            f"{type(values).__name__}."
        )
    out = {}
    for key, value in values.items():
        value = np.asarray(value)
        if value.shape != ():
            raise ValueError(
                f"validation metric {name} returned {key!r} of shape {value.shape}; "
                "each value must be a scalar."
            )
        out[key] = value
    return out
