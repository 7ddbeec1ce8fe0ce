"""The `trainax-fm` command line end to end on tiny advection data."""

import json
import subprocess
import sys

import equinox as eqx
import jax
import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm._cli import main
from trainax_fm.experiment import _toml
from trainax_fm.experiment._data import load_data
from trainax_fm.experiment._method_spec import parse_method
from trainax_fm.experiment._setup import build_optimizer, build_trainer

TINY = {
    "name": "tiny",
    "data": {"num_train_samples": 8, "num_test_samples": 3, "temporal_horizon": 20,
             "num_points": 16, "highest_init_mode": 3},
    "network": {"spec": "Conv;4;2;relu"},
    "training": {"method": "sup;2", "num_training_steps": 30, "batch_size": 4,
                 "learning_rate": 0.003, "checkpoint_every": 10, "lr_schedule": "cosine",
                 "warmup_steps": 3},
    "evaluation": {"num_rollout_steps": 6, "nrmse_aggregate_steps": 4},
}


def write_config(path, **changes):
    config = {key: (dict(value) if isinstance(value, dict) else value)
              for key, value in TINY.items()}
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    path.write_text(_toml.dumps(config))
    return str(path)


def train_method_in_fresh_process(tmp_path, method):
    """The tiny run trained with `method` (4 updates) by `python -m trainax_fm train` in
    a fresh process; its `metrics.json` and the trainer its saved configuration
    rebuilds."""
    config = write_config(
        tmp_path / "run.toml",
        training={"num_training_steps": 4, "checkpoint_every": 2, "warmup_steps": 0,
                  "method": method},
    )
    done = subprocess.run(
        [sys.executable, "-m", "trainax_fm", "train", config, "--results", str(tmp_path),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["final_train_loss"] > 0
    assert np.isfinite(metrics["gmean_nrmse"])
    saved = tx.experiment.load_config(tmp_path / "tiny" / "config.toml")
    assert saved["training"]["method"] == method
    dataset, saved = load_data(saved)
    parsed = parse_method(method)
    return metrics, build_trainer(saved, dataset, parsed, build_optimizer(saved["training"]))


def leaves(path, like):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(
        eqx.filter(tx.load_stepper(path, like), eqx.is_array))]


def test_module_help():
    done = subprocess.run([sys.executable, "-m", "trainax_fm", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for word in ("train", "eval", "table", "config"):
        assert word in done.stdout


def test_train_help_documents_stop_after(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--stop-after" in out and "--resume" in out and "checkpoint" in out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted tiny run, shared by the tests below."""
    root = tmp_path_factory.mktemp("results")
    config = write_config(root.parent / "tiny.toml")
    assert main(["train", config, "--results", str(root), "--quiet"]) == 0
    return root, config


def test_train_writes_everything(finished):
    root, _ = finished
    run = root / "tiny"
    for name in ["checkpoint.eqx", "config.toml", "metrics.json", "network.eqx",
                 "progress.json", "loss.png", "error_over_time.png", "spacetime.png"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert len(metrics["nrmse"]) == 6 and len(metrics["correlation"]) == 6
    assert metrics["nrmse_aggregate_steps"] == 4
    assert np.isclose(metrics["gmean_nrmse"], np.exp(np.mean(np.log(metrics["nrmse"][:4]))),
                      rtol=1e-4)
    assert 0 <= metrics["high_correlation_time"] <= 6
    assert metrics["num_parameters"] == (1 * 4 * 3 + 4) + (4 * 4 * 3 + 4) + (4 * 1 * 3 + 1)
    assert metrics["final_train_loss"] > 0 and metrics["wall_time_seconds"] > 0
    # config.toml holds every default and loads back to the configuration that ran
    saved = tx.experiment.load_config(run / "config.toml")
    assert saved["training"]["steps_per_dispatch"] == 1
    assert saved["data"]["cfl"] == 0.75 and saved["training"]["method"] == "sup;2"
    # the saved network is the checkpoint's stepper
    state = tx.load_train_state(run / "checkpoint.eqx", _like(saved),
                                tx.experiment._setup.build_optimizer(saved["training"]))
    assert state.step == 30 and state.loss_history.shape == (30,)
    net = leaves(run / "network.eqx", _like(saved))
    ref = [
        np.asarray(x)
        for x in jax.tree_util.tree_leaves(eqx.filter(state.stepper, eqx.is_array))
    ]
    assert all(np.array_equal(a, b) for a, b in zip(net, ref))


def _like(config):
    return tx.experiment._setup.init_stepper(config, 1, 1, 16, jax.random.PRNGKey(0))


def test_existing_run_needs_resume_or_overwrite(finished, capsys):
    """The command line names its flags, Python its keyword arguments."""
    root, config = finished
    assert main(["train", config, "--results", str(root), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "--name" in err
    assert "=True" not in err
    with pytest.raises(FileExistsError) as info:
        tx.experiment.run_experiment(config, root, quiet=True)
    message = str(info.value)
    assert "resume=True" in message and "overwrite=True" in message and "name=" in message
    assert "--" not in message


def test_resume_and_overwrite_together_are_refused(finished, capsys):
    root, config = finished
    with pytest.raises(SystemExit) as info:
        main(["train", config, "--results", str(root), "--resume", "--overwrite"])
    assert info.value.code == 2
    assert "--resume and --overwrite exclude each other" in capsys.readouterr().err
    with pytest.raises(ValueError, match="resume=True and overwrite=True exclude each other"):
        tx.experiment.run_experiment(config, root, resume=True, overwrite=True, quiet=True)
    assert (root / "tiny" / "metrics.json").is_file()  # the finished run is untouched


def test_resume_after_stop_is_bit_identical(finished, tmp_path, capsys):
    root, config = finished
    args = ["train", config, "--results", str(tmp_path), "--quiet"]
    assert main(args + ["--stop-after", "13"]) == 0  # checkpoints at 10 and 13
    run = tmp_path / "tiny"
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "progress.json").read_text())["step"] == 13
    assert main(args + ["--resume"]) == 0  # 13 -> 30
    like = _like(tx.experiment.load_config(run / "config.toml"))
    a = leaves(root / "tiny" / "network.eqx", like)
    b = leaves(run / "network.eqx", like)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    ma = json.loads((root / "tiny" / "metrics.json").read_text())
    mb = json.loads((run / "metrics.json").read_text())
    assert ma["nrmse"] == mb["nrmse"] and ma["final_train_loss"] == mb["final_train_loss"]
    # resuming with a different configuration is refused, naming the field
    other = write_config(tmp_path / "other.toml", training={"batch_size": 3})
    assert main(["train", other, "--results", str(tmp_path), "--quiet", "--resume"]) == 2
    assert "training.batch_size" in capsys.readouterr().err


def test_eval_and_table(finished, tmp_path, capsys):
    root, _ = finished
    run = root / "tiny"
    assert main(["eval", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((run / "metrics.json").read_text())
    assert np.isclose(printed["gmean_nrmse"], stored["gmean_nrmse"], rtol=1e-5)
    # no validation: training and eval both score the final network, and say so
    assert printed["scored_network"] == stored["scored_network"] == "network.eqx"
    own_picture = (run / "eval_spacetime.png").read_bytes()
    # evaluation on a file of test trajectories: its own pictures beside the others
    data = tx.sample_data.advection_1d_periodic(16, 2, temporal_horizon=5, highest_init_mode=3,
                                                key=jax.random.PRNGKey(5))
    np.save(tmp_path / "extra.npy", np.asarray(data))
    assert main(["eval", str(run), "--data", str(tmp_path / "extra.npy"), "--quiet"]) == 0
    extra = json.loads((run / "eval_extra.json").read_text())
    assert extra["num_rollout_steps"] == 4 and extra["num_test_samples"] == 2
    assert (run / "eval_extra_spacetime.png").is_file()
    assert (run / "eval_extra_error_over_time.png").is_file()
    assert (run / "eval_spacetime.png").read_bytes() == own_picture
    # a too long rollout on the file: the flag is named as the command line spells it
    assert main(["eval", str(run), "--data", str(tmp_path / "extra.npy"),
                 "--num-rollout-steps", "9", "--quiet"]) == 2
    assert "`--num-rollout-steps`: expected at most 4" in capsys.readouterr().err
    with pytest.raises(tx.experiment.ConfigError, match="`num_rollout_steps`: expected"):
        tx.experiment.evaluate(run, data=tmp_path / "extra.npy", num_rollout_steps=9)
    # table
    csv_path = tmp_path / "table.csv"
    assert main(["table", str(root), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| run | name |") and "| tiny | tiny |" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("run,name,source,method") and len(lines) == 2
    rows = tx.experiment.collect_results(root)
    assert rows[0]["method"] == "sup;2" and rows[0]["gmean_nrmse"] == stored["gmean_nrmse"]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="trainax_fm\\[table\\]"):
            tx.experiment.to_dataframe(rows)
        assert tx.experiment.results_table(root) == rows
    else:
        assert tx.experiment.results_table(root).shape[0] == 1


def test_eval_data_with_other_channels_blames_the_data(finished, tmp_path, capsys):
    root, _ = finished
    run = root / "tiny"  # trained on states (1, 16)
    assert json.loads((run / "metrics.json").read_text())["state_shape"] == [1, 16]
    np.save(tmp_path / "two.npy", np.zeros((2, 5, 2, 16), np.float32))
    assert main(["eval", str(run), "--data", str(tmp_path / "two.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "`--data`" in err and "1 channel(s), the network's" in err
    assert "got 2 channel(s)" in err and "channel count does not match the network's" in err
    assert "network.eqx" not in err  # the network file is fine
    # a 1D field without its channel axis
    np.save(tmp_path / "flat.npy", np.zeros((2, 5, 16), np.float32))
    assert main(["eval", str(run), "--data", str(tmp_path / "flat.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "0 instead of 1 spatial axes" in err and "u[:, :, None]" in err


def test_config_errors_exit_2_and_name_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[training]\nmethod = "sup;2;yes"\n')
    assert main(["train", str(bad), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "training.method" in err and "bad.toml" in err and "true, false" in err
    assert main(["eval", str(tmp_path / "nothing")]) == 1
    capsys.readouterr()
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "`trainax-fm train --default`" in capsys.readouterr().err
    with pytest.raises(tx.experiment.ConfigError, match=r"`default_config\(\)`"):
        tx.experiment.load_config(tmp_path / "missing.toml")
    with pytest.raises(SystemExit):
        main(["train"])  # neither a file nor --default


def test_config_command_prints_loadable_defaults(tmp_path, capsys):
    assert main(["config", "--source", "lorenz"]) == 0
    path = tmp_path / "lorenz.toml"
    path.write_text(capsys.readouterr().out)
    assert tx.experiment.load_config(path) == tx.experiment.default_config("lorenz")


def test_seeds_flow_matching_and_ode_data(tmp_path):
    """Two vmapped seeds of a flow-matching MLP on Lorenz, stopped and resumed."""
    config = {
        "name": "fm", "num_seeds": 2,
        "data": {"source": "lorenz", "num_train_samples": 3, "num_test_samples": 2,
                 "temporal_horizon": 6, "num_warmup_steps": 10},
        "network": {"spec": "MLP;8;1;tanh"},
        "training": {"method": "fm;2;heun", "num_training_steps": 6, "batch_size": 4,
                     "checkpoint_every": 4},
        "evaluation": {"num_rollout_steps": 3},
    }
    whole = tx.experiment.run_experiment(config, tmp_path / "a", quiet=True)
    messages = []
    stopped = tx.experiment.run_experiment(config, tmp_path / "b", stop_after=5,
                                           printer=messages.append)
    assert "Continue with resume=True." in messages[-1] and "--" not in messages[-1]
    assert stopped == {"status": "stopped", "step": 5, "num_training_steps": 6,
                       "results_dir": str(tmp_path / "b" / "fm")}
    resumed = tx.experiment.run_experiment(config, tmp_path / "b", quiet=True, resume=True)
    assert whole["num_function_evaluations"] == 4
    assert len(whole["final_train_loss_per_seed"]) == 2
    assert len(whole["nrmse_per_seed"]) == 2
    assert resumed["final_train_loss_per_seed"] == whole["final_train_loss_per_seed"]
    assert resumed["nrmse"] == whole["nrmse"]
    for name in ["network_seed0.eqx", "network_seed1.eqx", "rollout.png", "loss.png"]:
        assert (tmp_path / "a" / "fm" / name).is_file()
    for name in ["network_seed0.eqx", "network_seed1.eqx"]:
        assert (tmp_path / "a" / "fm" / name).read_bytes() == (
            tmp_path / "b" / "fm" / name).read_bytes()
    # the checkpoint holds the seed-stacked state with a (seeds, steps) loss history
    header = json.loads((tmp_path / "b" / "fm" / "checkpoint.eqx").open("rb").readline())
    assert header["step"] == 6 and header["num_seeds"] == 2 and header["num_losses"] == 6


LORENZ = {
    "data": {"source": "lorenz", "num_train_samples": 3, "num_test_samples": 2,
             "temporal_horizon": 5, "num_warmup_steps": 10},
    "network": {"spec": "MLP;8;1;tanh"},
    "evaluation": {"num_rollout_steps": 3},
}


def run_lorenz(root, name, method, steps=3):
    """A tiny Lorenz run of `method` in `root/name`; returns its summary."""
    config = {**LORENZ, "name": name,
              "training": {"method": method, "num_training_steps": steps, "batch_size": 4}}
    return tx.experiment.run_experiment(config, root, quiet=True)


@pytest.fixture(scope="module")
def fm_teacher(tmp_path_factory):
    """One finished `fm;4` run, the teacher both distillation tests below name (they
    only read its folder): `(folder, summary)`."""
    root = tmp_path_factory.mktemp("teacher")
    return root / "fm4", run_lorenz(root, "fm4", "fm;4")


def test_few_step_flow_maps_from_scratch_and_distilled_from_a_results_folder(
    fm_teacher, tmp_path
):
    """`meanflow;1` trains from scratch; `lsd;1;DIR` and `sg;2;DIR` distil the fm run
    in DIR (the teacher is named by its results folder)."""

    def run(name, method):
        return run_lorenz(tmp_path, name, method)

    teacher, summary = fm_teacher
    assert summary["num_function_evaluations"] == 4
    assert run("meanflow", "meanflow;1")["num_function_evaluations"] == 1
    lsd = run("lsd", f"lsd;1;{teacher}")
    assert lsd["num_function_evaluations"] == 1
    assert run("sg", f"sg;2;{teacher}")["num_function_evaluations"] == 4
    # the distilled student starts at the teacher's Euler step: a small loss at once
    assert lsd["final_train_loss"] < run("lsd_scratch", "lsd;1")["final_train_loss"]
    with pytest.raises(tx.experiment.ConfigError, match="fm run"):
        run("bad", f"lsd;1;{tmp_path / 'missing'}")


def test_progressive_distillation_stages_and_shortcut_ema_from_the_grammar(
    fm_teacher, tmp_path
):
    """`pd;K;DIR` distils N/K teacher steps into one (chained: fm;4 -> pd;2 -> pd;1);
    `shortcut;K;ema=DECAY` trains the online velocity and samples with the average."""

    def run(name, method, steps=3):
        return run_lorenz(tmp_path, name, method, steps)

    fm4, _ = fm_teacher
    assert run("pd2", f"pd;2;{fm4}")["num_function_evaluations"] == 2
    assert run("pd1", f"pd;1;{tmp_path / 'pd2'}")["num_function_evaluations"] == 1
    # the stage's student starts from its teacher's weights
    shape = (3,)
    config = tx.experiment.load_config(tmp_path / "pd1" / "config.toml")
    student = tx.experiment.load_networks(tmp_path / "pd1", config, shape)[0]
    teacher_config = tx.experiment.load_config(tmp_path / "pd2" / "config.toml")
    teacher = tx.experiment.load_networks(tmp_path / "pd2", teacher_config, shape)[0]
    assert isinstance(student, tx.flow.FlowMatchingStepper) and student.num_steps == 1
    assert jax.tree_util.tree_structure(student.velocity) == jax.tree_util.tree_structure(
        teacher.velocity)
    run("sc", "shortcut;1;ema=0.0", steps=4)
    for index, (bad, words) in enumerate([(f"pd;3;{fm4}", "divides"),
                                          (f"pd;4;{fm4}", "divides"),
                                          (f"pd;1;{tmp_path / 'sc'}", "fm or pd run")]):
        with pytest.raises(tx.experiment.ConfigError, match=words):
            run(f"bad{index}", bad)
        assert not (tmp_path / f"bad{index}").exists()  # rerun without --overwrite
    config = tx.experiment.load_config(tmp_path / "sc" / "config.toml")
    shortcut = tx.experiment.load_networks(tmp_path / "sc", config, shape)[0]
    assert isinstance(shortcut, tx.flow.EMAFlowMatchingStepper)
    assert shortcut.num_function_evaluations == 1 and shortcut.model.decay == 0.0
    online, average = (jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))
                       for m in (shortcut.model.velocity, shortcut.model.ema))
    # decay 0: the optimizer moved the average all the way to the new weights
    for a, b in zip(online, average):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_nonfinite_loss_exits_1_and_names_the_checkpoint(tmp_path, capsys):
    config = write_config(tmp_path / "nan.toml",
                          training={"learning_rate": 1e30, "checkpoint_every": 1})
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainax-fm: error: the training loss became")
    assert str(tmp_path / "tiny" / "checkpoint.eqx") in err
    assert not (tmp_path / "tiny" / "metrics.json").exists()


def test_normalize_residual_trains_a_normalized_stepper(tmp_path):
    """`[network] normalize = "residual"`: the saved network carries statistics of the
    training data (not the test data), evaluates in physical units, resumes, and a
    boolean `true` reads as "state"."""
    config = write_config(
        tmp_path / "norm.toml", name="norm",
        network={"spec": "Conv;4;2;relu", "normalize": "residual"},
        training={"num_training_steps": 6, "checkpoint_every": 3},
    )
    assert main(["train", config, "--results", str(tmp_path), "--quiet", "--stop-after", "3"]) == 0
    assert main(["train", config, "--results", str(tmp_path), "--quiet", "--resume"]) == 0
    saved = tx.experiment.load_config(tmp_path / "norm" / "config.toml")
    assert saved["network"]["normalize"] == "residual"
    dataset, _ = tx.experiment._data.load_data(saved)
    expected = tx.Normalizer.fit(dataset.train, increments=True)
    like = tx.NormalizedStepper(_like(saved), expected, residual=True)
    stepper = tx.load_stepper(tmp_path / "norm" / "network.eqx", like)
    for a, b in zip(
        jax.tree_util.tree_leaves(stepper.normalizer), jax.tree_util.tree_leaves(expected)
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="normalised stepper"):
        tx.load_stepper(tmp_path / "norm" / "network.eqx", _like(saved))
    metrics = json.loads((tmp_path / "norm" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and np.all(np.isfinite(metrics["nrmse"]))
    raw = {**TINY, "network": {"spec": "Conv;4;2;relu", "normalize": True}}
    assert tx.experiment.validate_config(raw)["network"]["normalize"] == "state"
    with pytest.raises(tx.experiment.ConfigError, match="normalize"):
        tx.experiment.validate_config({**TINY, "network": {"normalize": "yes"}})
