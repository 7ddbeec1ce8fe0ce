"""`trainax_fm.metrics` against closed forms and numpy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtri

import trainax_fm.metrics as metrics

N = 32
GRID = 2 * np.pi * np.arange(N) / N  # periodic grid on [0, 2 pi)


def normal(seed, shape):
    """Test data from numpy (no compilation), float32 like JAX's default."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def sine_trajectory(phases, mode=3, amplitude=1.0):
    """(T, 1, N): sin(mode x + phase_t) for each phase."""
    return (amplitude * np.sin(mode * GRID[None, :] + np.asarray(phases)[:, None]))[
        :, None, :
    ].astype(np.float32)


@pytest.fixture(scope="module")
def random_pair():
    reference = normal(0, (4, 5, 2, N))
    prediction = reference + 0.3 * normal(1, (4, 5, 2, N))
    return prediction, reference


# ---------------------------------------------------------------- pointwise errors


def test_identical_fields(random_pair):
    _, data = random_pair
    np.testing.assert_allclose(metrics.mse(data, data, batched=True), 0.0)
    np.testing.assert_allclose(metrics.rmse(data, data, batched=True), 0.0)
    np.testing.assert_allclose(metrics.nrmse(data, data, batched=True), 0.0)
    np.testing.assert_allclose(metrics.h1_error(data, data, batched=True), 0.0)
    np.testing.assert_allclose(
        metrics.pearson_correlation(data, data, batched=True), 1.0, rtol=1e-5
    )


def test_zero_prediction_has_nrmse_one(random_pair):
    _, reference = random_pair
    out = metrics.nrmse(np.zeros_like(reference), reference, batched=True)
    assert out.shape == (5,)
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


