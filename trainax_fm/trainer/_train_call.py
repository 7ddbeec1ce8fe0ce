"""One `train` call of a trainer: the state it starts from, its built-in hooks, its result.

This is the trainers' floor: it reads the trainer (optimizer, configuration, windows,
callback) and hands the loop only a problem, options, a state and hooks
(`trainax_fm._loop._run.train_on_loop`).
"""

from typing import Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._argument_checks import check_positive_int
from .._loop._configuration_state import ensure_configuration_state
from .._loop._loop import AbstractHook
from .._loop._options import EngineOptions
from .._loop._run import train_on_loop
from .._loop._validate import ValidationPlan, check_validation_data, rollout_signature
from .._state._train_state import TrainResult, TrainState
from .._stepper._block import BlockStepper
from .._stepper._trainable import trainable_arrays
from ..configuration._base import BaseConfiguration
from ..hook._callbacks import Callbacks
from ..hook._checkpoint import Checkpoint
from ..hook._nonfinite import NonFiniteGuard
from ..hook._progress import ProgressBar
from ..hook._validation import Validation
from ._checks import check_resume_fits_trainer, check_stepper_fits_data


def train_trainer(
    trainer: eqx.Module,
    options: EngineOptions,
    stepper,
    key,
    opt_state,
    *,
    resume_from: Optional[TrainState],
    num_steps: Optional[int],
    record_loss_every: int,
    spawn_tqdm: bool,
    hooks: Sequence[AbstractHook],
    stage: int = 0,
    stage_start=None,
    run_key=None,
) -> TrainResult:
    """Run `trainer` (a [`trainax_fm.GeneralTrainer`][]) with `options` from scratch or
    from `resume_from` (see [`trainax_fm.GeneralTrainer.train`][])."""
    num_seeds = options.num_seeds
    if resume_from is not None:
        if not isinstance(resume_from, TrainState):
            raise TypeError(
                f"`resume_from` must be a trainax_fm.TrainState, got {type(resume_from).__name__}."
            )
        check_resume_fits_trainer(trainer, resume_from)
        stepper, key, opt_state = resume_from.stepper, resume_from.key, resume_from.opt_state
        start, past_losses = resume_from.step, resume_from.loss_history
        dispatch = resume_from.steps_per_dispatch
        if past_losses.ndim == 2:
            num_seeds = past_losses.shape[0]
        stage, stage_start, run_key = (
            resume_from.stage, resume_from.stage_start, resume_from.run_key
        )
        hook_states = resume_from.hook_states
    else:
        if stepper is None or key is None:
            raise TypeError("`train` needs `stepper` and `key` (or `resume_from=`).")
        start, dispatch = 0, None
        past_losses = jnp.zeros((0,) if num_seeds is None else (num_seeds, 0))
        hook_states = {}
    if num_seeds is None:
        check_key(key)
    else:
        check_seed_axis(num_seeds, stepper, key)
    if opt_state is None:
        init = trainer.optimizer.init
        if num_seeds is not None:
            init = eqx.filter_vmap(init)
        opt_state = init(trainable_arrays(stepper))
    if isinstance(trainer.loss_configuration, BaseConfiguration):
        opt_state = ensure_configuration_state(
            opt_state, trainer.loss_configuration, num_seeds
        )
    stop = trainer.num_minibatches
    if num_steps is not None:
        stop = min(stop, start + check_positive_int(num_steps, "num_steps", minimum=0))

    problem = trainer.make_problem(options)
    state = TrainState(
        stepper, opt_state, start, key, past_losses, dispatch, stage, stage_start,
        run_key, hook_states=hook_states,
    )
    callbacks = None if trainer.callback_fn is None else Callbacks(trainer.callback_fn)
    validate = validation_hook(trainer, options, stepper)
    try:
        loop = train_on_loop(
            problem, options, state,
            builtin_hooks(options, callbacks, validate, spawn_tqdm) + list(hooks), stop=stop,
        )
    except (TypeError, ValueError) as error:
        # Checked only once training failed, since the check traces the loss once more
        # (a visible share of a short run): a network that does not fit the data is
        # then reported in terms of the data and the network, anything else as it was.
        if options.precision is not None and "must be float32 or float64" in str(error):
            raise ValueError(
                f"{error}\nWith `precision` the networks compute in "
                f"{options.precision.compute_dtype}, which JAX's FFT does not take: keep the "
                "spectral layers in float32 with `MixedPrecision(..., keep_float32=("
                "SpectralLayerClass,))` (the class or its name)."
            ) from error
        if resume_from is None:
            check_stepper_fits_data(problem, stepper, key, num_seeds)
        raise
    state = loop.train_state()
    return TrainResult(
        loop.stepper,
        loop.opt_state,
        state.loss_history[..., ::record_loss_every],
        [] if callbacks is None else callbacks.history,
        state,
        loop.stop_reason,
        state.validation,
    )


