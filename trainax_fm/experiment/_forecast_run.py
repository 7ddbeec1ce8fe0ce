"""`run_zero_shot`: a many-system forecaster from catalogue to zero-shot table.

The workflow of `trainax-fm zero-shot CONFIG.toml` (the configuration is described in
[`trainax_fm.experiment.validate_forecast_config`][]):

1. generate the catalogue ([`trainax_fm.systems.generate_catalogue`][]) into
    `RESULTS/NAME/catalogue/`, the held-out base systems and their skew products in the
    test split;
2. train a [`trainax_fm.networks.PatchForecaster`][] on the mixture of the training
    systems ([`trainax_fm.data.SystemMixture`][]) with `Supervised` windows of histories
    and blocks, wrapped in the chosen per-window augmentations;
3. score it zero-shot on the held-out trajectories next to the naive baselines
    ([`trainax_fm.systems.zero_shot_table`][]).

The results folder holds `config.toml` (every default filled in), `catalogue/`,
`forecaster.eqx`, `zero_shot.md`, `zero_shot.csv`, `metrics.json`, `loss.png` and one
`forecasts/<system>.png` per held-out system (forecast against truth).
"""

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Union

import jax
import numpy as np
import optax

from .. import plot
from .._atomic import save_tree_atomic
from .._rollout._inference import rollout
from ..configuration import (
    DelayEmbedding,
    RandomAffine,
    RandomConvexCombination,
    Supervised,
)
from ..data import SystemMixture
from ..networks import PatchForecaster
from ..systems import (
    Catalogue,
    ZeroShotTable,
    generate_catalogue,
    get_system,
    zero_shot_table,
)
from ..trainer import ConfigurationTrainer
from . import _toml
from ._errors import ConfigError
from ._evaluate import write_json
from ._forecast_config import parse_pairs, split_names, validate_forecast_config

AUGMENTATION_TYPES = {
    "affine": RandomAffine,
    "convex": RandomConvexCombination,
    "delay": DelayEmbedding,
}


@dataclasses.dataclass(frozen=True)
class ZeroShotRun:
    """What [`trainax_fm.experiment.run_zero_shot`][] returns.

    **Attributes:**

    - `out`: the results folder.
    - `config`: the complete configuration.
    - `catalogue`: the generated [`trainax_fm.systems.Catalogue`][].
    - `forecaster`: the trained [`trainax_fm.networks.PatchForecaster`][].
    - `table`: the [`trainax_fm.systems.ZeroShotTable`][] of the held-out systems.
    - `loss_history`: the training loss per update.
    """

    out: Path
    config: dict
    catalogue: Catalogue
    forecaster: PatchForecaster
    table: ZeroShotTable
    loss_history: np.ndarray


