"""The quickstart reproduces trainax 0.0.2's trend on the advection problem.

trainax 0.0.2 prints distances 0.034, 0.029, 0.017 to the upwind stencil for rollouts
1, 5 and 20 (1000 Adam steps, batch 32). Our minibatch stream differs from trainax's, so
the numbers differ slightly; they must stay within 25 % and keep the trend.
"""

import importlib.util
import pathlib

import pytest

TRAINAX_DISTANCES = {1: 0.034, 5: 0.029, 20: 0.017}


@pytest.fixture(scope="module")
def quickstart():
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
    spec = importlib.util.spec_from_file_location("quickstart_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_trend_matches_trainax(quickstart, tmp_path):
    distances = quickstart.main(["--out", str(tmp_path), "--no-plot"])
    for rollout, expected in TRAINAX_DISTANCES.items():
        assert abs(distances[rollout] - expected) <= 0.25 * expected, (rollout, distances)
    assert distances[20] < distances[5] < distances[1] * 1.05
    assert distances[20] < distances[1]
