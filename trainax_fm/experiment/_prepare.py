"""The first step of `run_experiment`: everything that happens before training."""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import equinox as eqx
import optax

from .._state._checkpoint import load_train_state
from .._loop._validate import check_validation_data, parse_metrics
from .._state._train_state import TrainState
from ._config import (
    TOP_FIELDS,
    config_differences,
    load_config,
    save_config,
    split_list,
    validate_config,
)
from ._data import Dataset, load_data
from ._errors import ConfigError
from ._saved_networks import BEST_FILE, check_teacher_data, load_method_teacher
from ._method import TrainMethod
from ._method_spec import parse_method
from ._wording import term
from ._setup import (
    build_optimizer,
    build_steppers,
    build_trainer,
    init_stepper,
    method_optimizer,
    split_keys,
    with_normalization,
)

CHECKPOINT_FILE = "checkpoint.eqx"
PROGRESS_FILE = "progress.json"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
_OWN_FILES = (CHECKPOINT_FILE, PROGRESS_FILE, METRICS_FILE, CONFIG_FILE, "eval.json", BEST_FILE,
              "log.jsonl", "train.csv", "validation.csv")
_OWN_GLOBS = ("network*.eqx", "*.png", "eval_*.json", "events.out.tfevents.*", "rollouts/*.png")

ConfigLike = Union[str, os.PathLike, dict]


class Log:
    """Prints a message unless the run is quiet."""

    def __init__(self, quiet: bool, printer: Callable[[str], None] = print):
        self.quiet, self.printer = quiet, printer

    def __call__(self, message: str) -> None:
        if not self.quiet:
            self.printer(message)


@dataclasses.dataclass
class Prepared:
    """A run ready to train: what `prepare_run` hands to the later steps.

    **Arguments:**

    - `config`: the validated configuration (data-dependent defaults filled in).
    - `out`: the results folder `results_dir/<name>`.
    - `dataset`: the training and test data.
    - `method`: the parsed training method.
    - `trainer`: the configured trainer (the engine).
    - `init_keys`, `shuffle_keys`: one initialisation / minibatch key per seed.
    - `eval_key`: the key of the test rollouts.
    - `state`: the [`trainax_fm.TrainState`][] to resume from, or `None` for a new run.
    - `progress`: the contents of `progress.json` (accumulated training time).
    - `num_steps`: the updates this call trains (0 if the run is already complete).
    - `teacher`: the velocity of the TEACHER folder the method names, loaded once
        before training, or `None`.
    """

    config: dict
    out: Path
    dataset: Dataset
    method: TrainMethod
    trainer: Any
    init_keys: Any
    shuffle_keys: Any
    eval_key: Any
    state: Optional[TrainState]
    progress: dict
    num_steps: int
    teacher: Optional[eqx.Module] = None

    @property
    def checkpoint(self) -> Path:
        return self.out / CHECKPOINT_FILE

    @property
    def start(self) -> int:
        return 0 if self.state is None else self.state.step


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


def fresh_steppers(config: dict, dataset: Dataset, init_keys,
                   teacher: Optional[eqx.Module] = None) -> eqx.Module:
    """The untrained stepper of a run: one stepper for one seed, else the seeds stacked
    on a leading axis; normalised with statistics of the training data if configured.

    One seed stays unstacked so that its checkpoint (and `network.eqx`) keep the
    layout of a plain `trainer.train` run.

    **Arguments:**

    - `config`: a validated configuration.
    - `dataset`: its data (for the state layout).
    - `init_keys`: one initialisation key per seed.
    - `teacher`: the loaded teacher velocity of a method with a TEACHER folder, else
        `None`.

    **Returns:**

    - The stepper, or the seed-stacked steppers.
    """
    if config["num_seeds"] == 1:
        networks = init_stepper(config, dataset.num_channels, dataset.num_spatial_dims,
                                dataset.num_points, init_keys[0], dataset.num_constant_channels,
                                teacher)
        return with_normalization(config, networks, dataset.train, None)
    networks = build_steppers(config, dataset.train, init_keys, dataset.num_constant_channels,
                              teacher)
    return with_normalization(config, networks, dataset.train, config["num_seeds"])


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


def _check_stop_after(stop_after: Optional[int]) -> None:
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int)
                                   or stop_after < 1):
        raise ValueError(f"`stop_after` must be a positive integer, got {stop_after!r}.")


def _check_fits(config: dict, dataset: Dataset, method: TrainMethod) -> None:
    window = method.required_window_length
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


def _hold_out_validation(config: dict, dataset: Dataset) -> Dataset:
    validation = config["validation"]
    count, available = validation["num_samples"], int(dataset.train.shape[0])
    if count >= available:
        raise ConfigError(
            "validation.num_samples", f"fewer than the {available} training trajectories",
            str(count), "hold out fewer trajectories or generate more (data.num_train_samples)",
        )
    dataset = dataset.hold_out(count)
    if dataset.validation is not None:
        method = parse_method(config["training"]["method"])
        window = method.required_window_length
        try:
            check_validation_data(
                dataset.validation_data, dataset.training_data,
                parse_metrics(split_list(validation["metrics"])), window, 1,
            )
        except ValueError as error:
            raise ConfigError("validation.metrics", "metrics the trajectories are long enough for",
                              repr(validation["metrics"]), str(error)) from None
    return dataset


