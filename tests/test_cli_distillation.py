"""Distillation from a results folder through the command line, as a new user runs it:
students trained in a fresh process that never held their teacher, and evaluated in
another fresh process that never held them (nothing cached from an earlier run), and a
teacher that is missing, unfinished, unreadable or of another layout refused before the
student's results folder is created."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm._cli import main
from trainax_fm.experiment import _toml

LORENZ = {
    "data": {"source": "lorenz", "num_train_samples": 3, "num_test_samples": 2,
             "temporal_horizon": 5, "num_warmup_steps": 10},
    "network": {"spec": "MLP;8;1;tanh"},
    "evaluation": {"num_rollout_steps": 3},
    "logging": {"every": 0},
}
TEACHER_METHOD = "fm;4"  # pd;2 halves its step count


def write_run(folder, name, method, source=None):
    config = {**LORENZ, "name": name,
              "training": {"method": method, "num_training_steps": 2, "batch_size": 4}}
    if source is not None:
        config["data"] = {"source": source, "num_train_samples": 3, "num_test_samples": 2,
                          "temporal_horizon": 5, "num_points": 16}
        config["network"] = {"spec": "Conv;4;1;relu"}
    path = folder / f"{name}.toml"
    path.write_text(_toml.dumps(config))
    return str(path)


# Runs each command of a JSON list as `trainax-fm ARGS` would, in this one process, and
# writes each exit code, stdout and stderr (or the traceback of an uncaught exception).
_BATCH = """
import contextlib, io, json, sys, traceback
from trainax_fm._cli import main
commands, report = json.loads(sys.argv[1]), sys.argv[2]
done = []
for args in commands:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except BaseException:
            code = None
            traceback.print_exc()
    done.append({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
with open(report, "w") as file:
    json.dump(done, file)
"""


def cli_batch(commands, report):
    """Run several `trainax-fm` commands in ONE fresh Python process.

    A process per command would import JAX and matplotlib and start XLA again each
    time; one process for a batch still holds nothing of the process that started it.

    **Arguments:**

    - `commands`: a list of argument lists of `trainax-fm` (without the program name).
    - `report`: a path the fresh process writes its outcomes to.

    **Returns:**

    - A list of dicts with the `returncode`, `stdout` and `stderr` of each command.
    """
    done = subprocess.run([sys.executable, "-c", _BATCH, json.dumps(commands), str(report)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """One tiny finished flow-matching run: the results folder every student names."""
    root = tmp_path_factory.mktemp("distil")
    config = write_run(root, "teacher", TEACHER_METHOD)
    assert main(["train", config, "--results", str(root), "--quiet"]) == 0
    return root / "teacher"


# Every method that takes a TEACHER results folder (and the EMA form of shortcut).
STUDENTS = {
    "lsd": ("lsd;1;{}", 1),
    "pd": ("pd;2;{}", 2),
    "sg": ("sg;2;{}", 4),
    "meanflow": ("meanflow;1;{}", 1),
    "shortcut": ("shortcut;2;{}", 2),
    "shortcut_ema": ("shortcut;2;{};ema=0.9", 2),
}


def test_every_teacher_method_is_listed():
    """A new method with a TEACHER field must join `STUDENTS` (and so the CLI test)."""
    from trainax_fm.experiment._method import FEW_STEP_KINDS

    assert {spec.split(";")[0] for spec, _ in STUDENTS.values()} == set(FEW_STEP_KINDS)


@pytest.fixture(scope="module")
def students(teacher, tmp_path_factory):
    """Every student trained from `teacher` in one fresh process, then evaluated in a
    second fresh process: `{name: (results folder, train outcome, eval outcome)}`."""
    root = tmp_path_factory.mktemp("students")
    names = sorted(STUDENTS)
    configs = [write_run(root, name, STUDENTS[name][0].format(teacher)) for name in names]
    trained = cli_batch([["train", config, "--results", str(root), "--quiet"]
                         for config in configs], root / "trained.json")
    evaluated = cli_batch([["eval", str(root / name), "--no-plots"] for name in names],
                          root / "evaluated.json")
    return {name: (root / name, t, e) for name, t, e in zip(names, trained, evaluated)}


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_distil_and_evaluate_in_fresh_processes(teacher, students, name):
    spec, nfe = STUDENTS[name]
    method = spec.format(teacher)
    folder, trained, evaluated = students[name]
    assert trained["returncode"] == 0, trained["stderr"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["num_function_evaluations"] == nfe
    assert evaluated["returncode"] == 0, evaluated["stderr"]
    printed = json.loads(evaluated["stdout"])
    assert printed["method"] == method
    assert np.isclose(printed["gmean_nrmse"], metrics["gmean_nrmse"], rtol=1e-5)


@pytest.mark.parametrize("name", ["sg", "shortcut_ema"])
def test_a_student_with_frozen_weights_resumes_bit_exactly(teacher, students, tmp_path, name):
    """The checkpoint holds the state of the optimizer the method wraps (the frozen
    velocity of a flow map, the EMA apart): resuming reads it back and ends with the
    weights of the uninterrupted run."""
    config = write_run(tmp_path, name, STUDENTS[name][0].format(teacher))
    out = str(tmp_path / "runs")
    assert main(["train", config, "--results", out, "--quiet", "--stop-after", "1"]) == 0
    assert main(["train", config, "--results", out, "--quiet", "--resume"]) == 0
    resumed = (tmp_path / "runs" / name / "network.eqx").read_bytes()
    assert resumed == (students[name][0] / "network.eqx").read_bytes()


def _unfinished(teacher, folder):
    shutil.copytree(teacher, folder)
    (folder / "network.eqx").unlink()


def _truncated(teacher, folder):
    shutil.copytree(teacher, folder)
    data = (folder / "network.eqx").read_bytes()
    (folder / "network.eqx").write_bytes(data[: len(data) // 2])


def _other_network(teacher, folder):
    shutil.copytree(teacher, folder)
    text = (folder / "config.toml").read_text()
    (folder / "config.toml").write_text(text.replace("MLP;8;1;tanh", "MLP;6;1;tanh"))


BROKEN = {
    "missing": (lambda teacher, folder: None, "finished fm"),
    "unfinished": (_unfinished, "finish training the teacher"),
    "truncated": (_truncated, "fits this run's data"),
    "other_network": (_other_network, "fits this run's data"),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_a_bad_teacher_leaves_no_results_folder(teacher, tmp_path, problem, capsys):
    """The teacher is checked before the folder is claimed: the corrected command
    reruns without --overwrite."""
    make, words = BROKEN[problem]
    bad = tmp_path / "bad_teacher"
    make(teacher, bad)
    for name, (spec, _) in STUDENTS.items():
        config = write_run(tmp_path, name, spec.format(bad))
        assert main(["train", config, "--results", str(tmp_path / "runs"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "training.method" in err and words in err, err
        assert not (tmp_path / "runs" / name).exists(), name


def test_a_teacher_of_another_layout_is_refused(teacher, tmp_path, capsys):
    """A Lorenz teacher (3 channels, no grid) cannot teach on advection data."""
    config = write_run(tmp_path, "advection", f"lsd;1;{teacher}", source="advection")
    assert main(["train", config, "--results", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fits this run's data" in err and "(1, 16)" in err, err
    assert not (tmp_path / "advection").exists()


def test_a_retrained_teacher_is_read_afresh(teacher, tmp_path):
    """Nothing is cached between loads: new weights in the teacher folder (as after
    training it again) are the weights the next student starts from."""
    import equinox as eqx
    import jax

    from trainax_fm.experiment._saved_networks import load_teacher

    folder = tmp_path / "teacher"
    shutil.copytree(teacher, folder)
    before = load_teacher(str(folder), 3, 0, 0)
    config = tx.experiment.load_config(folder / "config.toml")
    [stepper] = tx.experiment.load_networks(folder, config, (3,))
    doubled = jax.tree_util.tree_map(lambda x: 2 * x if eqx.is_array(x) else x, stepper)
    tx.save_stepper(folder / "network.eqx", doubled)
    after = load_teacher(str(folder), 3, 0, 0)
    for old, new in zip(jax.tree_util.tree_leaves(eqx.filter(before, eqx.is_array)),
                        jax.tree_util.tree_leaves(eqx.filter(after, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(new), 2 * np.asarray(old))
