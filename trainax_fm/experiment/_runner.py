"""`run_experiment`: train one configured experiment into a results folder."""

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._config import (
    TOP_FIELDS,
    config_differences,
    load_config,
    save_config,
    validate_config,
)
from ._data import Dataset, load_data
from ._errors import ConfigError
from ._evaluate import make_plots, rollout_metrics, save_networks, write_json
from ._method import parse_method
from ._network import count_parameters
from ._setup import (
    build_optimizer,
    build_steppers,
    build_trainer,
    init_stepper,
    seed_slice,
    split_keys,
)

CHECKPOINT_FILE = "checkpoint.eqx"
PROGRESS_FILE = "progress.json"
_OWN_FILES = ("checkpoint.eqx", "progress.json", "metrics.json", "config.toml", "eval.json")
_OWN_GLOBS = ("network*.eqx", "*.png", "eval_*.json")

ConfigLike = Union[str, os.PathLike, dict]


def _drop_none(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _drop_none(v) for k, v in tree.items() if v is not None}
    return tree


def as_config(config: ConfigLike) -> dict:
    """A validated configuration from a path, a raw dict or a validated dict."""
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    if isinstance(config, dict):
        return validate_config(_drop_none(config))
    raise TypeError(
        "`config` must be a path to a TOML file or a dict, got "
        f"{type(config).__name__}."
    )


