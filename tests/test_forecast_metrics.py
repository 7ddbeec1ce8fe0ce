"""Forecast metrics at cumulative horizons, the sMAPE valid prediction time and the
temporal power-spectrum distance, each against a hand-written NumPy/SciPy reference."""

import jax
import numpy as np
import pytest
from scipy.stats import spearmanr

from trainax_fm import metrics

T, C = 12, 3


def pair(seed=0, batch=None, ties=False):
    rng = np.random.default_rng(seed)
    shape = (T, C) if batch is None else (batch, T, C)
    reference = rng.normal(size=shape)
    prediction = reference + 0.5 * rng.normal(size=shape)
    if ties:  # few distinct values, so ranks tie
        reference, prediction = np.round(reference), np.round(prediction)
    return prediction.astype(np.float32), reference.astype(np.float32)


def np_smape_step(prediction, reference):
    out = []
    for p, r in zip(prediction, reference):
        terms = [0.0 if abs(a) + abs(b) == 0 else abs(a - b) / (abs(a) + abs(b))
                 for a, b in zip(p.ravel(), r.ravel())]
        out.append(200.0 * np.mean(terms))
    return np.array(out)


def np_scores(prediction, reference, horizon):
    p, r = prediction[:horizon].astype(np.float64), reference[:horizon].astype(np.float64)
    spearman = np.mean([spearmanr(p[:, c], r[:, c]).statistic for c in range(C)])
    return {
        "mse": np.mean((p - r) ** 2),
        "mae": np.mean(np.abs(p - r)),
        "smape": 200.0 / horizon * sum(
            np.mean(np.abs(p[t] - r[t]) / (np.abs(p[t]) + np.abs(r[t]))) for t in range(horizon)
        ),
        "spearman": spearman,
    }


def test_smape_per_step_with_zero_guard():
    prediction, reference = pair(1)
    prediction[2, 1] = reference[2, 1] = 0.0  # 0/0 counts as a perfect forecast
    prediction[3, 0], reference[3, 0] = 0.0, 1.0  # the maximum, 200 %
    got = metrics.smape(prediction, reference)
    assert got.shape == (T,)
    np.testing.assert_allclose(got, np_smape_step(prediction, reference), rtol=1e-5)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("ties", [False, True])
def test_forecast_metrics_against_numpy_and_scipy(ties):
    prediction, reference = pair(2, ties=ties)
    reference[reference == 0] = 0.5  # keep sMAPE's reference formula free of 0/0
    horizons = (2, 4, 8, 12)
    scores = metrics.forecast_metrics(prediction, reference, horizons)
    assert set(scores) == {"mse", "mae", "smape", "spearman"}
    for i, h in enumerate(horizons):
        expected = np_scores(prediction, reference, h)
        for name, value in expected.items():
            np.testing.assert_allclose(scores[name][i], value, rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name}@{h}")
    one = metrics.forecast_metrics(prediction, reference, 1)
    assert np.isnan(one["spearman"][0])
    np.testing.assert_allclose(one["mse"][0], np.mean((prediction[0] - reference[0]) ** 2),
                               rtol=1e-5)


def test_forecast_metrics_batched_is_the_mean_and_runs_under_jit():
    prediction, reference = pair(3, batch=2)
    batched = metrics.forecast_metrics(prediction, reference, (3, 6), batched=True)
    singles = [metrics.forecast_metrics(prediction[b], reference[b], (3, 6)) for b in range(2)]
    for name in batched:
        np.testing.assert_allclose(
            batched[name], np.mean([s[name] for s in singles], axis=0), rtol=1e-5
        )
    jitted = jax.jit(lambda p, r: metrics.forecast_metrics(p, r, (3, 6), batched=True))
    np.testing.assert_allclose(jitted(prediction, reference)["smape"], batched["smape"],
                               rtol=1e-6)


def test_spearman_correlation_against_scipy_and_constant_series():
    prediction, reference = pair(4, ties=True)
    expected = np.mean([spearmanr(prediction[:, c], reference[:, c]).statistic
                        for c in range(C)])
    np.testing.assert_allclose(metrics.spearman_correlation(prediction, reference), expected,
                               rtol=1e-5)
    # Monotone maps keep the ranks: correlation 1.
    np.testing.assert_allclose(
        metrics.spearman_correlation(np.exp(reference), reference), 1.0, rtol=1e-6
    )
    constant = np.broadcast_to(reference[:1], reference.shape)
    assert np.isnan(metrics.spearman_correlation(constant, reference))
    with pytest.raises(ValueError, match="at least 2 steps"):
        metrics.spearman_correlation(reference[:1], reference[:1])