def load_forecast_config(path: Union[str, os.PathLike]) -> dict:
    """Read and validate a many-system forecasting TOML file.

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] naming the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", "an existing configuration file", repr(str(path)),
                          "check the path (examples/configs/many_systems.toml is one)")
    try:
        raw = _toml.loads(path.read_text(encoding="utf-8"))
    except (_toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError("", "valid TOML", f"a syntax error ({error})",
                          "see https://toml.io", source=str(path)) from None
    try:
        return validate_forecast_config(raw)
    except ConfigError as error:
        raise error.with_source(str(path)) from None


def _training_systems(config: dict) -> tuple[str, ...]:
    """The system names of the training split, as the catalogue will name them."""
    held_out = set(split_names(config["split"]["held_out"]))
    names = [name for name in split_names(config["catalogue"]["systems"])
             if name not in held_out]
    for driver, response in parse_pairs(config["catalogue"]["skew_pairs"],
                                        "catalogue.skew_pairs", str, "DRIVER:RESPONSE"):
        if driver not in held_out and response not in held_out:
            names.append(f"{driver}_{response}")
    return tuple(names)


def _mixture_weights(config: dict) -> Optional[dict[str, float]]:
    pairs = parse_pairs(config["training"]["mixture_weights"], "training.mixture_weights",
                        float, "SYSTEM:WEIGHT")
    if not pairs:
        return None
    training = _training_systems(config)
    for name, _ in pairs:
        if name not in training:
            raise ConfigError(
                "training.mixture_weights", f"weights of training systems {list(training)}",
                repr(name), "weigh a system of the training split (held-out systems and "
                "their skew products are not trained on)",
            )
    return dict(pairs)


def _check_windows(config: dict) -> None:
    forecaster, training = config["forecaster"], config["training"]
    window = forecaster["context_length"] + (
        training["num_rollout_steps"] * forecaster["prediction_length"]
    )
    if window > config["catalogue"]["num_time_steps"]:
        raise ConfigError(
            "catalogue.num_time_steps",
            f"at least context_length + num_rollout_steps * prediction_length ({window})",
            str(config["catalogue"]["num_time_steps"]),
            f"set num_time_steps = {window} or more, or shorten the context",
        )


def _check_systems(config: dict) -> None:
    """Every system name resolves (a built-in, or dysts with the extra) before any work."""
    for name in split_names(config["catalogue"]["systems"]):
        try:
            get_system(name)
        except (ValueError, KeyError, ImportError) as error:
            raise ConfigError("catalogue.systems", "names of built-in or dysts systems",
                              repr(name), str(error)) from None


def _claim(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"The results folder {str(out)!r} is not empty. Pass overwrite=True "
                "(`--overwrite`) to delete it and start over, or choose another name "
                "(`--name`)."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _configuration(config: dict):
    forecaster, training = config["forecaster"], config["training"]
    configuration = Supervised(
        training["num_rollout_steps"],
        num_input_steps=forecaster["context_length"] // forecaster["prediction_length"],
    )
    for name in split_names(training["augmentations"]):
        # The trainer hands over blocks of prediction_length states; each augmentation
        # unstacks them so that its map acts on single states.
        configuration = AUGMENTATION_TYPES[name](
            configuration, training["augmentation_probability"],
            num_output_steps=forecaster["prediction_length"],
        )
    return configuration


def _optimizer(training: dict) -> optax.GradientTransformation:
    steps, warmup = training["num_training_steps"], training["warmup_steps"]
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, training["learning_rate"], min(warmup, steps - 1), steps
    ) if warmup else optax.cosine_decay_schedule(training["learning_rate"], steps)
    return optax.adam(schedule)


def _per_system(entries, key: str) -> dict[str, float]:
    return {entry["system"]: entry[key] for entry in entries if entry.get(key) is not None}


def _plot_forecasts(stepper, test: np.ndarray, systems, config: dict, folder: Path) -> list:
    """One figure per held-out system: its first trajectory's context, truth and
    forecast, a panel per channel. Without matplotlib none."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    context = config["forecaster"]["context_length"]
    length = max(config["evaluation"]["horizons"])
    folder.mkdir(exist_ok=True)
    paths = []
    for system in dict.fromkeys(systems):
        trajectory = test[list(systems).index(system)]
        # A block stepper's rollout counts calls, each `prediction_length` states.
        calls = -(-length // config["forecaster"]["prediction_length"])
        forecast = np.asarray(rollout(stepper, trajectory[:context], calls,
                                      num_input_steps=context))[:length]
        truth = trajectory[: context + length]
        channels = trajectory.shape[-1]
        fig = Figure(figsize=(7, 1.6 * channels + 0.6))
        axes = fig.subplots(channels, 1, sharex=True, squeeze=False)
        steps = np.arange(context + length)
        for channel, ax in enumerate(axes[:, 0]):
            ax.plot(steps, truth[:, channel], color="black", lw=1, label="truth")
            ax.plot(steps[context:], forecast[:, channel], color="tab:red", lw=1.2,
                    label="forecast")
            ax.axvline(context - 0.5, color="grey", ls=":", lw=1)
            ax.set_ylabel(f"x{channel}")
        axes[0, 0].legend(loc="upper left", fontsize=8)
        axes[0, 0].set_title(f"{system}: zero-shot forecast after {context} context steps")
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        path = folder / f"{system}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def _generate(config: dict, out: Path) -> Catalogue:
    catalogue = config["catalogue"]
    return generate_catalogue(
        split_names(catalogue["systems"]),
        out / "catalogue",
        num_trajectories_per_system=catalogue["num_trajectories"],
        num_time_steps=catalogue["num_time_steps"],
        num_perturbations=catalogue["num_perturbations"],
        skew_pairs=parse_pairs(catalogue["skew_pairs"], "catalogue.skew_pairs", str,
                               "DRIVER:RESPONSE"),
        num_channels=catalogue["num_channels"],
        held_out=split_names(config["split"]["held_out"]),
        seed=catalogue["seed"],
    )


def run_zero_shot(
    config: Union[str, os.PathLike, dict],
    results: Union[str, os.PathLike] = "results",
    *,
    name: Optional[str] = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> ZeroShotRun:
    """Generate a catalogue, train one forecaster on its training systems and score it
    zero-shot on the held-out ones.

    **Arguments:**

    - `config`: a TOML file or a dict of the form described in
        [`trainax_fm.experiment.validate_forecast_config`][] (missing keys get defaults).
    - `results`: the results root; the run writes `results/<name>/`.
    - `name`: overrides the configuration's `name`.
    - `overwrite`: delete an existing non-empty results folder first.
    - `quiet`: print nothing (no progress bar, no table).

    **Returns:**

    - A [`trainax_fm.experiment.ZeroShotRun`][].

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] for an invalid configuration (an unknown
        system, a context longer than the trajectories, a mixture weight for a system
        outside the training split, ...), before any work, and for a system or skew
        pair that never passes the validity filter (the results folder is removed
        then); `FileExistsError` for a non-empty results folder without `overwrite`.
    """
    if isinstance(config, dict):
        config = validate_forecast_config(config)
    else:
        config = load_forecast_config(config)
    if name is not None:
        config = validate_forecast_config({**config, "name": name})
    _check_windows(config)
    _check_systems(config)
    weights = _mixture_weights(config)
    out = Path(results) / config["name"]
    _claim(out, overwrite)
    _toml.write_text_atomic(out / "config.toml", _toml.dumps(config))

    start = time.perf_counter()
    try:
        catalogue = _generate(config, out)
    except ValueError as error:
        # The catalogue writes nothing when a system never passes the filter; leave no
        # half-made run behind either.
        shutil.rmtree(out)
        raise ConfigError("catalogue", "systems whose trajectories pass the validity filter",
                          str(error), "remove that system or skew pair") from None
    catalogue_seconds = time.perf_counter() - start
    if not quiet:
        print(f"catalogue: {catalogue!r} in {catalogue_seconds:.0f} s")

    init_key, mixture_key, train_key = jax.random.split(jax.random.PRNGKey(config["seed"]), 3)
    train_entries = catalogue.entries("train")
    mixture = SystemMixture(
        catalogue.load("train"), [entry["system"] for entry in train_entries], weights,
        key=mixture_key,
    )
    forecaster_config, training = config["forecaster"], config["training"]
    forecaster = PatchForecaster(
        config["catalogue"]["num_channels"],
        forecaster_config["context_length"],
        forecaster_config["prediction_length"],
        forecaster_config["patch_length"],
        width=forecaster_config["width"],
        num_layers=forecaster_config["num_layers"],
        num_heads=forecaster_config["num_heads"],
        key=init_key,
    )
    trainer = ConfigurationTrainer(
        mixture,
        _configuration(config),
        optimizer=_optimizer(training),
        num_training_steps=training["num_training_steps"],
        batch_size=training["batch_size"],
        num_output_steps=forecaster_config["prediction_length"],
    )
    start = time.perf_counter()
    result = trainer.train(forecaster, train_key, spawn_tqdm=not quiet)
    train_seconds = time.perf_counter() - start
    forecaster = result.stepper
    save_tree_atomic(out / "forecaster.eqx", forecaster)
    losses = np.asarray(result.loss_history)

    test_entries = catalogue.entries("test")
    test = catalogue.load("test")
    systems = [entry["system"] for entry in test_entries]
    evaluation = config["evaluation"]
    table = zero_shot_table(
        forecaster,
        test,
        systems,
        context_length=forecaster_config["context_length"],
        prediction_length=forecaster_config["prediction_length"],
        forecast_length=max(evaluation["horizons"]),
        horizons=evaluation["horizons"],
        num_windows=evaluation["num_forecasts"],
        lyapunov_exponents=_per_system(test_entries, "lyapunov_exponent") or None,
        dt=_per_system(test_entries, "dt"),
        vpt_threshold=evaluation["smape_threshold"],
    )
    _toml.write_text_atomic(out / "zero_shot.md", table.to_markdown() + "\n")
    table.to_csv(out / "zero_shot.csv")
    write_json(out / "metrics.json", {
        "zero_shot": {
            model: {
                system: {
                    column: (None if not math.isfinite(value) else value)
                    for column, value in zip(table.columns, row.tolist())
                }
                for system, row in zip(table.systems, block)
            }
            for model, block in zip(table.models, table.values)
        },
        "vpt_unit": table.vpt_unit,
        "final_loss": float(losses[-1]),
        "catalogue": {"shape": list(catalogue.load().shape),
                      "rejections": dict(catalogue.rejections)},
        "catalogue_seconds": catalogue_seconds,
        "train_seconds": train_seconds,
    })
    if _plot_forecasts(forecaster.block_stepper(), test, systems, config, out / "forecasts"):
        plot.loss_history(losses, save=out / "loss.png", title="training loss (mixture)")
    if not quiet:
        print(table.to_markdown())
        print(f"\nresults in {str(out)!r}")
    return ZeroShotRun(out, config, catalogue, forecaster, table, losses)
