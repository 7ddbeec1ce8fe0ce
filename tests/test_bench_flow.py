"""The few-step flow-map benchmark (`benchmarks/bench_flow.py`): its target checks on
hand-made scores, and (slow) a smoke run of the N1 study on the 2D data."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

BENCHMARK = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_flow.py"


@pytest.fixture(scope="module")
def bench_flow():
    spec = importlib.util.spec_from_file_location("bench_flow", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scores(crps, hf_ratio=1.0, nfe=1):
    return {"nfe": nfe, "tf_crps": crps, "hf_ratio": hf_ratio, "spec_err": 0.05}


def test_n1_is_met_only_when_the_best_new_student_beats_pd_and_is_near_the_teacher(bench_flow):
    results = {"teacher-16": scores(1.0, nfe=16), "PD-1": scores(1.04),
               "MF-1": scores(1.03), "LSD-1": scores(1.05)}
    (line,) = bench_flow.check_targets(results, "ks2d")
    assert line.startswith("N1 (ks2d): best new method at 1 NFE MF-1") and line.endswith("MET")
    assert "SG-1" not in line  # no semigroup family trained: nothing printed beside PD-1

    results["MF-1"] = scores(1.041)  # worse than PD-1 by a hair
    (line,) = bench_flow.check_targets(results, "ks2d")
    assert line.endswith("NOT MET") and "[FAIL]" in line

    results = {"teacher-16": scores(1.0, nfe=16), "PD-1": scores(1.2), "SC-1": scores(1.15),
               "SG-1": scores(1.1, nfe=2)}
    (line,) = bench_flow.check_targets(results, "ks1d")  # beats PD, but 15 % off the teacher
    assert "SC-1" in line and "SG-1, 2 NFE: 1.1000" in line and line.endswith("NOT MET")


def test_n2_needs_the_sobolev_teacher_and_compares_distances_to_one(bench_flow):
    assert bench_flow.check_targets({"teacher-16": scores(1.0, 0.9, nfe=16)}, "ks2d") == []
    results = {"teacher-16": scores(1.0, 0.9, nfe=16),
               "teacher-16 (Sobolev)": scores(1.0, 1.08, nfe=16)}
    (line,) = bench_flow.check_targets(results, "ks2d")
    assert line.startswith("N2 (ks2d)") and line.endswith("-> MET")  # |log 1.08| < |log 0.9|
    results["teacher-16 (Sobolev)"] = scores(1.0, 1.2, nfe=16)
    assert bench_flow.check_targets(results, "ks2d")[0].endswith("NOT MET")


def test_unknown_families_are_rejected_with_the_known_ones(bench_flow, capsys):
    with pytest.raises(SystemExit):
        bench_flow.main(["--quick", "--case", "ks2d", "--families", "PD,XX"])
    assert "unknown family ['XX']; expected a comma-separated subset of PD,SG,LSD,MF,SC" in (
        capsys.readouterr().err)


def test_teachers_only_and_n1_only_exclude_each_other(bench_flow, capsys):
    with pytest.raises(SystemExit):
        bench_flow.main(["--quick", "--case", "ks2d", "--teachers-only", "--n1-only"])
    assert "not allowed with argument --teachers-only" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_n1_study_trains_only_the_named_families(tmp_path):
    pytest.importorskip("exponax")
    out = tmp_path / "n1.md"
    run = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--case", "ks2d", "--n1-only",
         "--families", "PD,MF", "--num-seeds", "1", "--md", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (per_seed,) = json.loads((tmp_path / "n1_ks2d.json").read_text())
    assert sorted(per_seed) == ["MF-1", "PD-1", "teacher-16"]
    assert per_seed["MF-1"]["nfe"] == 1 and per_seed["teacher-16"]["nfe"] == 16
    assert "- N1 (ks2d): best new method at 1 NFE MF-1" in out.read_text()


def test_n3_needs_the_crps_ensemble_at_most_meanflow_and_a_calibrated_spread(bench_flow):
    results = {"teacher-16": scores(1.0, nfe=16), "MF-1": scores(1.03),
               "CRPS-1": dict(scores(1.02), tf_ssr=0.95)}
    lines = bench_flow.check_targets(results, "ks1d")
    (line,) = [line for line in lines if line.startswith("N3")]
    assert line.startswith("N3 (ks1d): CRPS-1 1-step CRPS 1.0200 vs MF-1 1.0300")
    assert line.endswith("-> MET")
    results["CRPS-1"]["tf_ssr"] = 0.8  # under-dispersed
    assert [x for x in bench_flow.check_targets(results, "ks1d") if x.startswith("N3")][
        0].endswith("NOT MET")
    results["CRPS-1"] = dict(scores(1.04), tf_ssr=1.0)  # worse than MeanFlow
    assert [x for x in bench_flow.check_targets(results, "ks1d") if x.startswith("N3")][
        0].endswith("NOT MET")


def test_the_interpolant_row_samples_the_displacement_from_the_current_state(bench_flow):
    """`SI-n` rows: the interpolant's sample minus the current state (the normalised
    increment the other rows predict), at `n` network evaluations."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from trainax_fm import flow

    assert "SI" in bench_flow.TRAINED_FAMILIES
    network = eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR",
                            key=jax.random.key(0))
    stepper = flow.StochasticInterpolantStepper(flow.ConditionalVelocity(network), 4)
    row = bench_flow.InterpolantDisplacement(stepper)
    y, key = jnp.linspace(-1.0, 1.0, 8)[None], jax.random.key(1)
    assert row.needs_key and row.num_function_evaluations == 4
    np.testing.assert_allclose(row(y, key=key), stepper(y, key=key) - y, rtol=1e-6)


def test_r1_compares_pde_refiner_with_the_other_emulators_at_its_nfe(bench_flow):
    results = {"teacher-16": scores(1.0, nfe=16), "MF-4": scores(1.05, nfe=4),
               "teacher Euler-4": scores(1.10, nfe=4), "MF-1": scores(0.5),
               "REF-4": scores(1.02, nfe=4)}
    (line,) = [x for x in bench_flow.check_targets(results, "ks1d") if x.startswith("R1")]
    assert line == ("R1 (ks1d): REF-4 (4 NFE) 1-step CRPS 1.0200 vs the best other 4-NFE "
                    "emulator MF-4 1.0500 (-2.9%) -> better")
    results["REF-4"] = scores(1.06, nfe=4)
    (line,) = [x for x in bench_flow.check_targets(results, "ks1d") if x.startswith("R1")]
    assert line.endswith("-> not better")
    del results["MF-4"], results["teacher Euler-4"]
    (line,) = [x for x in bench_flow.check_targets(results, "ks1d") if x.startswith("R1")]
    assert line.endswith("no other 4-NFE emulator in this run")
