"""`[validation]` and `[logging]` in the command line: files, early stopping, resume."""

import json

import equinox as eqx
import jax
import numpy as np
import pytest

import trainax_fm as tx

from trainax_fm._cli import main
from trainax_fm.experiment import ConfigError, validate_config

from test_cli import write_config

VALIDATED = {
    "validation": {"num_samples": 3, "every": 10, "metrics": "loss;nrmse@3"},
    "logging": {"every": 10, "formats": "jsonl;csv"},
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    root = tmp_path_factory.mktemp("validated")
    config = write_config(root.parent / "validated.toml", **VALIDATED)
    assert main(["train", config, "--results", str(root), "--quiet"]) == 0
    return root / "tiny", config


def test_results_folder_has_best_model_logs_and_validation_curve(validated):
    run, _ = validated
    for name in ("best.eqx", "log.jsonl", "train.csv", "validation.csv", "validation.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    history = metrics["validation"]
    assert history["step"] == [10, 20, 30]
    best = int(np.argmin(history["loss"]))
    assert metrics["best_validation"] == pytest.approx(history["loss"][best])
    assert metrics["best_validation_step"] == history["step"][best]
    assert metrics["stopped_early_at"] is None
    assert {"best.eqx", "log.jsonl", "validation.png"} <= set(metrics["files"])
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records if r["kind"] == "validation"] == pytest.approx(
        history["loss"]
    )


def test_resumed_cli_run_has_the_same_validation(validated, tmp_path):
    run, config = validated
    assert main(["train", config, "--results", str(tmp_path), "--quiet", "--stop-after", "15"]) == 0
    assert main(["train", config, "--results", str(tmp_path), "--quiet", "--resume"]) == 0
    full = json.loads((run / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert resumed["validation"] == full["validation"]
    assert resumed["nrmse"] == full["nrmse"]
    log = [json.loads(line) for line in (tmp_path / "tiny" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "validation"] == [10, 20, 30]
    assert (run / "best.eqx").read_bytes() == (tmp_path / "tiny" / "best.eqx").read_bytes()


def test_early_stopping_completes_the_run(tmp_path, capsys):
    config = write_config(
        tmp_path / "stop.toml",
        validation={"num_samples": 3, "every": 5, "metrics": "nrmse@3",
                    "patience": 1, "min_delta": 10.0},
        training={"num_training_steps": 200},
    )
    assert main(["train", config, "--results", str(tmp_path / "runs")]) == 0
    metrics = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    # The first validation is the best; nothing beats it by 10: the next one stops.
    assert metrics["stopped_early_at"] == 10
    assert metrics["best_validation_step"] == 5
    # the updates trained, not the ones planned, in metrics.json, summary and table
    assert metrics["num_training_steps"] == 10 and metrics["planned_training_steps"] == 200
    summary = capsys.readouterr().out
    assert "trained 10 of 200 updates (early stopping)" in summary
    assert "200 updates" not in summary.replace("10 of 200 updates", "")
    best = f"best validation nrmse@3 {metrics['best_validation']:.4g} at update 5"
    assert best in summary
    assert main(["table", str(tmp_path / "runs"), "--csv", str(tmp_path / "t.csv")]) == 0
    [row] = tx.experiment.collect_results(tmp_path / "runs")
    assert row["num_training_steps"] == 10


def test_eval_scores_what_training_scored(tmp_path, capsys):
    """With a validated best the test metrics of training score `best.eqx`, and so does
    `trainax-fm eval` (monitoring the largest loss puts the best at the first
    validation, so the best and the final network differ)."""
    config = write_config(
        tmp_path / "best.toml",
        validation={"num_samples": 3, "every": 10, "metrics": "loss", "mode": "max"},
        training={"num_training_steps": 20},
    )
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 0
    trained = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert trained["best_validation_step"] == 10 and trained["scored_network"] == "best.eqx"
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "tiny"), "--no-plots"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scored_network"] == "best.eqx"
    evaluated = json.loads((tmp_path / "tiny" / "eval.json").read_text())
    for key in ("gmean_nrmse", "nrmse", "correlation", "high_correlation_time"):
        np.testing.assert_allclose(evaluated[key], trained[key], rtol=1e-6, err_msg=key)
    # the final network scores differently: the comparison above can tell them apart
    final = tx.experiment.load_networks(
        tmp_path / "tiny", tx.experiment.load_config(tmp_path / "tiny" / "config.toml"),
        (1, 16))
    best = tx.experiment.load_networks(
        tmp_path / "tiny", tx.experiment.load_config(tmp_path / "tiny" / "config.toml"),
        (1, 16), best=True)
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree_util.tree_leaves(eqx.filter(final, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(best, eqx.is_array))))


def test_table_ranks_by_best_validation(tmp_path, capsys):
    for name, rate in (("fast", 0.01), ("slow", 0.0001)):
        config = write_config(tmp_path / f"{name}.toml", name=name, **VALIDATED,
                              training={"learning_rate": rate})
        assert main(["train", config, "--results", str(tmp_path / "runs"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["table", str(tmp_path / "runs"), "--sort", "best_validation"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["fast", "slow"]
    assert main(["table", str(tmp_path / "runs"), "--sort", "nonsense"]) == 2


@pytest.mark.parametrize(
    "section, match",
    [
        ({"validation": {"metrics": "loss;mse"}}, "validation.metrics"),
        ({"validation": {"monitor": "nrmse@7"}}, "validation.monitor"),
        ({"validation": {"every": 0}}, "validation.every"),
        ({"validation": {"pateince": 3}}, "did you mean 'patience'"),
        ({"logging": {"formats": "jsonl;xml"}}, "logging.formats"),
        ({"logging": {"every": -1}}, "logging.every"),
    ],
)
def test_bad_sections_are_config_errors(section, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(section)


def test_holding_out_every_trajectory_is_an_error(tmp_path, capsys):
    config = write_config(tmp_path / "all.toml", validation={"num_samples": 8})
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 2
    assert "validation.num_samples" in capsys.readouterr().err
