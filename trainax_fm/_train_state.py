"""What a training run produces: the resumable train state and the result record."""

from typing import Any, Optional

import equinox as eqx
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._validation_history import ValidationHistory


class TrainState(eqx.Module):
    """Everything needed to continue a run exactly where it stopped.

    The sampler position is not stored: it is a pure function of `key` and `step`
    (see `trainax_fm._mixer`), so resuming continues with the same minibatches.

    **Arguments:**

    - `stepper`: the stepper after `step` updates.
    - `opt_state`: the optimizer state after `step` updates.
    - `step`: number of updates performed so far.
    - `key`: the key the run was started with.
    - `loss_history`: the loss of every update so far (before each update), length
        `step` (with a leading seed axis for seed-parallel runs).
    - `steps_per_dispatch`: the dispatch size the run used; a resumed run with
        `steps_per_dispatch="auto"` keeps it, so it continues bit-identically.
    - `stage`: for a run of several stages (see [`trainax_fm.Stage`][]), the stage
        this state belongs to (`step` counts the updates of that stage).
    - `stage_start`: the stepper the stage started from (e.g. the frozen teacher of a
        distillation stage), `None` for single-stage runs.
    - `run_key`: the key of the whole multi-stage run (each stage trains with a key
        derived from it), `None` for single-stage runs.
    - `validation`: the [`trainax_fm.ValidationHistory`][] so far (values, best
        stepper, patience counter), `None` without validation.
    - `batch_size`: the windows per update of the run, and `window_length`: the
        snapshots per window (what the configuration's rollout needs); resuming with
        a trainer that differs in either is refused. `None` in states of older files
        (then unchecked).
    """

    stepper: Any
    opt_state: optax.OptState
    step: int = eqx.field(static=True)
    key: PRNGKeyArray
    loss_history: Float[Array, " step"]
    steps_per_dispatch: Optional[int] = eqx.field(static=True, default=None)
    stage: int = eqx.field(static=True, default=0)
    stage_start: Any = None
    run_key: Optional[PRNGKeyArray] = None
    validation: Optional[ValidationHistory] = None
    batch_size: Optional[int] = eqx.field(static=True, default=None)
    window_length: Optional[int] = eqx.field(static=True, default=None)


class TrainResult(eqx.Module):
    """The fixed-type result of [`trainax_fm.GeneralTrainer.train`][].

    **Arguments:**

    - `stepper`: the trained stepper.
    - `opt_state`: the final optimizer state.
    - `loss_history`: recorded losses (every `record_loss_every`-th update, starting at
        update 0, each measured with the parameters before that update).
    - `aux_history`: one entry per update of this call with what the callback returned
        (empty without a callback).
    - `train_state`: the [`trainax_fm.TrainState`][] to resume from.
    - `stop_reason`: why a hook ended training before `num_minibatches` updates (e.g.
        early stopping), `None` if it ran to the end (or to `num_steps`).
    - `validation`: the [`trainax_fm.ValidationHistory`][] of the run (steps and
        values of every validation, the best stepper), `None` without
        `validation_data`.
    """

    stepper: Any
    opt_state: optax.OptState
    loss_history: Float[Array, " num_recorded"]
    aux_history: list
    train_state: Optional[TrainState]
    stop_reason: Optional[str] = eqx.field(static=True, default=None)
    validation: Optional[ValidationHistory] = None

    @property
    def best_stepper(self) -> Any:
        """The stepper with the best monitored validation value (needs validation)."""
        if self.validation is None:
            raise ValueError(
                "this run has no validation, so no best stepper: train with "
                "`validation_data=...` (and `validate_every=...`)."
            )
        return self.validation.best_stepper
