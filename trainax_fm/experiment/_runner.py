"""`run_experiment`: train one configured experiment into a results folder.

The run goes through four steps, each a function: `prepare_run` (configuration,
folder, data, trainer, keys, resume state), `train_run` (the engine trains, checkpoints
and stops on NaN), `evaluate_run` (saved networks, test rollouts, plots) and
`report_run` (`metrics.json` and the summary).
"""

import os
import time
from pathlib import Path
from typing import Callable, Optional, Union

import jax
import numpy as np

from .._state._train_state import TrainState
from ..hook._nonfinite import NonFiniteLossError
from ._evaluate import make_plots, rollout_metrics, write_json
from ._saved_networks import save_networks
from ..hook._logging import Logger
from ._config import split_list
from ._prepare import (
    BEST_FILE,
    PROGRESS_FILE,
    ConfigLike,
    Log,
    Prepared,
    fresh_steppers,
    prepare_run,
)
from ._report import format_summary as format_summary
from ._report import report_run, stopped_early
from ._setup import build_schedule, seed_slice
from ._wording import term

# The files of each log format in the results folder (TensorBoard's have run-specific
# names and are not listed).
LOG_FILES = (("jsonl", "log.jsonl"), ("csv", "train.csv"), ("csv", "validation.csv"))


def train_run(run: Prepared, log: Log) -> TrainState:
    """Train the updates of this call with the engine and record the progress.

    The engine writes the checkpoint every `training.checkpoint_every` updates and at
    the end, and raises [`trainax_fm.NonFiniteLossError`][] on a NaN/Inf loss, leaving
    the last good checkpoint in place. Several seeds train side by side as one
    seed-stacked run (`num_seeds=`); one seed trains unstacked.

    **Arguments:**

    - `run`: the prepared run.
    - `log`: where messages go.

    **Returns:**

    - The [`trainax_fm.TrainState`][] after this call (the resumed one if there was
        nothing left to train).
    """
    config, training = run.config, run.config["training"]
    num_seeds = config["num_seeds"]
    state = run.state
    if run.num_steps > 0:
        log(f"Training {config['name']!r}: {training['method']} with "
            f"{config['network']['spec']} on {config['data']['source']}, "
            f"{num_seeds} seed(s), updates {run.start}..{run.start + run.num_steps}.")
        schedule = dict(
            num_steps=run.num_steps,
            checkpoint_path=run.checkpoint,
            checkpoint_every=training["checkpoint_every"],
            on_nonfinite=training["on_nonfinite"],
            spawn_tqdm=not log.quiet,
            hooks=log_hooks(run),
            **validation_options(run),
        )
        begin = time.perf_counter()
        if state is not None:
            result = run.trainer.train(resume_from=state, **schedule)
        else:
            # One seed trains unstacked (see `fresh_steppers`).
            seeds = None if num_seeds == 1 else num_seeds
            keys = run.shuffle_keys if seeds else run.shuffle_keys[0]
            stepper = fresh_steppers(config, run.dataset, run.init_keys, run.teacher)
            result = run.trainer.train(stepper, keys, num_seeds=seeds, **schedule)
        state = result.train_state
        jax.block_until_ready(state.loss_history)
        seconds = time.perf_counter() - begin
        run.progress["train_seconds"] = run.progress.get("train_seconds", 0.0) + seconds
        if num_seeds > 1:
            # The progress bar shows the seed mean only.
            last = np.asarray(state.loss_history)[:, -1]
            log(f"  update {state.step}/{training['num_training_steps']}: "
                # Significant digits: small losses must not print as 0.
                "loss per seed [" + ", ".join(f"{value:.3g}" for value in last) + "]")
    run.progress["step"] = state.step
    run.progress.pop("failed", None)  # a resumed failed run is healthy again
    write_json(run.out / PROGRESS_FILE, run.progress)
    return state


