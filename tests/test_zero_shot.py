"""`trainax_fm.systems.zero_shot_table`: windows, sliding forecasts, per-system medians
and baselines against a hand-written NumPy evaluation."""

import jax.numpy as jnp
import numpy as np
import pytest

import trainax_fm as tx

C, CONTEXT, K, FORECAST = 2, 6, 3, 8
WEIGHTS = np.random.default_rng(0).normal(size=(K * C, CONTEXT * C)) * 0.15


def linear_forecaster(context):
    return jnp.asarray(WEIGHTS, context.dtype) @ context


def data(num_trajectories=3, length=30):
    time = np.arange(length)[None, :, None] * 0.3
    phase = np.arange(num_trajectories)[:, None, None] + np.arange(C)[None, None, :]
    return (2.0 + np.sin(time + phase)).astype(np.float32)


def np_forecast(context):
    states = list(context)
    while len(states) < CONTEXT + FORECAST:
        new = WEIGHTS @ np.concatenate(states[-CONTEXT:])
        states.extend(new.reshape(K, C))
    return np.stack(states[CONTEXT : CONTEXT + FORECAST])


def np_window_scores(forecast, future, horizons, threshold):
    smape_steps = 200 * np.mean(np.abs(forecast - future) / (np.abs(forecast) + np.abs(future)),
                                axis=1)
    running = np.cumsum(smape_steps) / np.arange(1, len(smape_steps) + 1)
    crossed = np.nonzero(running > threshold)[0]
    return {
        **{f"mse@{h}": np.mean((forecast[:h] - future[:h]) ** 2) for h in horizons},
        **{f"smape@{h}": np.mean(smape_steps[:h]) for h in horizons},
        "vpt": crossed[0] if crossed.size else len(running),
    }


def test_table_equals_numpy_evaluation():
    trajectories = data()
    systems = ["a", "b", "a"]
    horizons = (3, 6)
    table = tx.systems.zero_shot_table(
        linear_forecaster, trajectories, systems, context_length=CONTEXT,
        prediction_length=K, forecast_length=FORECAST, horizons=horizons, num_windows=3,
        lyapunov_exponents={"a": 0.5}, dt=0.1, vpt_threshold=2.0,
    )
    assert table.models == ("forecaster", "repeat_last", "context_mean")
    assert table.systems == ("a", "b", "median")
    assert table.num_windows == (6, 3)
    assert table.vpt_units == ("Lyapunov times", "time") and table.vpt_unit == "mixed"
    starts = [0, 8, 16]  # evenly spaced in 0 ... 30 - 14
    per_system = {"a": {}, "b": {}}
    for model in table.models:
        for system in ("a", "b"):
            rows = []
            for index in (i for i, name in enumerate(systems) if name == system):
                for start in starts:
                    window = trajectories[index, start : start + CONTEXT + FORECAST]
                    context, future = window[:CONTEXT], window[CONTEXT:]
                    forecast = {
                        "forecaster": np_forecast(context),
                        "repeat_last": np.repeat(context[-1:], FORECAST, axis=0),
                        "context_mean": np.repeat(context.mean(0, keepdims=True), FORECAST, 0),
                    }[model]
                    rows.append(np_window_scores(forecast, future, horizons, 2.0))
            scale = 0.1 * (0.5 if system == "a" else 1.0)
            medians = {name: np.median([r[name] for r in rows]) for name in rows[0]}
            medians["vpt"] = np.median([r["vpt"] * scale for r in rows])
            per_system[system][model] = medians
            for name, expected in medians.items():
                np.testing.assert_allclose(table.value(model, system, name), expected,
                                           rtol=2e-4, atol=1e-7, err_msg=f"{model} {system} {name}")
        for name in per_system["a"][model]:
            np.testing.assert_allclose(
                table.value(model, "median", name),
                np.median([per_system[s][model][name] for s in ("a", "b")]), rtol=2e-4,
            )
    # A constant forecast has no rank correlation; the forecaster's is a number.
    assert np.isnan(table.value("repeat_last", "a", "spearman@6"))
    assert np.isfinite(table.value("forecaster", "a", "spearman@6"))


def test_markdown_csv_and_batches(tmp_path):
    trajectories = data(2)
    options = dict(context_length=CONTEXT, prediction_length=K, num_windows=2)
    table = tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "y"], **options)
    # Default forecast: what fits of 8*k; horizons k, 2k, 4k that fit in it.
    assert table.columns[:3] == ("mse@3", "mse@6", "mse@12")
    assert table.columns[-2:] == ("vpt", "spectrum") and table.vpt_unit == "steps"
    markdown = table.to_markdown(precision=3)
    lines = markdown.strip().split("\n")
    assert lines[0] == "| model | system | " + " | ".join(table.columns) + " |"
    assert len(lines) == 2 + 3 * 3
    assert lines[2].startswith("| forecaster | x | ")
    path = tmp_path / "zero_shot.csv"
    text = table.to_csv(str(path))
    assert path.read_text() == text
    header, first = text.split("\n")[:2]
    assert header == "model,system," + ",".join(table.columns)
    np.testing.assert_allclose(float(first.split(",")[2]), table.value("forecaster", "x", "mse@3"),
                               rtol=1e-6)
    chunked = tx.systems.zero_shot_table(
        linear_forecaster, trajectories, ["x", "y"], batch_size=3, baselines=False, **options
    )
    assert chunked.models == ("forecaster",)
    np.testing.assert_allclose(chunked.values[0], table.values[0], rtol=1e-6)
    stepper = tx.BlockStepper.sliding(linear_forecaster, K, CONTEXT)
    via_block = tx.systems.zero_shot_table(stepper, trajectories, ["x", "y"], **options)
    np.testing.assert_allclose(via_block.values, table.values, rtol=1e-6)


def test_argument_errors():
    trajectories = data(2)
    options = dict(context_length=CONTEXT, prediction_length=K)
    with pytest.raises(ValueError, match="one name per trajectory"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x"], **options)
    with pytest.raises(ValueError, match=r"\(S, T, C\)"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories[0], ["x"], **options)
    with pytest.raises(ValueError, match="forecast at most 24"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "y"],
                                   forecast_length=25, **options)
    with pytest.raises(ValueError, match="not in `systems`"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "y"],
                                   lyapunov_exponents={"z": 1.0}, **options)
    with pytest.raises(ValueError, match="`dt` must be positive"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "y"], dt=0.0,
                                   **options)
    with pytest.raises(ValueError, match="states but `context_length`"):
        tx.systems.zero_shot_table(tx.BlockStepper.sliding(linear_forecaster, K, 9),
                                   trajectories, ["x", "y"], **options)
    with pytest.raises(ValueError, match="named 'median'"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "median"], **options)
    with pytest.raises(KeyError, match="Unknown column"):
        tx.systems.zero_shot_table(linear_forecaster, trajectories, ["x", "y"],
                                   **options).value("forecaster", "x", "rmse@3")