def _vmapped_init(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """The optimizer with `init` mapped over a leading seed axis (for loading)."""
    return optax.GradientTransformation(eqx.filter_vmap(optimizer.init), optimizer.update)


def _read_progress(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"train_seconds": 0.0}


def _clear(out: Path) -> None:
    for name in _OWN_FILES:
        (out / name).unlink(missing_ok=True)
    for pattern in _OWN_GLOBS:
        for path in out.glob(pattern):
            path.unlink()


class _Log:
    def __init__(self, quiet: bool, printer: Callable[[str], None] = print):
        self.quiet, self.printer = quiet, printer

    def __call__(self, message: str) -> None:
        if not self.quiet:
            self.printer(message)


def _train_one_seed(trainer, config, dataset, keys, state, num_steps, ckpt, log):
    init_keys, shuffle_keys = keys
    training = config["training"]
    common = dict(
        num_steps=num_steps,
        checkpoint_path=ckpt,
        checkpoint_every=training["checkpoint_every"],
        spawn_tqdm=not log.quiet,
    )
    if state is None:
        stepper = init_stepper(
            config, dataset.num_channels, dataset.num_spatial_dims, dataset.num_points,
            init_keys[0],
        )
        result = trainer.train(stepper, shuffle_keys[0], **common)
    else:
        result = trainer.train(resume_from=state, **common)
    return result.train_state


def _train_seeds(trainer, config, dataset, keys, state, num_steps, ckpt, optimizer, log):
    from .._checkpoint import save_train_state
    from .._train_state import TrainState

    init_keys, shuffle_keys = keys
    every = config["training"]["checkpoint_every"]
    if state is None:
        steppers = build_steppers(config, dataset.train, init_keys)
        opt_state = eqx.filter_vmap(optimizer.init)(eqx.filter(steppers, eqx.is_inexact_array))
        state = TrainState(steppers, opt_state, 0, shuffle_keys,
                           jnp.zeros((len(shuffle_keys), 0)))
    stop = state.step + num_steps
    while state.step < stop:
        boundary = min(stop, (state.step // every + 1) * every)
        segment = boundary - state.step

        def run(s, segment=segment):
            return trainer.train(resume_from=s, num_steps=segment, spawn_tqdm=False).train_state

        first = state.step
        state = eqx.filter_vmap(run)(state)
        history = np.asarray(state.loss_history)
        bad = ~np.all(np.isfinite(history[:, first:]), axis=1)
        if np.any(bad):
            raise FloatingPointError(
                f"the training loss became NaN/Inf in updates {first}..{state.step - 1} of "
                f"seed(s) {np.flatnonzero(bad).tolist()}; lower the learning rate or set "
                "training.grad_clip_norm. The last good checkpoint is kept."
            )
        losses = history[:, -1]
        # The checkpoint format stores a 1D loss history: flatten the (seeds, steps) one.
        save_train_state(ckpt, TrainState(state.stepper, state.opt_state, state.step,
                                          state.key, history.reshape(-1)))
        log(f"  update {state.step}/{config['training']['num_training_steps']}: "
            f"loss per seed {np.array2string(losses, precision=3)}")
    return state


def _load_state(ckpt, config, dataset, keys, optimizer):
    from .._checkpoint import load_train_state

    init_keys, _ = keys
    if config["num_seeds"] == 1:
        like = init_stepper(config, dataset.num_channels, dataset.num_spatial_dims,
                            dataset.num_points, init_keys[0])
        return load_train_state(ckpt, like, optimizer)
    from .._train_state import TrainState

    like = build_steppers(config, dataset.train, init_keys)
    state = load_train_state(ckpt, like, _vmapped_init(optimizer))
    history = state.loss_history.reshape(config["num_seeds"], -1)
    return TrainState(state.stepper, state.opt_state, state.step, state.key, history)


def _check_fits(config: dict, dataset: Dataset, method) -> None:
    window = getattr(method.configuration(), "required_window_length", 1)
    if dataset.train.shape[1] < window:
        raise ConfigError(
            "data.temporal_horizon",
            f"at least {window} snapshots for method {config['training']['method']!r}",
            str(dataset.train.shape[1]),
            "use longer trajectories or a shorter rollout",
        )
    if method.needs_ref_stepper and dataset.ref_stepper is None:
        raise ConfigError("training.method", "a data source with a reference stepper",
                          repr(config["training"]["method"]), "use sup/one/tf/fm")
    if method.needs_residuum and dataset.residuum_fn is None:
        raise ConfigError("training.method", "a data source with a residuum",
                          repr(config["training"]["method"]), "use sup/one/tf/fm")


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
    network(s) (`network.eqx`, or `network_seed<i>.eqx` per seed; leaves written by
    `eqx.tree_serialise_leaves`), `metrics.json` and the plots `loss.png`,
    `error_over_time.png` and `spacetime.png` (1D) / `snapshots_2d.png` (2D) /
    `rollout.png` (ODE). Every file is written atomically.

    With `num_seeds > 1` the seeds train in parallel (`eqx.filter_vmap` over the
    initialisation and minibatch keys), in segments of `checkpoint_every` updates;
    the checkpoint then holds the seed-stacked state, with the `(seeds, steps)` loss
    history flattened to one axis.

    **Arguments:**

    - `config`: a path to a TOML file, or a configuration dict (see
        [`trainax_fm.experiment.load_config`][] for the schema).
    - `results_dir`: the root folder of the results.
    - `name`: overrides the configuration's `name` (the subfolder).
    - `resume`: continue the run in the folder from its checkpoint. The configuration
        must equal the saved one; the final weights are bit-identical to an
        uninterrupted run. Without a checkpoint the run starts from scratch.
    - `overwrite`: delete an existing run in the folder and start over.
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
        a run and neither `resume` nor `overwrite` is set.
    """
    from .. import __version__

    log = _Log(quiet, printer)
    config = as_config(config)
    if name is not None:
        config["name"] = TOP_FIELDS["name"].check(name, "name")
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int)
                                   or stop_after < 1):
        raise ValueError(f"`stop_after` must be a positive integer, got {stop_after!r}.")
    out = Path(results_dir) / config["name"]
    ckpt = out / CHECKPOINT_FILE
    saved_config = out / "config.toml"
    if saved_config.exists() and not (resume or overwrite):
        raise FileExistsError(
            f"{str(out)!r} already holds a run. Pass --resume (resume=True) to "
            "continue it, --overwrite (overwrite=True) to start over, or choose "
            "another --name."
        )
    dataset, config = load_data(config)
    method = parse_method(config["training"]["method"])
    _check_fits(config, dataset, method)
    training = config["training"]
    num_seeds = config["num_seeds"]

    if saved_config.exists():
        if resume:
            previous = load_config(saved_config)
            differences = config_differences(previous, config)
            if differences:
                raise ConfigError(
                    "", f"the configuration of the run in {str(out)!r}",
                    "a configuration that differs in " + "; ".join(differences),
                    "resume with the same configuration (e.g. its config.toml), or "
                    "start over with --overwrite or another --name",
                )
        else:
            _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(saved_config, config)

    optimizer = build_optimizer(training)
    trainer = build_trainer(config, dataset, method, optimizer)
    init_keys, shuffle_keys, eval_key = split_keys(config["seed"], num_seeds)
    keys = (init_keys, shuffle_keys)

    state = None
    progress = {"train_seconds": 0.0}
    if resume and ckpt.is_file():
        state = _load_state(ckpt, config, dataset, keys, optimizer)
        progress = _read_progress(out / PROGRESS_FILE)
        log(f"Resuming {str(out)!r} at update {state.step}/{training['num_training_steps']}.")
    elif resume:
        log(f"No checkpoint in {str(out)!r}: starting a new run.")
    start = 0 if state is None else state.step
    remaining = training["num_training_steps"] - start
    num_steps = remaining if stop_after is None else min(stop_after, remaining)

    if num_steps > 0:
        log(f"Training {config['name']!r}: {training['method']} with "
            f"{config['network']['spec']} on {config['data']['source']}, "
            f"{num_seeds} seed(s), updates {start}..{start + num_steps}.")
        begin = time.perf_counter()
        if num_seeds == 1:
            state = _train_one_seed(trainer, config, dataset, keys, state, num_steps, ckpt, log)
        else:
            state = _train_seeds(trainer, config, dataset, keys, state, num_steps, ckpt,
                                 optimizer, log)
        jax.block_until_ready(state.loss_history)
        progress["train_seconds"] = progress.get("train_seconds", 0.0) + time.perf_counter() - begin
    progress["step"] = state.step
    write_json(out / PROGRESS_FILE, progress)

    if state.step < training["num_training_steps"]:
        log(f"Stopped after update {state.step}/{training['num_training_steps']}; the "
            f"checkpoint is {str(ckpt)!r}. Continue with --resume.")
        return {"status": "stopped", "step": state.step,
                "num_training_steps": training["num_training_steps"], "results_dir": str(out)}

    if num_seeds == 1:
        members = [state.stepper]
    else:
        members = [seed_slice(state.stepper, i) for i in range(num_seeds)]
    files = save_networks(out, members)
    losses = np.asarray(state.loss_history).reshape(num_seeds, -1)
    evaluation = config["evaluation"]
    begin = time.perf_counter()
    metrics, arrays = rollout_metrics(
        members, dataset.test,
        num_rollout_steps=evaluation["num_rollout_steps"],
        aggregate_steps=evaluation["nrmse_aggregate_steps"],
        correlation_threshold=evaluation["correlation_threshold"],
        key=eval_key,
    )
    eval_seconds = time.perf_counter() - begin
    every = training["record_loss_every"]
    recorded = losses[:, ::every]
    files += make_plots(
        out, arrays, loss_history=recorded[0] if num_seeds == 1 else recorded,
        record_loss_every=every, label=config["name"], dt=dataset.dt,
        domain_extent=dataset.domain_extent,
    )
    last = losses[:, -1]
    result = {
        "status": "complete",
        "name": config["name"],
        "description": config["description"],
        "source": config["data"]["source"],
        "method": training["method"],
        "network": config["network"]["spec"],
        "seed": config["seed"],
        "num_seeds": num_seeds,
        "num_parameters": count_parameters(members[0]),
        "num_training_steps": training["num_training_steps"],
        "batch_size": training["batch_size"],
        "learning_rate": training["learning_rate"],
        "final_train_loss": float(np.mean(last)),
        "final_train_loss_per_seed": [float(v) for v in last],
        "wall_time_seconds": progress["train_seconds"],
        "eval_seconds": eval_seconds,
        **metrics,
    }
    if method.is_flow_matching:
        result["num_function_evaluations"] = int(members[0].num_function_evaluations)
    result["trainax_fm_version"] = __version__
    result["jax_backend"] = jax.default_backend()
    result["files"] = sorted(
        {p.name for p in files} | {"config.toml", CHECKPOINT_FILE, "metrics.json",
                                   PROGRESS_FILE}
    )
    write_json(out / "metrics.json", result)
    log(format_summary(result, out))
    return result


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def format_summary(metrics: dict, out: Path) -> str:
    """A few lines summarising a finished run (printed at the end of training)."""
    nrmse = metrics["nrmse"]
    seeds = metrics["num_seeds"]
    lines = [
        f"{str(out)}: {metrics['method']} | {metrics['network']} | {metrics['source']} | "
        f"{seeds} seed{'s' if seeds > 1 else ''} | {metrics['num_parameters']:,} parameters",
        f"  trained {metrics['num_training_steps']} updates in "
        f"{metrics['wall_time_seconds']:.1f} s, final train loss "
        f"{_fmt(metrics['final_train_loss'])}",
        f"  test nRMSE: step 1 {_fmt(nrmse[0])}, step {len(nrmse)} {_fmt(nrmse[-1])}; "
        f"geometric mean over {metrics['nrmse_aggregate_steps']} steps "
        f"{_fmt(metrics['gmean_nrmse'])}",
        f"  high-correlation time (corr >= {metrics['correlation_threshold']}): "
        f"{metrics['high_correlation_time']:g} of {len(nrmse)} steps",
        "  files: " + " ".join(metrics["files"]),
    ]
    return "\n".join(lines)