def validation_hook(
    trainer: eqx.Module, options: EngineOptions, stepper
) -> Optional[Validation]:
    """The validation hook the options ask for (checked against this stepper)."""
    if options.validation_data is None:
        return None
    stochastic, num_input_steps = rollout_signature(stepper)
    metrics = options.metric_set
    stacker = trainer.trajectory_sub_stacker
    block = stacker.num_output_steps > 1
    if block and metrics.horizons and not isinstance(stepper, BlockStepper):
        raise ValueError(
            f"'nrmse@K' validation with num_output_steps={stacker.num_output_steps} rolls "
            "out a trainax_fm.BlockStepper, got a "
            f"{type(stepper).__name__}; wrap the network in BlockStepper(network, "
            f"{stacker.num_output_steps}) or validate with 'loss' only."
        )
    check_validation_data(
        options.validation_data, stacker.data_trajectories, metrics,
        stacker.window_length * stacker.num_output_steps, num_input_steps,
    )
    plan = ValidationPlan(
        options.validation_data, metrics, stacker.window_length, max(trainer.batch_size, 256),
        stochastic, num_input_steps, stacker.num_output_steps,
    )
    monitor = options.monitor
    if monitor is None and metrics.builtin_names:
        monitor = metrics.builtin_names[0]
    return Validation(
        plan, options.validate_every, trainer.num_minibatches, monitor=monitor,
        mode=options.monitor_mode, min_delta=float(options.min_delta),
        patience=options.patience, best_path=options.best_path,
    )


def builtin_hooks(
    options: EngineOptions,
    callbacks: Optional[Callbacks],
    validation: Optional[Validation],
    spawn_tqdm: bool,
) -> list[AbstractHook]:
    """The hooks every run has, in the order they must see each event."""
    hooks: list[AbstractHook] = [] if callbacks is None else [callbacks]
    checkpoint = None
    if options.checkpoint_path is not None:
        checkpoint = Checkpoint(options.checkpoint_path, options.checkpoint_every)
    if options.on_nonfinite == "raise":
        # Before the checkpoint: a bad state must never replace the last good file.
        hooks.append(NonFiniteGuard(lambda: checkpoint and checkpoint.last_written,
                                    lambda: checkpoint and checkpoint.last_step))
    if validation is not None:
        # Before the checkpoint: a checkpoint at a validation step holds its values.
        hooks.append(validation)
    if checkpoint is not None:
        hooks.append(checkpoint)
    if spawn_tqdm:
        hooks.append(ProgressBar())
    return hooks


def check_seed_axis(num_seeds, stepper, key):
    check_key(key[0] if getattr(key, "ndim", 0) >= 1 else key)
    leaves = jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array))
    for name, tree_leaves in (("key", [key]), ("stepper", leaves)):
        for leaf in tree_leaves:
            if leaf.ndim == 0 or leaf.shape[0] != num_seeds:
                raise ValueError(
                    f"with `num_seeds={num_seeds}` every array of `{name}` needs a leading "
                    f"seed axis of length {num_seeds}, found shape {tuple(leaf.shape)}. "
                    "Build them with `eqx.filter_vmap(make)(jax.random.split(key, "
                    f"{num_seeds}))` or use `train_seeds`."
                )


def check_key(key):
    if not hasattr(key, "dtype") or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,))
    ):
        raise TypeError(
            "`key` must be a JAX random key (jax.random.PRNGKey(0) or "
            f"jax.random.key(0)), got {key!r}."
        )
