"""Validate every `every` updates, keep the best stepper, stop early on a plateau."""

import os
from pathlib import Path
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._state._stepper_file import save_stepper
from .._state._train_state import VALIDATION_STATE
from .._state._validation_history import MonitorMode, empty_history, record_validation
from .._loop._validate import ValidationPlan
from .._loop._loop import Loop
from ._base import AbstractPeriodicHook


# The validation noise (stochastic configurations and steppers) is the same at every
# validation, so values of different steps are comparable; it is derived from this.
VALIDATION_SEED = 0x5EED


class Validation(AbstractPeriodicHook):
    """Run the validation metrics every `every` updates and at the final update.

    The values go to the hook's state, `loop.hook_states["validation"]` (a
    [`trainax_fm.ValidationHistory`][], also read as `loop.validation`), which is part
    of the train state, its checkpoints and the result; it holds the best stepper and
    the patience counter too. After each validation the best stepper is kept (and
    written to `best_path`), and with a `patience` the run stops once that many
    validations in a row brought no improvement.

    Runs after the non-finite guard and before the checkpoint hook, so a checkpoint
    at a validation step holds that validation.
    """

    # The record starts at the first validation, when the metric names are known
    # (so `init_state` keeps the default: none yet).
    state_name = VALIDATION_STATE

    def __init__(
        self,
        plan: ValidationPlan,
        every: Optional[int],
        final_step: int,
        *,
        monitor: Optional[str],
        mode: MonitorMode,
        min_delta: float,
        patience: Optional[int],
        best_path: Optional[Union[str, os.PathLike]],
    ):
        self.plan = plan
        self.every = every
        self.final_step = final_step
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.patience = patience
        self.best_path = None if best_path is None else Path(best_path)
        self.key = jax.random.PRNGKey(VALIDATION_SEED)

    def on_start(self, loop: Loop) -> None:
        if loop.traced:
            raise ValueError(
                "validation needs concrete values on the host, but `train` runs under a "
                "JAX transformation (jit/vmap). Train seeds with `num_seeds=` instead of "
                "vmapping `train`, or drop `validation_data`."
            )
        if self._patience_exhausted(loop):
            loop.request_stop(self._stop_reason(loop))

    def on_period(self, loop: Loop) -> None:
        self.validate(loop)

    def on_end(self, loop: Loop) -> None:
        # A call that ends at a validation step (or at the run's last update) validates
        # there; one interrupted elsewhere (`num_steps`) does not, so that resuming it
        # validates at the same steps as the uninterrupted run.
        history = loop.hook_states.get(self.state_name)
        done = history is not None and history.num_validations > 0 and (
            int(history.steps[-1]) == loop.step
        )
        due = loop.step == self.final_step or (
            self.every is not None and loop.step % self.every == 0
        )
        if due and not done and loop.step > 0:
            self.validate(loop)

    def validate(self, loop: Loop) -> None:
        seeds = loop.num_seeds is not None
        values = self.plan.evaluate(
            loop.problem, loop.stepper, self.key, jnp.asarray(loop.step), seeds
        )
        history = loop.hook_states.get(self.state_name)
        if history is None:
            if self.monitor is None:  # only user metrics: the first value they report
                self.monitor = next(iter(values))
            if self.monitor not in values:
                raise ValueError(
                    f"`monitor={self.monitor!r}` is not among the validation metrics "
                    f"{sorted(values)}; monitor one of them."
                )
            history = empty_history(
                loop.stepper, tuple(values), self.monitor, self.mode, self.min_delta,
                loop.num_seeds,
            )
        missing = sorted(set(history.values) - set(values))
        if missing:
            raise ValueError(
                f"the validation metrics returned no {missing} at update {loop.step} "
                "(they did at earlier validations); metrics must report the same names "
                "every time."
            )
        history, improved = record_validation(history, loop.step, values, loop.stepper)
        loop.hook_states[self.state_name] = history
        if self.best_path is not None and bool(np.any(improved)):
            if jax.process_index() == 0:
                save_stepper(self.best_path, history.best_stepper)
        if self._patience_exhausted(loop):
            loop.request_stop(self._stop_reason(loop))

    def _patience_exhausted(self, loop: Loop) -> bool:
        history = loop.hook_states.get(self.state_name)
        if self.patience is None or history is None:
            return False
        return bool(np.all(np.asarray(history.since_improvement) >= self.patience))

    def _stop_reason(self, loop: Loop) -> str:
        best = np.asarray(loop.hook_states[self.state_name].best_step).tolist()
        return (
            f"early stopping: {self.monitor} did not improve by more than "
            f"{self.min_delta} for {self.patience} validations (best at update {best})"
        )