def test_scaled_prediction_nrmse_and_numpy_references(random_pair):
    prediction, reference = random_pair
    np.testing.assert_allclose(
        metrics.nrmse(1.25 * reference, reference, batched=True), 0.25, rtol=1e-5
    )
    p, r = np.asarray(prediction), np.asarray(reference)
    diff = (p - r).reshape(4, 5, -1)
    np.testing.assert_allclose(
        metrics.mse(prediction, reference, batched=True),
        np.mean(diff**2, axis=(0, 2)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        metrics.rmse(prediction, reference, batched=True),
        np.mean(np.sqrt(np.mean(diff**2, axis=2)), axis=0),
        rtol=1e-5,
    )
    expected_nrmse = np.linalg.norm(diff, axis=2) / np.linalg.norm(r.reshape(4, 5, -1), axis=2)
    np.testing.assert_allclose(
        metrics.nrmse(prediction, reference, batched=True),
        expected_nrmse.mean(axis=0),
        rtol=1e-5,
    )
    # unbatched = first sample
    np.testing.assert_allclose(
        metrics.nrmse(prediction[0], reference[0]), expected_nrmse[0], rtol=1e-5
    )


def test_geometric_mean_nrmse_against_numpy(random_pair):
    prediction, reference = random_pair
    # make the error grow over time so the steps differ
    growth = np.arange(1, 6, dtype=np.float32)[None, :, None, None]
    prediction = reference + growth * (prediction - reference)
    curve = np.asarray(metrics.nrmse(prediction, reference, batched=True))
    for k in (1, 3, 5):
        np.testing.assert_allclose(
            metrics.geometric_mean_nrmse(prediction, reference, num_steps=k, batched=True),
            np.exp(np.mean(np.log(curve[:k]))),
            rtol=1e-5,
        )
    np.testing.assert_allclose(
        metrics.geometric_mean_nrmse(prediction, reference, batched=True),
        np.prod(curve) ** (1 / 5),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        metrics.geometric_mean_nrmse(prediction, reference, num_steps=6, batched=True)
    with pytest.raises(TypeError, match="num_steps"):
        metrics.geometric_mean_nrmse(prediction, reference, num_steps=2.0, batched=True)


# ---------------------------------------------------------------- correlation


@pytest.mark.parametrize("phi", [0.0, 0.4, 1.3, 2.5, np.pi])
def test_correlation_of_phase_shifted_sine(phi):
    reference = sine_trajectory([0.0, 0.0])
    prediction = sine_trajectory([phi, -phi])
    np.testing.assert_allclose(
        metrics.pearson_correlation(prediction, reference), np.cos(phi), atol=1e-5
    )
    # an offset and a positive scale do not change a Pearson correlation
    np.testing.assert_allclose(
        metrics.pearson_correlation(3.0 * prediction + 2.0, reference),
        np.cos(phi),
        atol=1e-5,
    )


def test_correlation_batch_mean():
    reference = np.stack([sine_trajectory([0.0]), sine_trajectory([0.0])])
    prediction = np.stack([sine_trajectory([0.5]), sine_trajectory([1.0])])
    np.testing.assert_allclose(
        metrics.pearson_correlation(prediction, reference, batched=True),
        [0.5 * (np.cos(0.5) + np.cos(1.0))],
        atol=1e-5,
    )


def test_high_correlation_time():
    curve = np.linspace(1.0, 0.0, 11, dtype=np.float32)  # 1.0, 0.9, 0.8, 0.7, ...
    assert int(metrics.high_correlation_time(curve, threshold=0.75)) == 3
    assert int(metrics.high_correlation_time(curve, threshold=0.05)) == 10
    assert int(metrics.high_correlation_time(np.ones(11, np.float32))) == 11  # never: T
    assert int(metrics.high_correlation_time(np.zeros(11, np.float32))) == 0
    with_nan = np.array([1.0, 0.95, np.nan, 0.99], dtype=np.float32)
    assert int(metrics.high_correlation_time(with_nan)) == 2
    stacked = np.stack([curve, np.ones(11, np.float32)])
    np.testing.assert_array_equal(
        metrics.high_correlation_time(stacked, threshold=0.75), [3, 11]
    )
    np.testing.assert_array_equal(
        jax.jit(metrics.high_correlation_time)(stacked, 0.75), [3, 11]
    )


# ---------------------------------------------------------------- spectra


@pytest.mark.parametrize("mode", [1, 4, 15])
def test_energy_spectrum_1d_sine(mode):
    state = np.sin(mode * GRID)[None].astype(np.float32)
    spectrum = np.asarray(metrics.energy_spectrum(state))
    assert spectrum.shape == (N // 2 + 1,)
    expected = np.zeros(N // 2 + 1)
    expected[mode] = 0.5  # mean of sin^2
    np.testing.assert_allclose(spectrum, expected, atol=1e-6)


def test_energy_spectrum_nyquist_and_mean():
    state = np.stack([np.cos(N // 2 * GRID), np.full(N, 2.0)]).astype(np.float32)
    spectrum = np.asarray(metrics.energy_spectrum(state))
    expected = np.zeros(N // 2 + 1)
    expected[0] = 4.0
    expected[N // 2] = 1.0  # (-1)^j has mean square 1, all in the Nyquist shell
    np.testing.assert_allclose(spectrum, expected, atol=1e-5)


def test_energy_spectrum_sums_channels_and_parseval():
    state = normal(2, (3, N))
    spectrum = np.asarray(metrics.energy_spectrum(state))
    np.testing.assert_allclose(spectrum.sum(), np.sum(np.mean(state**2, axis=-1)), rtol=1e-5)
    np.testing.assert_allclose(spectrum[0], np.sum(np.mean(state, axis=-1) ** 2), rtol=1e-5)


def test_energy_spectrum_2d():
    x, y = np.meshgrid(GRID, GRID, indexing="ij")
    along_x = np.sin(5 * x)[None].astype(np.float32)
    spectrum = np.asarray(metrics.energy_spectrum(along_x))
    assert spectrum.shape == (N // 2 + 1,)
    np.testing.assert_allclose(spectrum[5], 0.5, rtol=1e-5)
    np.testing.assert_allclose(np.delete(spectrum, 5), 0.0, atol=1e-6)
    # |(3, 4)| = 5: a diagonal mode lands in shell 5, two channels add up
    diagonal = np.stack([np.sin(3 * x) * np.sin(4 * y), np.cos(3 * x + 4 * y)])
    diagonal = diagonal.astype(np.float32)
    spectrum = np.asarray(metrics.energy_spectrum(diagonal))
    np.testing.assert_allclose(spectrum[5], 0.25 + 0.5, rtol=1e-5)
    np.testing.assert_allclose(np.delete(spectrum, 5), 0.0, atol=1e-6)


def test_energy_spectrum_3d_shape_and_vmap():
    states = normal(3, (2, 1, 4, 4, 4))
    spectra = jax.vmap(metrics.energy_spectrum)(states)
    assert spectra.shape == (2, 3)
    np.testing.assert_allclose(spectra[1], metrics.energy_spectrum(states[1]), rtol=1e-6)


def test_energy_spectrum_errors():
    with pytest.raises(ValueError, match="cubic grid"):
        metrics.energy_spectrum(np.zeros((1, 8, 16)))
    with pytest.raises(ValueError, match=r"\(C, \*spatial\)"):
        metrics.energy_spectrum(np.zeros((8,)))


def test_octave_band_edges():
    assert metrics.octave_band_edges(64) == (1, 2, 4, 8, 16, 33)
    assert metrics.octave_band_edges(4) == (1, 3)
    with pytest.raises(ValueError, match="num_points"):
        metrics.octave_band_edges(1)


def test_spectral_error_localises_a_high_mode_error():
    modes = (1, 2, 5, 9)  # one per octave band {1}, {2, 3}, {4..7}, {8..16} (N = 32)
    reference = sum(np.cos(k * GRID) for k in modes)[None, None].astype(np.float32)
    prediction = reference + 0.1 * np.sin(9 * GRID)[None, None].astype(np.float32)
    errors = np.asarray(metrics.spectral_error(prediction, reference))
    assert metrics.octave_band_edges(N) == (1, 2, 4, 8, 17)
    assert errors.shape == (1, 4)
    np.testing.assert_allclose(errors[0, :3], 0.0, atol=1e-5)
    np.testing.assert_allclose(errors[0, 3], 0.1, rtol=1e-4)
    custom = metrics.spectral_error(prediction, reference, band_edges=[0, N // 2 + 1])
    np.testing.assert_allclose(custom, metrics.nrmse(prediction, reference)[:, None], rtol=1e-5)
    with pytest.raises(ValueError, match="band_edges"):
        metrics.spectral_error(prediction, reference, band_edges=[0, 40])
    with pytest.raises(ValueError, match="band_edges"):
        metrics.spectral_error(prediction, reference, band_edges=[3, 2])


def test_sobolev_error_closed_forms(random_pair):
    x = np.arange(N) / N  # unit domain, L = 1
    reference = np.sin(2 * np.pi * 2 * x)[None, None].astype(np.float32)
    error = 0.2 * np.sin(2 * np.pi * 5 * x)
    prediction = reference + error[None, None].astype(np.float32)
    expected = 0.2 * np.sqrt((1 + (2 * np.pi * 5) ** 2) / (1 + (2 * np.pi * 2) ** 2))
    np.testing.assert_allclose(metrics.h1_error(prediction, reference), [expected], rtol=1e-4)
    # absolute H1: sqrt(mean e^2 + mean e_x^2) with the exact derivative
    derivative = 0.2 * 2 * np.pi * 5 * np.cos(2 * np.pi * 5 * x)
    np.testing.assert_allclose(
        metrics.h1_error(prediction, reference, relative=False),
        [np.sqrt(np.mean(error**2) + np.mean(derivative**2))],
        rtol=1e-4,
    )
    # the domain extent rescales the derivative
    np.testing.assert_allclose(
        metrics.sobolev_error(prediction, reference, domain_extent=2.0, relative=False),
        [np.sqrt(np.mean(error**2) + np.mean((derivative / 2) ** 2))],
        rtol=1e-4,
    )
    # order 0 is the (n)RMSE
    p, r = random_pair
    np.testing.assert_allclose(
        metrics.sobolev_error(p, r, order=0.0, batched=True),
        metrics.nrmse(p, r, batched=True),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        metrics.sobolev_error(p, r, order=0.0, relative=False, batched=True),
        metrics.rmse(p, r, batched=True),
        rtol=1e-5,
    )


def test_sobolev_error_2d():
    x, y = np.meshgrid(np.arange(16) / 16, np.arange(16) / 16, indexing="ij")
    reference = np.sin(2 * np.pi * x)[None, None].astype(np.float32)
    prediction = reference + 0.1 * np.sin(2 * np.pi * (x + 2 * y))[None, None].astype(np.float32)
    expected = 0.1 * np.sqrt((1 + (2 * np.pi) ** 2 * 5) / (1 + (2 * np.pi) ** 2))
    np.testing.assert_allclose(metrics.h1_error(prediction, reference), [expected], rtol=1e-4)


# ---------------------------------------------------------------- valid prediction time


def test_valid_prediction_time():
    reference = np.ones((6, 3), np.float32)  # an ODE trajectory (T, C)
    growth = 0.15 * np.arange(1, 7, dtype=np.float32)  # nRMSE: 0.15, 0.30, 0.45, 0.60, ...
    prediction = reference * (1.0 + growth[:, None])
    assert float(metrics.valid_prediction_time(prediction, reference)) == 3.0
    np.testing.assert_allclose(
        metrics.valid_prediction_time(prediction, reference, dt=0.1), 0.3, rtol=1e-6
    )
    np.testing.assert_allclose(
        metrics.valid_prediction_time(prediction, reference, dt=0.1, lyapunov_exponent=0.9),
        0.27,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        metrics.valid_prediction_time(prediction, reference, threshold=0.35), 2.0
    )
    # never crosses: all T steps; batched: mean of the per-sample times (3 and 6)
    np.testing.assert_allclose(metrics.valid_prediction_time(reference, reference), 6.0)
    batch = np.stack([prediction, reference])
    np.testing.assert_allclose(
        metrics.valid_prediction_time(batch, np.stack([reference, reference]), batched=True),
        4.5,
    )
    with pytest.raises(ValueError, match="dt"):
        metrics.valid_prediction_time(prediction, reference, dt=0.0)


# ---------------------------------------------------------------- ensembles


def gaussian_quantiles(num, mu=0.0, sigma=1.0):
    """`num` equally spaced quantiles of N(mu, sigma^2): a "perfect" sample."""
    levels = (np.arange(num) + 0.5) / num
    return (mu + sigma * np.asarray(ndtri(levels))).astype(np.float32)


def gaussian_crps(mu, sigma, y):
    z = (y - mu) / sigma
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))
    pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / np.sqrt(np.pi))


def test_crps_matches_gaussian_closed_form():
    mu, sigma, num_members = 0.5, 1.5, 2000
    observation = np.linspace(-3.0, 4.0, 8, dtype=np.float32)
    # a quantile ensemble represents N(mu, sigma^2) with O(1/M) error
    ensemble = np.broadcast_to(
        gaussian_quantiles(num_members, mu, sigma)[:, None], (num_members, 8)
    )
    expected = gaussian_crps(mu, sigma, np.asarray(observation))
    per_entry = metrics.crps(ensemble, observation, axis=())
    assert per_entry.shape == (8,)
    np.testing.assert_allclose(per_entry, expected, atol=5e-3)
    np.testing.assert_allclose(metrics.crps(ensemble, observation), expected.mean(), atol=5e-3)
    # random draws: the fair CRPS is unbiased, so a large ensemble gets close
    draws = mu + sigma * normal(4, (4000, 8))
    np.testing.assert_allclose(
        metrics.crps(draws, observation, axis=()), expected, atol=0.06
    )


def brute_force_crps(ensemble, observation, fair):
    m = ensemble.shape[0]
    skill = np.mean(np.abs(ensemble - observation[None]), axis=0)
    pairs = np.abs(ensemble[:, None] - ensemble[None, :]).sum(axis=(0, 1))
    spread = pairs / (m * (m - 1) if fair else m * m)
    return skill - 0.5 * spread


@pytest.mark.parametrize("fair", [True, False])
def test_crps_against_brute_force(fair):
    ensemble = normal(5, (3, 7, 5))  # members on axis 1
    observation = normal(6, (3, 5))
    expected = brute_force_crps(np.moveaxis(ensemble, 1, 0), observation, fair)
    out = metrics.crps(ensemble, observation, ensemble_axis=1, fair=fair, axis=())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        metrics.crps(ensemble, observation, ensemble_axis=1, fair=fair, axis=1),
        expected.mean(axis=1),
        rtol=1e-5,
        atol=1e-6,
    )
    if not fair:
        # the empirical (non-fair) CRPS is never negative
        assert np.all(np.asarray(out) >= 0.0)


def test_fair_crps_is_below_the_empirical_one_by_the_spread_correction():
    """fair = empirical - spread / (2 m (m - 1)): strictly smaller for a spread ensemble."""
    ensemble = normal(5, (3, 7, 5))
    observation = normal(6, (3, 5))
    fair = np.asarray(metrics.crps(ensemble, observation, ensemble_axis=1, axis=()))
    empirical = np.asarray(
        metrics.crps(ensemble, observation, ensemble_axis=1, fair=False, axis=())
    )
    members = np.moveaxis(ensemble, 1, 0)
    m = members.shape[0]
    pairs = np.abs(members[:, None] - members[None, :]).sum(axis=(0, 1))
    correction = 0.5 * pairs / (m * m * (m - 1))
    assert np.all(correction > 0.0)
    np.testing.assert_allclose(empirical - fair, correction, rtol=1e-4, atol=1e-6)
    assert np.all(fair < empirical)


def test_crps_of_point_ensemble_is_absolute_error():
    observation = np.array([1.0, -2.0, 0.5], np.float32)
    ensemble = np.zeros((1, 3), np.float32)
    np.testing.assert_allclose(
        metrics.crps(ensemble, observation, fair=False, axis=()), [1.0, 2.0, 0.5]
    )
    with pytest.raises(ValueError, match="at least 2 members"):
        metrics.crps(ensemble, observation)


def test_spread_skill_ratio_calibrated_and_overconfident():
    observation = normal(7, (20000,))
    members = normal(8, (8, 20000))
    np.testing.assert_allclose(
        metrics.spread_skill_ratio(members, observation), 1.0, atol=0.04
    )
    np.testing.assert_allclose(
        metrics.spread_skill_ratio(0.5 * members, observation),
        np.sqrt(9 / 8) * 0.5 / np.sqrt(1 + 0.25 / 8),  # spread^2 = 0.25, skill^2 = 1 + 0.25/8
        rtol=0.04,
    )
    per_block = metrics.spread_skill_ratio(
        members.reshape(8, 4, 5000), observation.reshape(4, 5000), axis=1
    )
    assert per_block.shape == (4,)
    np.testing.assert_allclose(per_block, 1.0, atol=0.08)


def test_interval_coverage():
    observation = normal(9, (5000,))
    members = normal(10, (5000, 200))  # members on the last axis
    for level in (0.5, 0.9):
        np.testing.assert_allclose(
            metrics.interval_coverage(members, observation, level, ensemble_axis=-1),
            level,
            atol=0.03,
        )
    # constructed: a [-1, 1] ensemble covers exactly the observations inside it
    ensemble = np.broadcast_to(np.linspace(-1.0, 1.0, 101, dtype=np.float32)[:, None], (101, 4))
    obs = np.array([0.0, 0.85, -0.95, 2.0], np.float32)
    np.testing.assert_allclose(
        metrics.interval_coverage(ensemble, obs, 0.9, axis=()), [1.0, 1.0, 0.0, 0.0]
    )
    with pytest.raises(ValueError, match="level"):
        metrics.interval_coverage(ensemble, obs, 1.5)


def test_energy_distance():
    standard = gaussian_quantiles(400)[:, None]
    shift = 1.0
    # closed form for N(0,1) vs N(shift,1): 2 E|Z| - 2 E|X - X'|, Z ~ N(shift, 2)
    s = np.sqrt(2.0)
    e_z = s * np.sqrt(2 / np.pi) * np.exp(-(shift**2) / (2 * s**2)) + shift * math.erf(
        shift / (s * np.sqrt(2))
    )
    expected = 2 * e_z - 2 * (2 / np.sqrt(np.pi))
    # quantile samples are an empirical measure close to the Gaussian: the V-statistic
    # (the exact distance between the empirical measures) is the right estimate here
    np.testing.assert_allclose(
        metrics.energy_distance(standard, standard + shift, unbiased=False),
        expected,
        atol=1e-3,
    )
    # same distribution: about zero (unbiased); identical sets: exactly zero (V-statistic)
    a = normal(11, (300, 2, 2))
    b = normal(12, (300, 2, 2))
    assert abs(float(metrics.energy_distance(a, b))) < 0.03
    np.testing.assert_allclose(metrics.energy_distance(a, a, unbiased=False), 0.0, atol=1e-5)
    assert float(metrics.energy_distance(a, b + 0.5)) > 0.1
    grads = jax.grad(metrics.energy_distance)(a[:20], b[:30])
    assert jnp.all(jnp.isfinite(grads))
    with pytest.raises(ValueError, match="event shapes"):
        metrics.energy_distance(a, b[:, 0])


def test_ensemble_shape_errors():
    with pytest.raises(ValueError, match="must be shaped"):
        metrics.crps(np.zeros((5, 3)), np.zeros((4,)))
    with pytest.raises(ValueError, match="out of range"):
        metrics.spread_skill_ratio(np.zeros((5, 3)), np.zeros((3,)), ensemble_axis=2)


# ---------------------------------------------------------------- transformations


def test_metrics_under_jit_and_vmap(random_pair):
    prediction, reference = random_pair
    for metric in (metrics.nrmse, metrics.pearson_correlation, metrics.spectral_error):
        eager = metric(prediction, reference, batched=True)
        # vmap over the batch = per-sample values; their mean = the batched value
        per_sample = jax.vmap(metric)(prediction, reference)
        assert per_sample.shape == (4,) + eager.shape
        np.testing.assert_allclose(per_sample.mean(axis=0), eager, rtol=1e-5, atol=1e-6)

    @jax.jit
    def summary(prediction, reference, threshold):
        # traced arrays everywhere, scalar threshold traced too
        return (
            metrics.nrmse(prediction, reference, batched=True),
            metrics.geometric_mean_nrmse(prediction, reference, num_steps=3, batched=True),
            metrics.valid_prediction_time(
                prediction, reference, threshold=threshold, batched=True
            ),
        )

    curve, gmean, vpt = summary(prediction, reference, 0.3)
    np.testing.assert_allclose(curve, metrics.nrmse(prediction, reference, batched=True), rtol=1e-5)
    np.testing.assert_allclose(
        gmean, metrics.geometric_mean_nrmse(prediction, reference, num_steps=3, batched=True),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        vpt, metrics.valid_prediction_time(prediction, reference, batched=True, threshold=0.3)
    )

    ensemble = prediction  # 4 members of (5, 2, N)
    observation = reference[0]
    np.testing.assert_allclose(
        jax.jit(metrics.crps)(ensemble, observation),
        metrics.crps(ensemble, observation),
        rtol=1e-5,
    )
    # vmap over time: per-step CRPS = CRPS averaged over the non-time axes
    per_step = jax.vmap(metrics.crps, in_axes=(1, 0))(ensemble, observation)
    np.testing.assert_allclose(
        per_step, metrics.crps(ensemble, observation, axis=(1, 2)), rtol=1e-5
    )


def test_trajectory_shape_errors():
    with pytest.raises(ValueError, match="must match"):
        metrics.nrmse(np.zeros((3, 1, 8)), np.zeros((3, 1, 9)))
    with pytest.raises(ValueError, match=r"\(B, T, C, \*spatial\)"):
        metrics.mse(np.zeros((3, 4)), np.zeros((3, 4)), batched=True)
    with pytest.raises(ValueError, match=r"state\[None\]"):
        metrics.pearson_correlation(np.zeros((4,)), np.zeros((4,)))
    with pytest.raises(TypeError, match="batched"):
        metrics.rmse(np.zeros((3, 4)), np.zeros((3, 4)), batched=1)
    with pytest.raises(ValueError, match="no spatial axis"):
        metrics.h1_error(np.ones((3, 4)), np.ones((3, 4)))


def test_correlation_refuses_states_without_spatial_axes():
    # Lorenz-63 states (3,): a flat prediction on the attractor "correlates" with the
    # reference over the three components, so the metric must not be computed.
    reference = np.stack([np.linspace(-8.0, 8.0, 6), np.linspace(-9.0, 9.0, 6),
                          np.linspace(20.0, 30.0, 6)], axis=-1).astype(np.float32)
    flat = np.broadcast_to(reference[:1], reference.shape)  # (T, C) = (6, 3)
    with pytest.raises(ValueError, match=r"shape \(3,\) \(no spatial axis\)") as info:
        metrics.pearson_correlation(flat, reference)
    assert "nrmse" in str(info.value) and "valid_prediction_time" in str(info.value)
    with pytest.raises(ValueError, match="no spatial axis"):
        metrics.pearson_correlation(flat[None], reference[None], batched=True)
    # a field with one channel still works
    field = sine_trajectory([0.0, 0.3])
    np.testing.assert_allclose(metrics.pearson_correlation(field, field), 1.0, atol=1e-5)