def nonfinite_advice(run: Prepared, error: NonFiniteLossError) -> NonFiniteLossError:
    """Mark the run failed in `progress.json` and restate a NaN/Inf stop with the
    configuration keys that avoid it and the ways to go on.

    **Arguments:**

    - `run`: the prepared run.
    - `error`: the engine's error (its advice names Python options).

    **Returns:**

    - A [`trainax_fm.NonFiniteLossError`][] whose message names `[training]` keys and
        the command-line options.
    """
    training = run.config["training"]
    # The guard runs before the checkpoint is written, so the file on disk is good.
    checkpoint = run.checkpoint if run.checkpoint.is_file() else None
    step = error.last_checkpoint_step if error.last_checkpoint is not None else run.start
    clip = training["grad_clip_norm"]
    clip_advice = (f"set grad_clip_norm below {clip:g}" if clip > 0
                   else "clip gradients with grad_clip_norm = 1.0")
    if checkpoint is not None:
        kept = f"The last good checkpoint is {str(checkpoint)!r} (update {step})."
        resume = (f"or add {term('resume')} to continue from that checkpoint (same "
                  "configuration)")
    else:
        kept = "No checkpoint was written before the failure."
        resume = f"or choose another {term('name')}"
    message = (
        f"{error.problem}; training stopped. In [training] of the configuration, lower "
        f"learning_rate (now {training['learning_rate']:g}), {clip_advice}, or set "
        'on_nonfinite = "skip" to leave such updates out; or check the data for outliers. '
        f"{kept} The run is marked failed in {PROGRESS_FILE}: run it again (after "
        f"changing the configuration) to replace it without {term('overwrite')}, "
        f"{resume}."
    )
    run.progress["failed"] = error.problem
    write_json(run.out / PROGRESS_FILE, run.progress)
    return NonFiniteLossError(message, problem=error.problem, last_checkpoint=checkpoint,
                              last_checkpoint_step=step if checkpoint else None)


def validation_options(run: Prepared) -> dict:
    """The engine options of the `[validation]` table (none without validation data)."""
    validation = run.config["validation"]
    if run.dataset.validation is None:
        return {}
    return dict(
        validation_data=run.dataset.validation_data,
        validate_every=validation["every"],
        validation_metrics=split_list(validation["metrics"]),
        monitor=validation["monitor"] or None,
        monitor_mode=validation["mode"],
        patience=validation["patience"] or None,
        min_delta=validation["min_delta"],
        best_path=run.out / BEST_FILE,
    )


def log_hooks(run: Prepared) -> list:
    """The logging hook of the `[logging]` table, writing into the results folder."""
    logging = run.config["logging"]
    if not logging["every"]:
        return []
    return [Logger(
        run.out, every=logging["every"], formats=split_list(logging["formats"]),
        learning_rate=build_schedule(run.config["training"]),
        rollout_plot_every=logging["rollout_plot_every"] or None,
    )]


def evaluate_run(run: Prepared, state: TrainState) -> tuple[list, dict, float, list[Path]]:
    """Save the trained networks, roll them out on the test data and draw the plots.

    **Arguments:**

    - `run`: the prepared run.
    - `state`: its final train state.

    **Returns:**

    - `(members, metrics, eval_seconds, files)`: the stepper of every seed that was
        scored (the validation's best with `[validation] evaluate = "best"`), the
        rollout metrics with `scored_network` (the file holding them), how long the
        rollouts took and the files written.
    """
    config, evaluation = run.config, run.config["evaluation"]
    num_seeds = config["num_seeds"]
    final = split_seeds(state.stepper, num_seeds)
    files = save_networks(run.out, final)
    members, scored = final, files[0].name if num_seeds == 1 else "network_seed*.eqx"
    if state.validation is not None:
        files += [run.out / BEST_FILE]
        if config["validation"]["evaluate"] == "best":
            members = split_seeds(state.validation.best_stepper, num_seeds)
            scored = BEST_FILE
    begin = time.perf_counter()
    metrics, arrays = rollout_metrics(
        members, run.dataset.test,
        num_rollout_steps=evaluation["num_rollout_steps"],
        aggregate_steps=evaluation["nrmse_aggregate_steps"],
        correlation_threshold=evaluation["correlation_threshold"],
        key=run.eval_key,
        constants=run.dataset.test_constants,
    )
    eval_seconds = time.perf_counter() - begin
    # `trainax-fm eval` scores the same file, and says so under the same key
    metrics = {"scored_network": scored, **metrics}
    every = config["training"]["record_loss_every"]
    recorded = np.asarray(state.loss_history).reshape(num_seeds, -1)[:, ::every]
    files += make_plots(
        run.out, arrays, loss_history=recorded[0] if num_seeds == 1 else recorded,
        record_loss_every=every, label=config["name"], dt=run.dataset.dt,
        domain_extent=run.dataset.domain_extent, validation=state.validation,
    )
    logging = config["logging"]
    if logging["every"]:
        kinds = split_list(logging["formats"])
        # validation.csv only exists once a validation record was written.
        files += [run.out / name for kind, name in LOG_FILES
                  if kind in kinds and (run.out / name).is_file()]
    return members, metrics, eval_seconds, files