def failure_of(out: Path) -> Optional[str]:
    """What stopped the run in `out` (from `progress.json`), or `None` if it has not
    failed (or there is none)."""
    if not (out / CONFIG_FILE).exists():
        return None
    failed = _read_progress(out / PROGRESS_FILE).get("failed")
    return str(failed) if failed else None


def _claim_folder(out: Path, config: dict, resume: bool, failed: bool = False) -> None:
    """Refuse to resume with another configuration, or clear the old run (overwrite,
    or a failed run started again); then write `config.toml`."""
    saved = out / CONFIG_FILE
    if saved.exists():
        if resume:
            differences = config_differences(load_config(saved), config)
            if differences:
                raise ConfigError(
                    "", f"the configuration of the run in {str(out)!r}",
                    "a configuration that differs in " + "; ".join(differences),
                    "resume with the same configuration (e.g. its config.toml), or "
                    + (f"run again without {term('resume')} to replace the failed run"
                       if failed
                       else f"start over with {term('overwrite')} or another {term('name')}"),
                )
        else:
            _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(saved, config)


def prepare_run(
    config: ConfigLike,
    results_dir: Union[str, os.PathLike],
    *,
    name: Optional[str],
    resume: bool,
    overwrite: bool,
    stop_after: Optional[int],
    log: Log,
) -> Prepared:
    """Validate the configuration, claim the results folder, load the data, build the
    trainer and keys, and read the checkpoint when resuming.

    **Arguments:**

    - `config`, `results_dir`, `name`, `resume`, `overwrite`, `stop_after`: as in
        [`trainax_fm.experiment.run_experiment`][].
    - `log`: where messages go.

    **Returns:**

    - A `Prepared` run.

    **Raises:**

    - `ConfigError` for an invalid configuration (or one that differs from the run
        being resumed); `FileExistsError` if the folder holds a run that has not
        failed and neither `resume` nor `overwrite` is set; `ValueError` for an
        invalid `stop_after` or both `resume` and `overwrite`.
    """
    config = as_config(config)
    if name is not None:
        config["name"] = TOP_FIELDS["name"].check(name, "name")
    _check_stop_after(stop_after)
    if resume and overwrite:
        raise ValueError(
            f"{term('resume')} and {term('overwrite')} exclude each other: one continues "
            "the run in the folder, the other deletes it. Pass only "
            f"{term('resume')} to continue, or only {term('overwrite')} to start over."
        )
    out = Path(results_dir) / config["name"]
    failed = failure_of(out)
    if failed is not None and not (resume or overwrite):
        # Rerunning the command that failed starts it over: the failure is the one
        # thing the user wants gone, and the error message said this would happen.
        log(f"Replacing the failed run in {str(out)!r} ({failed}).")
    elif (out / CONFIG_FILE).exists() and not (resume or overwrite):
        raise FileExistsError(
            f"{str(out)!r} already holds a run. Pass {term('resume')} to continue it, "
            f"{term('overwrite')} to start over, or choose another {term('name')}."
        )
    # The data fills in data-dependent defaults (e.g. the network), so it is loaded
    # before the configuration is compared with, or written to, the folder.
    dataset, config = load_data(config)
    dataset = _hold_out_validation(config, dataset)
    method = parse_method(config["training"]["method"])
    _check_fits(config, dataset, method)
    training = config["training"]
    optimizer = build_optimizer(training)
    # Before the folder is claimed: a teacher that is missing, unreadable or does not
    # fit (its layout, a `pd` step count) must not leave a folder that only a rerun
    # with overwrite clears. Loaded here, once and outside any trace, it is handed to
    # everything that builds a stepper.
    check_teacher_data(method, config)
    teacher = load_method_teacher(method, dataset.num_channels, dataset.num_spatial_dims,
                                  dataset.num_points, dataset.num_constant_channels)
    trainer = build_trainer(config, dataset, method, optimizer, teacher)
    _claim_folder(out, config, resume, failed is not None)
    init_keys, shuffle_keys, eval_key = split_keys(config["seed"], config["num_seeds"])
    # the checkpoint holds the state of the optimizer the method wraps (frozen parts
    # of flow maps and thermalized emulators have none)
    state, progress = _resume_state(out, config, dataset, init_keys,
                                    method_optimizer(method, optimizer), resume, log, teacher)
    start = 0 if state is None else state.step
    remaining = training["num_training_steps"] - start
    num_steps = remaining if stop_after is None else min(stop_after, remaining)
    return Prepared(config, out, dataset, method, trainer, init_keys, shuffle_keys,
                    eval_key, state, progress, num_steps, teacher)


def _resume_state(
    out: Path, config: dict, dataset: Dataset, init_keys, optimizer: optax.GradientTransformation,
    resume: bool, log: Log, teacher: Optional[eqx.Module] = None,
) -> tuple[Optional[TrainState], dict]:
    """The checkpoint and progress of the run in `out` (or `None` and zero time)."""
    checkpoint = out / CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        # The engine reads one-seed and seed-stacked checkpoints alike, given a stepper
        # of the same layout.
        like = fresh_steppers(config, dataset, init_keys, teacher)
        state = load_train_state(checkpoint, like, optimizer)
        log(f"Resuming {str(out)!r} at update {state.step}/"
            f"{config['training']['num_training_steps']}.")
        return state, _read_progress(out / PROGRESS_FILE)
    if resume:
        log(f"No checkpoint in {str(out)!r}: starting a new run.")
    return None, {"train_seconds": 0.0}
