"""What a training run produces: the resumable train state and the result record."""

from typing import Any, Optional

import equinox as eqx
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._validation_history import ValidationHistory

# The name the validation hook keeps its state under (read by `TrainState.validation`).
VALIDATION_STATE = "validation"


class TrainState(eqx.Module):
    """Everything needed to continue a run exactly where it stopped.

    The sampler position is not stored: it is a pure function of `key` and `step`
    (see `trainax_fm.data._mixer`), so resuming continues with the same minibatches.

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
        stepper, patience counter), `None` without validation; stored as the hook
        state `"validation"` (kept as an argument and a read-only attribute for
        compatibility).
    - `batch_size`: the windows per update of the run, and `window_length`: the
        snapshots per window (what the configuration's rollout needs); resuming with
        a trainer that differs in either is refused. `None` in states of older files
        (then unchecked).
    - `hook_states`: the saved state of each stateful hook by its name (see
        `trainax_fm.hook.AbstractHook.state_name`), e.g. `"validation"`.
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
    hook_states: dict[str, PyTree]
    batch_size: Optional[int] = eqx.field(static=True)
    window_length: Optional[int] = eqx.field(static=True)

    def __init__(
        self,
        stepper: Any,
        opt_state: optax.OptState,
        step: int,
        key: PRNGKeyArray,
        loss_history: Float[Array, " step"],
        steps_per_dispatch: Optional[int] = None,
        stage: int = 0,
        stage_start: Any = None,
        run_key: Optional[PRNGKeyArray] = None,
        validation: Optional[ValidationHistory] = None,
        batch_size: Optional[int] = None,
        window_length: Optional[int] = None,
        *,
        hook_states: Optional[dict[str, PyTree]] = None,
    ):
        self.stepper, self.opt_state, self.step, self.key = stepper, opt_state, step, key
        self.loss_history = loss_history
        self.steps_per_dispatch = steps_per_dispatch
        self.stage, self.stage_start, self.run_key = stage, stage_start, run_key
        hook_states = {} if hook_states is None else dict(hook_states)
        if validation is not None:
            hook_states[VALIDATION_STATE] = validation
        self.hook_states = hook_states
        self.batch_size, self.window_length = batch_size, window_length

    @property
    def validation(self) -> Optional[ValidationHistory]:
        """The validation hook's state (see `hook_states`), `None` without validation."""
        return self.hook_states.get(VALIDATION_STATE)


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
