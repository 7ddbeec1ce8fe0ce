"""What a new user meets when things go wrong on the command line: NaN in data on disk,
a training blow-up and rerunning after it, warnings, and list-valued settings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm.data import DiskTrajectories
from trainax_fm.experiment import ConfigError, _toml, validate_config

from test_cli import TINY, write_config


def run_cli(*args, cwd):
    """`python -m trainax_fm ...` in a fresh process (the worktree's package)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(tx.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "trainax_fm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def trajectories_with_a_nan():
    data = np.random.default_rng(0).normal(size=(6, 10, 1, 16)).astype(np.float32)
    data[3, 5, 0, 7] = np.nan
    return data


# --- data on disk -------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [1, 64 * 10, 64 * 10 * 2 + 1, 2**30])
@pytest.mark.parametrize("file_format", ["npy", "hdf5"])
def test_find_nonfinite_reads_blocks_and_names_the_first_bad_snapshot(
    tmp_path, file_format, block_bytes
):
    """Blocks of snapshots, of one trajectory and of several: the same first hit, in
    the file's indices (also for a view), and `None` for clean data."""
    data = trajectories_with_a_nan()
    data[4, 1, 0, 0] = np.inf
    if file_format == "npy":
        np.save(tmp_path / "d.npy", data)
        source = DiskTrajectories(tmp_path / "d.npy")
    else:
        h5py = pytest.importorskip("h5py")
        with h5py.File(tmp_path / "d.h5", "w") as file:
            file["fields/u"] = data
        source = DiskTrajectories(tmp_path / "d.h5", "hdf5", "fields/u")
    assert source.find_nonfinite(block_bytes) == (3, 5)
    assert source.select((4, 6)).find_nonfinite(block_bytes) == (4, 1)
    assert source.select((0, 3)).find_nonfinite(block_bytes) is None
    assert source.select(None, 5).find_nonfinite(block_bytes) == (4, 1)
    with pytest.raises(ValueError, match="block_bytes"):
        source.find_nonfinite(0)


@pytest.mark.parametrize("file_format", ["npy", "hdf5"])
def test_nan_on_disk_is_reported_before_training(tmp_path, file_format):
    data = trajectories_with_a_nan()
    if file_format == "npy":
        np.save(tmp_path / "data.npy", data)
        source, words = "npy:data.npy", [str(tmp_path / "data.npy")]
    else:
        h5py = pytest.importorskip("h5py")
        with h5py.File(tmp_path / "data.h5", "w") as file:
            file["fields/u"] = data
        source = "hdf5:data.h5#fields/u"
        words = [str(tmp_path / "data.h5"), "data set 'fields/u'"]
    disk = {**TINY, "name": "disk", "data": {"source": source},
            "training": {**TINY["training"], "method": "one", "num_training_steps": 5},
            "evaluation": {"num_rollout_steps": 3, "nrmse_aggregate_steps": 3}}
    config = tmp_path / "disk.toml"
    config.write_text(_toml.dumps(disk))
    done = run_cli("train", str(config), "--results", "results", "--quiet", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "data.source" in done.stderr and "trajectory 3, time index 5" in done.stderr
    for word in words:
        assert word in done.stderr
    assert not (tmp_path / "results").exists()  # nothing to --overwrite afterwards


def test_nan_in_a_file_source_names_trajectory_and_time(tmp_path):
    np.save(tmp_path / "data.npy", trajectories_with_a_nan())
    with pytest.raises(ConfigError, match="trajectory 3, time index 5"):
        tx.experiment._files.load_trajectory_file(tmp_path / "data.npy")


# --- a blow-up and what follows -------------------------------------------------------


def test_blow_up_names_configuration_keys_and_a_rerun_replaces_the_failed_run(tmp_path):
    """The first run blows up at update 1 (learning rate 1e30); its message names the
    `[training]` keys and the ways on, the folder is marked failed and keeps the good
    checkpoint. `--resume` continues from that checkpoint; the same command with a
    repaired configuration replaces the failed run without --overwrite."""
    config = write_config(tmp_path / "run.toml", training={
        "learning_rate": 1e30, "checkpoint_every": 1, "warmup_steps": 0,
        "lr_schedule": "constant"})
    command = ("train", config, "--results", "results", "--quiet")
    failed = run_cli(*command, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    message = failed.stderr
    assert message.startswith("trainax-fm: error: the training loss became")
    assert "update 1" in message
    for words in ("learning_rate (now 1e+30)", "grad_clip_norm = 1.0",
                  'on_nonfinite = "skip"', "--resume", "run it again"):
        assert words in message, words
    assert "optax" not in message and "on_nonfinite='skip'" not in message
    run = tmp_path / "results" / "tiny"
    assert "'results/tiny/checkpoint.eqx' (update 1)" in message
    progress = json.loads((run / "progress.json").read_text())
    assert "update 1" in progress["failed"]
    assert not (run / "metrics.json").exists()

    # --resume continues from the good checkpoint (and blows up again: same settings).
    resumed = run_cli(*command[:-1], "--resume", cwd=tmp_path)
    assert resumed.returncode == 1
    assert "Resuming" in resumed.stdout and "at update 1/30" in resumed.stdout

    write_config(tmp_path / "run.toml", training={"learning_rate": 0.003, "batch_size": 500},
                 logging={"formats": ["jsonl", "csv"]})
    again = run_cli(*command[:-1], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Replacing the failed run" in again.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert "failed" not in json.loads((run / "progress.json").read_text())
    # No validation ran: no validation.csv, and none listed.
    assert "train.csv" in metrics["files"] and "validation.csv" not in metrics["files"]
    assert not (run / "validation.csv").exists()
    # The batch-size warning is one line of the command, without Python's source line.
    warning = [line for line in again.stderr.splitlines() if "batch_size (500)" in line]
    assert warning and warning[0].startswith("trainax-fm: warning: batch_size (500)")
    assert "UserWarning" not in again.stderr and "warnings.warn" not in again.stderr


def test_a_finished_run_is_still_refused_without_resume_or_overwrite(tmp_path):
    root = tmp_path / "results"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "config.toml").write_text(tx.experiment.config_to_toml(
        validate_config(TINY)))
    (root / "tiny" / "progress.json").write_text(json.dumps({"train_seconds": 1.0}))
    with pytest.raises(FileExistsError, match="already holds a run"):
        tx.experiment.run_experiment(TINY, root, quiet=True)


def test_on_nonfinite_skip_trains_through_a_blow_up(tmp_path):
    config = {**TINY, "training": {**TINY["training"], "learning_rate": 1e30,
                                   "num_training_steps": 6, "checkpoint_every": 3,
                                   "on_nonfinite": "skip"}}
    result = tx.experiment.run_experiment(config, tmp_path, quiet=True)
    assert result["status"] == "complete"
    assert not (tmp_path / "tiny" / "progress.json").read_text().count("failed")


def test_python_trainer_keeps_python_advice():
    data = np.random.default_rng(0).normal(size=(4, 6, 1, 8)).astype(np.float32)
    import equinox as eqx
    import jax
    import optax

    network = eqx.nn.Conv1d(1, 1, 3, padding=1, key=jax.random.PRNGKey(0))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e30), num_training_steps=4, batch_size=4,
        steps_per_dispatch=1,
    )
    with pytest.raises(tx.NonFiniteLossError, match="optax.clip_by_global_norm") as info:
        trainer.train(network, jax.random.PRNGKey(0), spawn_tqdm=False)
    assert "grad_clip_norm" not in str(info.value)


# --- settings ---------------------------------------------------------------------------


def test_list_settings_accept_toml_arrays_and_strings_alike():
    as_arrays = validate_config({
        "validation": {"metrics": ["loss", "nrmse@10"]},
        "logging": {"formats": ["jsonl", "csv"]},
    })
    as_strings = validate_config({
        "validation": {"metrics": "loss;nrmse@10"}, "logging": {"formats": "jsonl;csv"},
    })
    assert as_arrays == as_strings  # so a run written one way resumes the other way
    assert as_arrays["logging"]["formats"] == "jsonl;csv"
    for table, key, value in (("validation", "metrics", ["loss", 3]),
                              ("logging", "formats", ["jsonl", "pdf"]),
                              ("logging", "formats", [])):
        with pytest.raises(ConfigError, match=f"{table}.{key}"):
            validate_config({table: {key: value}})


def test_on_nonfinite_and_rollout_plot_every_explain_themselves():
    assert validate_config({})["training"]["on_nonfinite"] == "raise"
    with pytest.raises(ConfigError, match="training.on_nonfinite") as info:
        validate_config({"training": {"on_nonfinite": "ignore"}})
    assert "'raise', 'skip'" in str(info.value)
    with pytest.raises(ConfigError, match="logging.rollout_plot_every") as info:
        validate_config({"logging": {"rollout_plot_every": -1}})
    assert "validations (not updates)" in str(info.value)