def test_valid_prediction_time_by_running_smape():
    rng = np.random.default_rng(5)
    reference = rng.uniform(1.0, 2.0, size=(T, C)).astype(np.float32)
    growth = np.linspace(0.0, 1.5, T, dtype=np.float32)[:, None]
    prediction = reference * (1.0 + growth)
    running = np.cumsum(np_smape_step(prediction, reference)) / np.arange(1, T + 1)
    for threshold in (None, 10.0):
        limit = 30.0 if threshold is None else threshold
        crossed = np.nonzero(running > limit)[0]
        steps = crossed[0] if crossed.size else T
        assert 0 < steps < T
        got = metrics.valid_prediction_time(prediction, reference, criterion="smape",
                                            threshold=threshold, dt=0.1)
        np.testing.assert_allclose(got, steps * 0.1, rtol=1e-6)
        lyapunov = metrics.valid_prediction_time(prediction, reference, criterion="smape",
                                                 threshold=threshold, dt=0.1,
                                                 lyapunov_exponent=0.9)
        np.testing.assert_allclose(lyapunov, steps * 0.1 * 0.9, rtol=1e-6)
    assert float(metrics.valid_prediction_time(reference, reference, criterion="smape")) == T
    with pytest.raises(ValueError, match="criterion"):
        metrics.valid_prediction_time(prediction, reference, criterion="mape")


def np_power_spectrum_distance(prediction, reference, burn_in):
    def spectrum(x):
        x = x[:, burn_in:].reshape(x.shape[0], x.shape[1] - burn_in, -1)
        x = x - x.mean(axis=1, keepdims=True)
        power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)
        return power / power.sum(axis=0, keepdims=True)

    p, q = spectrum(prediction.astype(np.float64)), spectrum(reference.astype(np.float64))
    return np.mean([np.sqrt(1 - np.sum(np.sqrt(p[:, n] * q[:, n]))) for n in range(p.shape[1])])


def test_power_spectrum_distance():
    rng = np.random.default_rng(6)
    prediction = rng.normal(size=(2, 64, C)).astype(np.float32)
    reference = rng.normal(size=(2, 64, C)).astype(np.float32)
    got = metrics.power_spectrum_distance(prediction, reference, burn_in=8, batched=True)
    np.testing.assert_allclose(got, np_power_spectrum_distance(prediction, reference, 8),
                               rtol=1e-4)
    np.testing.assert_allclose(
        metrics.power_spectrum_distance(reference[0], reference[0]), 0.0, atol=2e-3
    )
    time = np.arange(64)
    slow = np.sin(2 * np.pi * 4 * time / 64)[:, None].astype(np.float32)
    fast = np.sin(2 * np.pi * 20 * time / 64)[:, None].astype(np.float32)
    np.testing.assert_allclose(metrics.power_spectrum_distance(slow, fast), 1.0, atol=1e-3)
    # Amplitude and offset do not change the spectral shape.
    np.testing.assert_allclose(metrics.power_spectrum_distance(3 * slow + 1, slow), 0.0,
                               atol=2e-3)
    with pytest.raises(ValueError, match="at least 2 steps"):
        metrics.power_spectrum_distance(slow, slow, burn_in=63)


def test_horizon_errors():
    prediction, reference = pair(7)
    with pytest.raises(ValueError, match="outside 1 ... 12"):
        metrics.forecast_metrics(prediction, reference, (4, 13))
    with pytest.raises(ValueError, match="increase strictly"):
        metrics.forecast_metrics(prediction, reference, (8, 4))
    with pytest.raises(TypeError, match="non-empty sequence"):
        metrics.forecast_metrics(prediction, reference, ())
    with pytest.raises(TypeError, match="must be an int"):
        metrics.forecast_metrics(prediction, reference, (2.0,))
    with pytest.raises(ValueError, match="shape"):
        metrics.forecast_metrics(prediction, reference[:-1], (2,))
