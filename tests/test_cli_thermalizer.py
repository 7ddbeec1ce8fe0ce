"""`therm;K;EMULATOR_RESULTS_DIR[;THRESHOLD]` through the command line: a thermalizer
trained in a fresh process for an emulator saved by an earlier run, scored as the
thermalized emulator and evaluated again; an emulator folder that is missing,
unfinished or trained on other data refused before the run's folder is created."""

import json
import shutil

import equinox as eqx
import jax
import numpy as np
import pytest
from test_cli_distillation import cli_batch

import trainax_fm as tx
from trainax_fm._cli import main
from trainax_fm.experiment import _toml

DATA = {"source": "lorenz", "num_train_samples": 3, "num_test_samples": 2,
        "temporal_horizon": 5, "num_warmup_steps": 10}
K = 10


def write_run(folder, name, method, data=DATA, **network):
    config = {
        "name": name, "data": data, "network": {"spec": "MLP;8;1;tanh", **network},
        "training": {"method": method, "num_training_steps": 3, "batch_size": 4},
        "evaluation": {"num_rollout_steps": 3}, "logging": {"every": 0},
    }
    path = folder / f"{name}.toml"
    path.write_text(_toml.dumps(config))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An emulator (`one`), a thermalizer for it and `eval` of the result, all in one
    fresh process."""
    folder = tmp_path_factory.mktemp("therm")
    results = folder / "runs"
    emulator = write_run(folder, "emulator", "one")
    therm = write_run(folder, "therm", f"therm;{K};{results / 'emulator'};0")
    outcomes = cli_batch(
        [["train", emulator, "--results", str(results), "--quiet"],
         ["train", therm, "--results", str(results), "--quiet"],
         ["eval", str(results / "therm")]],
        folder / "report.json",
    )
    for outcome in outcomes:
        assert outcome["returncode"] == 0, outcome["stderr"]
    return results, outcomes


def test_the_thermalized_emulator_is_trained_scored_and_evaluated(runs):
    results, outcomes = runs
    metrics = json.loads((results / "therm" / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["method"] == f"therm;{K};{results / 'emulator'};0"
    # three checked steps per rollout, each one either denoised or not
    assert 0.0 <= metrics["thermalizer_interventions"] <= 3.0
    assert metrics["thermalizer_interventions_per_seed"] == [metrics["thermalizer_interventions"]]
    evaluated = json.loads(outcomes[2]["stdout"])
    assert evaluated["thermalizer_interventions"] == metrics["thermalizer_interventions"]
    np.testing.assert_allclose(evaluated["gmean_nrmse"], metrics["gmean_nrmse"], rtol=1e-5)
    config = tx.experiment.load_config(results / "therm" / "config.toml")
    assert config["network"]["normalize"] == "state"  # the thermalizer's default


def test_the_saved_run_holds_the_frozen_emulator_and_a_trained_thermalizer(runs):
    results, _ = runs
    [emulator] = tx.experiment.load_networks(
        results / "emulator", tx.experiment.load_config(results / "emulator" / "config.toml"),
        (3,))
    config = tx.experiment.load_config(results / "therm" / "config.toml")
    [thermalized] = tx.experiment.load_networks(results / "therm", config, (3,))
    assert isinstance(thermalized, tx.flow.ThermalizedStepper)
    assert thermalized.threshold == 0 and thermalized.every == 1
    # the emulator's weights and statistics are those it was saved with, bit for bit
    assert bool(eqx.tree_equal(thermalized.stepper, emulator))
    thermalizer = thermalized.thermalizer
    assert isinstance(thermalizer, tx.NormalizedStepper)
    assert thermalizer.network.num_noise_steps == K
    state = jax.numpy.ones(3)
    assert thermalizer.network.noise_logits(state).shape == (K,)
    assert thermalizer.network.epsilon(state, 3).shape == (3,)
    # normalised with the statistics of the training states, which the emulator's
    # run (same data, normalize = "residual") fitted too
    np.testing.assert_allclose(thermalizer.normalizer.mean, emulator.normalizer.mean)
    np.testing.assert_allclose(thermalizer.normalizer.std, emulator.normalizer.std)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(runs, tmp_path):
    """The checkpoint holds the state of the optimizer that freezes the emulator."""
    results, _ = runs
    config = write_run(tmp_path, "therm", f"therm;{K};{results / 'emulator'};0")
    out = str(tmp_path / "runs")
    assert main(["train", config, "--results", out, "--quiet", "--stop-after", "1"]) == 0
    assert main(["train", config, "--results", out, "--quiet", "--resume"]) == 0
    resumed = (tmp_path / "runs" / "therm" / "network.eqx").read_bytes()
    assert resumed == (results / "therm" / "network.eqx").read_bytes()


def _unfinished(emulator, folder):
    shutil.copytree(emulator, folder)
    (folder / "network.eqx").unlink()


def _other_data(emulator, folder):
    shutil.copytree(emulator, folder)
    text = (folder / "config.toml").read_text()
    (folder / "config.toml").write_text(
        text.replace("num_train_samples = 3", "num_train_samples = 4"))


BROKEN = {
    "missing": (lambda emulator, folder: None, "finished emulator run as EMULATOR_RESULTS_DIR"),
    "unfinished": (_unfinished, "finish training the emulator run"),
    "other_data": (_other_data, "num_train_samples = 4 there, 3 here"),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_a_bad_emulator_folder_leaves_no_results_folder(runs, tmp_path, problem, capsys):
    results, _ = runs
    make, words = BROKEN[problem]
    bad = tmp_path / "bad_emulator"
    make(results / "emulator", bad)
    config = write_run(tmp_path, "therm", f"therm;{K};{bad}")
    assert main(["train", config, "--results", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "training.method" in err and words in err, err
    assert not (tmp_path / "runs" / "therm").exists()


def test_residual_normalisation_is_refused(tmp_path, capsys):
    config = write_run(tmp_path, "therm", "therm;10;anywhere", normalize="residual")
    assert main(["train", config, "--results", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "network.normalize" in err and "single states" in err, err
