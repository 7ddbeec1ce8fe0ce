from typing import Any, Callable, Optional, Sequence

import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._argument_checks import check_positive_int
from .._loop._problem import Problem, full_dataset_loss
from .._loop._configuration_state import with_configuration_state
from .._loop._precision import with_loss_scale
from .._loop._loop import AbstractHook
from .._loop._options import (
    EngineOptions,
    make_options,
)
from .._loop._validate import check_validation_options
from .._state._train_state import TrainResult, TrainState
from .._stepper._seed_stacking import stack_seed_steppers
from ..configuration._base import BaseConfiguration
from ..configuration._callable import as_configuration
from ..data._mixer import effective_batch_size
from ..data._windows import TrajectorySubStacker
from ._checks import (
    check_batch_on_mesh,
    check_callback,
    check_data_on_disk,
    check_optimizer,
)
from ._keywords import GeneralTrainerKeywords, keyword_init
from ._train_call import train_trainer


class GeneralTrainer(eqx.Module):
    """Train an autoregressive emulator with any configuration on windows of data.

    The training loop runs on device: each update samples its minibatch indices from a
    static-shape stream of per-epoch permutations, gathers the windows from the stored
    trajectories, evaluates the configuration, its gradient and the optax update. Light
    updates run many at a time inside one compiled loop, heavy ones one per dispatch.
    Checkpoints, the non-finite guard, the progress bar and callbacks are hooks on the
    loop (see [`trainax_fm.hook`][]); pass more with `train(..., hooks=[...])`.

    **Arguments:**

    - `trajectory_sub_stacker`: the windows ([`trainax_fm.TrajectorySubStacker`][]);
        their length must be at least what `loss_configuration` needs.
    - `loss_configuration`: the configuration that turns a minibatch into a loss.
    - `ref_stepper`: reference simulator, for configurations that need one.
    - `residuum_fn`: residuum function, for residuum configurations.
    - `optimizer`: an `optax.GradientTransformation`. For a configuration with a state
        (`has_state`, e.g. a balanced Composite) the trainer's `optimizer` attribute
        wraps it so that its state holds the configuration's; pass
        `trainer.optimizer` to [`trainax_fm.load_train_state`][].
    - `num_minibatches`: total number of updates.
    - `batch_size`: windows per update (full-batch with a warning if there are fewer).
    - `callback_fn`: called as `callback_fn(update_i, stepper, data)` before update
        `update_i`; see [`trainax_fm.callback`][].
    - the engine options, the fields of [`trainax_fm.EngineOptions`][]
        (`steps_per_dispatch`, `mesh`, `batch_axis`, `num_seeds`, `checkpoint_path`,
        `checkpoint_every`, `on_nonfinite`, and the validation options
        `validation_data`, `validate_every`, `validation_metrics`, `monitor`,
        `monitor_mode`, `patience`, `min_delta`, `best_path`).
    """

    trajectory_sub_stacker: TrajectorySubStacker
    loss_configuration: Any
    ref_stepper: Any
    residuum_fn: Any
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    num_minibatches: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    callback_fn: Any = eqx.field(static=True)
    options: EngineOptions

    __init__ = keyword_init(GeneralTrainerKeywords)

    def initialise(
        self,
        trajectory_sub_stacker: TrajectorySubStacker,
        loss_configuration: Any,
        *,
        ref_stepper: Optional[Callable],
        residuum_fn: Optional[Callable],
        optimizer: optax.GradientTransformation,
        num_minibatches: int,
        batch_size: int,
        callback_fn: Optional[Callable],
        **engine_options: Any,
    ) -> None:
        """Check the arguments and set the fields (what `__init__` runs, with every
        keyword of `GeneralTrainerKeywords` filled in)."""
        if not isinstance(trajectory_sub_stacker, TrajectorySubStacker):
            raise TypeError(
                "`trajectory_sub_stacker` must be a trainax_fm.TrajectorySubStacker, got "
                f"{type(trajectory_sub_stacker).__name__}."
            )
        if not callable(loss_configuration):
            raise TypeError(
                "`loss_configuration` must be a configuration (e.g. "
                f"trainax_fm.configuration.Supervised()), got {type(loss_configuration).__name__}."
            )
        check_optimizer(optimizer)
        # What the configuration needs, read from its declared protocol (a trainax
        # callable is wrapped here, once, to declare it).
        configuration = as_configuration(loss_configuration)
        needed = configuration.required_window_length
        if trajectory_sub_stacker.window_length < needed:
            raise ValueError(
                f"{type(loss_configuration).__name__} needs windows of {needed} "
                f"snapshots but `trajectory_sub_stacker` provides "
                f"{trajectory_sub_stacker.window_length}. Build it with "
                f"`sub_trajectory_len={needed}` (and `only_store_ic=False`)."
            )
        name = type(loss_configuration).__name__
        if configuration.needs_ref_stepper and ref_stepper is None:
            raise ValueError(
                f"{name} compares against a reference simulator: pass `ref_stepper=...`."
            )
        if configuration.needs_residuum_fn and residuum_fn is None:
            raise ValueError(f"{name} needs `residuum_fn=...` (u_next, u_prev) -> residuum.")
        check_callback(callback_fn)
        self.trajectory_sub_stacker = trajectory_sub_stacker
        self.loss_configuration = loss_configuration
        self.ref_stepper = ref_stepper
        self.residuum_fn = residuum_fn
        if isinstance(loss_configuration, BaseConfiguration) and loss_configuration.has_state:
            # The configuration's state (e.g. adaptive weights) lives in the optimizer
            # state, so checkpoints, seeds and resume carry it.
            optimizer = with_configuration_state(optimizer, loss_configuration)
        self.options = make_options(**engine_options)
        precision = self.options.precision
        if precision is not None and precision.scaling == "dynamic":
            # The loss scale lives in the optimizer state too, for the same reasons.
            optimizer = with_loss_scale(optimizer, precision)
        self.optimizer = optimizer
        self.num_minibatches = check_positive_int(num_minibatches, "num_minibatches")
        self.batch_size = effective_batch_size(
            trajectory_sub_stacker.num_total_samples,
            check_positive_int(batch_size, "batch_size"),
        )
        self.callback_fn = callback_fn
        check_batch_on_mesh(self.options, self.batch_size)
        check_validation_options(self.options, trajectory_sub_stacker)
        check_data_on_disk(self.options, trajectory_sub_stacker)

    def make_problem(self, options: Optional[EngineOptions] = None) -> Problem:
        """What the compiled update needs besides the trained state."""
        options = self.options if options is None else options
        return Problem(
            self.trajectory_sub_stacker,
            as_configuration(self.loss_configuration),
            self.ref_stepper,
            self.residuum_fn,
            self.optimizer,
            self.batch_size,
            options.on_nonfinite == "skip",
            options.mesh,
            options.batch_axis,
            options.precision,
            options.parameter_axis,
        )

    # --- trainax-compatible pieces ---------------------------------------------------

    def full_loss(
        self, stepper: eqx.Module, *, key: Optional[PRNGKeyArray] = None
    ) -> Float[Array, ""]:
        """The configuration's loss on all windows at once (may need much memory).

        **Arguments:**

        - `stepper`: the stepper to evaluate.
        - `key`: random key for stochastic configurations.

        **Returns:**

        - The scalar loss.
        """
        return full_dataset_loss(self.make_problem(), stepper, key)

    def step_fn(
        self,
        stepper: eqx.Module,
        opt_state: optax.OptState,
        data: PyTree[Float[Array, "batch window ..."]],
        *,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> tuple[eqx.Module, optax.OptState, Float[Array, ""]]:
        """One optax update on the minibatch `data`.

        **Returns:**

        - `(new_stepper, new_opt_state, loss)`, with the loss before the update.
        """
        return self.make_problem().update(stepper, opt_state, data, key, step)

    def __call__(
        self,
        stepper: eqx.Module,
        key: PRNGKeyArray,
        opt_state: Optional[optax.OptState] = None,
        *,
        return_loss_history: bool = True,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
    ):
        """Train `stepper` for `num_minibatches` updates (trainax-compatible).

        **Arguments:**

        - `stepper`: the `eqx.Module` to train.
        - `key`: the run's random key (minibatch order and configuration noise).
        - `opt_state`: initial optimizer state; `None` initialises it.
        - `return_loss_history`: whether to return the loss history.
        - `record_loss_every`: record every k-th loss, starting at update 0.
        - `spawn_tqdm`: show a progress bar with the current loss.

        **Returns:**

        - `(stepper, loss_history)`, or `stepper` if `return_loss_history=False`; with a
          callback `(stepper, loss_history, aux_history)` or `(stepper, aux_history)`.
          Use [`trainax_fm.GeneralTrainer.train`][] for a fixed result type.
        """
        result = self.train(
            stepper, key, opt_state, record_loss_every=record_loss_every, spawn_tqdm=spawn_tqdm
        )
        return trainax_outputs(result, return_loss_history, self.callback_fn is not None)

    def train_seeds(
        self,
        make_stepper: Callable[[PRNGKeyArray], eqx.Module],
        key: PRNGKeyArray,
        num_seeds: int,
        *,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
        hooks: Sequence[AbstractHook] = (),
        **engine_options,
    ) -> TrainResult:
        """Train `num_seeds` independently initialised steppers in one batched run.

        Seed `i` initialises its stepper with `make_stepper(init_keys[i])` and trains
        with `run_keys[i]`, where `init_keys, run_keys` are `num_seeds` keys split from
        the two halves of `key`. The result equals (up to floating-point reassociation)
        `num_seeds` separate `train` calls with those keys, but every update of all
        seeds is one vmapped computation inside the same engine (sampling, dispatch,
        non-finite checks per seed and checkpoints all work).

        **Arguments:**

        - `make_stepper`: builds a stepper from a key, e.g.
            `lambda k: eqx.nn.Conv1d(1, 1, 3, padding=1, key=k)`.
        - `key`: the key all seeds are derived from.
        - `num_seeds`: number of seeds.
        - `record_loss_every`, `spawn_tqdm`, `hooks`, `**engine_options`: as in
            `train` (the progress bar shows the seed mean).

        **Returns:**

        - A [`trainax_fm.TrainResult`][] whose stepper, optimizer state and loss
          history carry a leading seed axis.
        """
        num_seeds = check_positive_int(num_seeds, "num_seeds")
        init_key, run_key = jax.random.split(key)
        init_keys = jax.random.split(init_key, num_seeds)
        run_keys = jax.random.split(run_key, num_seeds)
        steppers = stack_seed_steppers(make_stepper, init_keys)
        return self.train(
            steppers,
            run_keys,
            record_loss_every=record_loss_every,
            spawn_tqdm=spawn_tqdm,
            hooks=hooks,
            **{**engine_options, "num_seeds": num_seeds},
        )

    def train(
        self,
        stepper: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        opt_state: Optional[optax.OptState] = None,
        *,
        resume_from: Optional[TrainState] = None,
        num_steps: Optional[int] = None,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
        hooks: Sequence[AbstractHook] = (),
        **engine_options,
    ) -> TrainResult:
        """Train and return a [`trainax_fm.TrainResult`][].

        **Arguments:**

        - `stepper`, `key`, `opt_state`: as in `__call__` (not needed when resuming).
        - `resume_from`: a [`trainax_fm.TrainState`][] of an earlier run with this
            trainer; training continues exactly where it stopped.
        - `num_steps`: stop after this many updates of this call (default: until
            `num_minibatches` updates in total).
        - `record_loss_every`: keep every k-th loss (counted from update 0 of the run).
        - `spawn_tqdm`: show a progress bar.
        - `hooks`: more [`trainax_fm.hook.AbstractHook`][]s, run after the built-in
            ones (callbacks, non-finite guard, checkpoints, progress bar).
        - `**engine_options`: any field of [`trainax_fm.EngineOptions`][], overriding
            the trainer's for this call (e.g. `checkpoint_path=...`, `num_seeds=4`).
            When resuming, the seed count and the dispatch size of the saved run are
            kept.

        **Returns:**

        - A `TrainResult` with the stepper, optimizer state, loss history, callback
          history, the train state to resume from, and why a hook stopped early.
        """
        options = self.options.replace(**engine_options)
        check_batch_on_mesh(options, self.batch_size)
        check_validation_options(options, self.trajectory_sub_stacker)
        check_data_on_disk(options, self.trajectory_sub_stacker)
        return train_trainer(
            self,
            options,
            stepper,
            key,
            opt_state,
            resume_from=resume_from,
            num_steps=num_steps,
            record_loss_every=check_positive_int(record_loss_every, "record_loss_every"),
            spawn_tqdm=spawn_tqdm,
            hooks=hooks,
        )




def trainax_outputs(result: TrainResult, return_loss_history: bool, has_callback: bool):
    """trainax's return convention: the stepper, then the losses and the callback
    results if asked for; a lone stepper is not wrapped in a tuple."""
    outputs = [result.stepper]
    if return_loss_history:
        outputs.append(result.loss_history)
    if has_callback:
        outputs.append(result.aux_history)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
