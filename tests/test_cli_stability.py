"""The methods against drift in the command line: `pf`, `cur`, `mmd`, `sinkhorn`
and `input_noise`."""

import json

import equinox as eqx
import pytest

import trainax_fm as tx
from trainax_fm._cli import main
from trainax_fm.experiment import ConfigError, validate_config
from trainax_fm.experiment._data import load_data
from trainax_fm.experiment._method_spec import parse_method
from trainax_fm.experiment._setup import build_optimizer, build_trainer

from test_cli import write_config

SHORT = {"num_training_steps": 6, "checkpoint_every": 3, "warmup_steps": 0}


@pytest.mark.parametrize(
    "spec, canonical",
    [("pf;1;2;True", "pf;1;2;true"), ("cur;2;3:1,6:2;false", "cur;2;3:1,6:2"),
     ("mmd;2;5e-1", "mmd;2;0.5"), ("sinkhorn;2;1e-1", "sinkhorn;2;0.1")],
)
def test_stability_methods_train_from_the_command_line(tmp_path, spec, canonical):
    config = write_config(tmp_path / "run.toml", training={**SHORT, "method": spec})
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["final_train_loss"] > 0
    saved = tx.experiment.load_config(tmp_path / "tiny" / "config.toml")
    assert saved["training"]["method"] == canonical


def _trainer(config_path):
    config = tx.experiment.load_config(config_path)
    dataset, config = load_data(config)
    method = parse_method(config["training"]["method"])
    return build_trainer(config, dataset, method, build_optimizer(config["training"]))


def test_input_noise_wraps_the_method_and_changes_training(tmp_path):
    losses = {}
    for name, noise in (("clean", 0.0), ("noisy", 0.1)):
        config = write_config(tmp_path / f"{name}.toml", name=name,
                              training={**SHORT, "method": "pf;1;2", "input_noise": noise})
        assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 0
        losses[name] = json.loads((tmp_path / name / "metrics.json").read_text())[
            "final_train_loss"]
    pushforward = tx.configuration.Pushforward(1, num_pushforward_steps=2)
    noisy = _trainer(tmp_path / "noisy" / "config.toml").loss_configuration
    assert eqx.tree_equal(noisy, tx.configuration.InputNoise(pushforward, 0.1))
    clean = _trainer(tmp_path / "clean" / "config.toml").loss_configuration
    assert eqx.tree_equal(clean, pushforward)
    assert losses["noisy"] != losses["clean"]  # same seed and data: only the noise differs


@pytest.mark.parametrize(
    "training, field, words",
    [
        ({"input_noise": -0.1}, "training.input_noise", "a number >= 0.0"),
        ({"input_noise": "0.1"}, "training.input_noise", "a number"),
        ({"method": "cur;2;3:1,6:3"}, "training.method", "lengths in 1 ... 2"),
        ({"method": "mmd;2;0"}, "training.method", "positive number WEIGHT"),
    ],
)
def test_bad_stability_options_name_the_field(training, field, words):
    with pytest.raises(ConfigError, match=field) as info:
        validate_config({"training": training})
    assert words in str(info.value)


def test_pushforward_needs_its_whole_window_in_the_data(tmp_path, capsys):
    config = write_config(tmp_path / "long.toml", training={**SHORT, "method": "pf;4;20"})
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "data.temporal_horizon" in error and "at least 25 snapshots" in error
