"""`trainax-fm zero-shot`: the many-system forecasting workflow from a TOML file.

The configuration errors are checked in process (each must come before any file is
written); one whole run goes through the command line in a fresh process, as a user
runs it, and its results folder is read back.
"""

import json
import pathlib
import re

import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm.experiment import ConfigError, _toml, run_zero_shot, validate_forecast_config

from test_cli_failures import run_cli

TINY = {
    "name": "tiny",
    "catalogue": {
        "systems": ["Lorenz63", "Rossler", "Thomas"],
        "skew_pairs": [],
        "num_perturbations": 0,
        "num_trajectories": 2,
        "num_time_steps": 64,
    },
    "split": {"held_out": ["Thomas"]},
    "forecaster": {"context_length": 16, "prediction_length": 4, "patch_length": 4,
                   "width": 16, "num_layers": 1, "num_heads": 2},
    "training": {"num_training_steps": 20, "batch_size": 8, "warmup_steps": 5,
                 "augmentations": ["affine", "delay"]},
    "evaluation": {"horizons": [4, 8], "num_forecasts": 2},
}


def with_setting(section, key, value):
    config = json.loads(json.dumps(TINY))
    if section:
        config[section][key] = value
    else:
        config[key] = value
    return config


def test_defaults_validate_and_round_trip_through_toml():
    config = validate_forecast_config({})
    assert config["split"]["held_out"] == "Thomas;Halvorsen"
    assert config["evaluation"]["horizons"] == (8, 16, 32)
    assert validate_forecast_config(_toml.loads(_toml.dumps(config))) == config


@pytest.mark.parametrize(
    "section, key, value, field, words",
    [
        ("catalogue", "sytems", ["Lorenz63"], "catalogue.sytems", "did you mean 'systems'"),
        ("split", "held_out", ["Chen"], "split.held_out", "one of catalogue.systems"),
        ("split", "held_out", ["Lorenz63", "Rossler", "Thomas"], "split.held_out",
         "strict subset"),
        ("split", "held_out", [], "split.held_out", "at least one"),
        ("catalogue", "skew_pairs", ["Lorenz63-Rossler"], "catalogue.skew_pairs",
         "DRIVER:RESPONSE"),
        ("catalogue", "skew_pairs", ["Lorenz63:Chen"], "catalogue.skew_pairs", "'Chen'"),
        ("forecaster", "context_length", 18, "forecaster.context_length", "multiple"),
        ("forecaster", "patch_length", 3, "forecaster.patch_length", "divisor"),
        ("forecaster", "num_heads", 3, "forecaster.num_heads", "divisor of width"),
        ("forecaster", "num_heads", 16, "forecaster.num_heads", "even head size"),
        ("training", "augmentations", ["flip"], "training.augmentations", "'flip'"),
        ("training", "mixture_weights", ["Lorenz63:-1"], "training.mixture_weights",
         ">= 0"),
        ("evaluation", "horizons", [4, 2.5], "evaluation.horizons", "positive integers"),
        ("catalogue", "num_time_steps", 20, "catalogue.num_time_steps",
         "context_length \\+ the longest horizon"),
    ],
)
def test_invalid_settings_name_the_field(section, key, value, field, words):
    with pytest.raises(ConfigError, match=words) as caught:
        validate_forecast_config(with_setting(section, key, value))
    assert caught.value.path == field


@pytest.mark.parametrize(
    "config, field, words",
    [
        # a context longer than the trajectories (with the unrolled blocks)
        (with_setting("training", "num_rollout_steps", 30), "catalogue.num_time_steps",
         "num_rollout_steps"),
        # an unknown system, with a suggestion
        (with_setting("catalogue", "systems", ["Lorenz63", "Roessler", "Thomas"]),
         "catalogue.systems", "Rossler"),
        # a mixture weight for a system the training split does not hold
        (with_setting("training", "mixture_weights", ["Thomas:2"]),
         "training.mixture_weights", "training systems"),
    ],
)
def test_bad_runs_fail_before_writing_anything(tmp_path, config, field, words):
    with pytest.raises(ConfigError, match=words) as caught:
        run_zero_shot(config, tmp_path, quiet=True)
    assert caught.value.path == field
    assert list(tmp_path.iterdir()) == []


def test_a_system_that_never_passes_the_filter_leaves_no_run_behind(tmp_path):
    # Lorenz-63 driven by Rossler leaves every basin: the catalogue rejects it.
    config = with_setting("catalogue", "skew_pairs", ["Lorenz63:Rossler"])
    with pytest.raises(ConfigError, match="Lorenz63_Rossler") as caught:
        run_zero_shot(config, tmp_path, quiet=True)
    assert caught.value.path == "catalogue"
    assert list(tmp_path.iterdir()) == []


def test_zero_shot_command_writes_a_complete_results_folder(tmp_path):
    (tmp_path / "tiny.toml").write_text(_toml.dumps(TINY))
    done = run_cli("zero-shot", "tiny.toml", "--results", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| forecaster | Thomas |" in done.stdout
    out = tmp_path / "out" / "tiny"
    for name in ("config.toml", "catalogue/catalogue.json", "catalogue/trajectories.npy",
                 "forecaster.eqx", "zero_shot.md", "zero_shot.csv", "metrics.json",
                 "loss.png", "forecasts/Thomas.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["zero_shot"]) == {"forecaster", "repeat_last", "context_mean"}
    assert set(metrics["zero_shot"]["forecaster"]) == {"Thomas", "median"}
    assert np.isfinite(metrics["final_loss"])
    # The catalogue holds the held-out system only in its test split.
    catalogue = tx.systems.load_catalogue(out / "catalogue")
    assert set(catalogue.system_labels("test")[0]) == {"Thomas"}
    assert "Thomas" not in catalogue.system_labels("train")[0]

    # A second run into the same folder needs --overwrite.
    again = run_cli("zero-shot", "tiny.toml", "--results", "out", cwd=tmp_path)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    both = run_cli("zero-shot", "tiny.toml", "--default", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr


HOW_TO = pathlib.Path(__file__).resolve().parent.parent / "docs" / "how-to" / "many-systems.md"


@pytest.mark.slow
def test_how_to_snippets_run_as_written(tmp_path, monkeypatch):
    """The Python snippets of docs/how-to/many-systems.md, in order, in one namespace
    (the catalogue is written below a temporary working directory)."""
    snippets = re.findall(r"```python\n(.*?)```", HOW_TO.read_text(), re.S)
    assert len(snippets) == 5
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for snippet in snippets:
        exec(compile(snippet, str(HOW_TO), "exec"), namespace)
    table = namespace["table"]
    assert set(table.systems) >= {"Thomas", "Halvorsen", "median"}
    assert np.all(np.isfinite(np.asarray(namespace["losses"])))