def split_seeds(stepper, num_seeds: int) -> list:
    """One stepper per seed from a (seed-stacked, for several seeds) stepper."""
    if num_seeds == 1:
        return [stepper]
    return [seed_slice(stepper, i) for i in range(num_seeds)]
def run_experiment(
    config: ConfigLike,
    results_dir: Union[str, os.PathLike] = "results",
    *,
    name: Optional[str] = None,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: Optional[int] = None,
    quiet: bool = False,
    printer: Callable[[str], None] = print,
) -> dict:
    """Train one experiment and write its results folder `results_dir/<name>/`.

    The folder receives `config.toml` (the configuration as used, every default
    filled in), `checkpoint.eqx` (a [`trainax_fm.TrainState`][] written every
    `training.checkpoint_every` updates and at the end), `progress.json`, the trained
    network(s) (`network.eqx`, or `network_seed<i>.eqx` per seed; written by
    [`trainax_fm.save_stepper`][], with the normalisation statistics of
    `[network] normalize`), `metrics.json` and the plots `loss.png`,
    `error_over_time.png` and `spacetime.png` (1D) / `snapshots_2d.png` (2D) /
    `snapshots_3d.png` (3D, middle slice) / `rollout.png` (ODE). Every file is written atomically.

    With `num_seeds > 1` the seeds train side by side in one run of the engine
    (`trainer.train(..., num_seeds=...)`): the checkpoint then holds the seed-stacked
    state with a `(seeds, steps)` loss history.

    **Arguments:**

    - `config`: a path to a TOML file, or a configuration dict (see
        [`trainax_fm.experiment.load_config`][] for the schema).
    - `results_dir`: the root folder of the results.
    - `name`: overrides the configuration's `name` (the subfolder).
    - `resume`: continue the run in the folder from its checkpoint (also a failed
        run's last good one). The configuration must equal the saved one; the final
        weights are bit-identical to an uninterrupted run. Without a checkpoint the
        run starts from scratch.
    - `overwrite`: delete an existing run in the folder and start over. A run marked
        failed (a NaN/Inf loss) is replaced without it.
    - `stop_after`: train at most this many more updates, write the checkpoint and
        return (continue later with `resume=True`).
    - `quiet`: print nothing (no progress bar, no summary).
    - `printer`: where messages go (default `print`).

    **Returns:**

    - The metrics dict written to `metrics.json` (`status` `"complete"`), or, when
        `stop_after` ended the call early, `{"status": "stopped", "step": ...,
        "num_training_steps": ..., "results_dir": ...}`.

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] for an invalid configuration (or one
        that differs from the run being resumed); `FileExistsError` if the folder holds
        a run that has not failed and neither `resume` nor `overwrite` is set;
        `ValueError` if both are.
    - [`trainax_fm.NonFiniteLossError`][] if the training loss becomes NaN/Inf (with
        `training.on_nonfinite = "raise"`); the last good checkpoint is kept, the run
        is marked failed in `progress.json` (`"failed"`: what went wrong), and the
        message names the `[training]` keys that help.
    """
    log = Log(quiet, printer)
    run = prepare_run(config, results_dir, name=name, resume=resume, overwrite=overwrite,
                      stop_after=stop_after, log=log)
    try:
        state = train_run(run, log)
    except NonFiniteLossError as error:
        raise nonfinite_advice(run, error) from None
    total = run.config["training"]["num_training_steps"]
    if state.step < total and stopped_early(run.config, state):
        log(f"Early stopping at update {state.step}/{total}: "
            f"{run.config['validation']['patience']} validations without improvement.")
    elif state.step < total:
        log(f"Stopped after update {state.step}/{total}; the checkpoint is "
            f"{str(run.checkpoint)!r}. Continue with {term('resume')}.")
        return {"status": "stopped", "step": state.step, "num_training_steps": total,
                "results_dir": str(run.out)}
    members, metrics, eval_seconds, files = evaluate_run(run, state)
    result = report_run(run, state, members, metrics, eval_seconds, files)
    log(format_summary(result, run.out))
    return result
