"""CRPS-trained ensembles: the (almost-)fair CRPS against hand-written references, its
fairness, the noise-input stepper, argument checks and a tiny end-to-end training.

The configuration's loss and gradient against a hand-written rollout reference, jit,
vmap over seeds and the trainer's engine contracts run through `tests/registry.py`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import conv_stepper, random_windows
from references import ref_fair_crps
from test_cli import train_method_in_fresh_process

import trainax_fm as tx
from trainax_fm.configuration import CRPSEnsemble
from trainax_fm.configuration._crps_ensemble import almost_fair_crps
from trainax_fm.experiment import ConfigError
from trainax_fm.experiment._method_spec import format_method, parse_method


def numpy_fair_crps(members, observation, alpha=1.0):
    """Per entry, then averaged: the definition with explicit loops over member pairs."""
    members, observation = np.asarray(members, np.float64), np.asarray(observation, np.float64)
    M = members.shape[0]
    skill = np.mean(np.abs(members - observation[None]), axis=0)
    pairs = np.zeros_like(observation)
    for i in range(M):
        for j in range(M):
            pairs += np.abs(members[i] - members[j])
    fair = skill - pairs / (2 * M * (M - 1))
    biased = skill - pairs / (2 * M * M)
    return float(np.mean(alpha * fair + (1 - alpha) * biased))


@pytest.mark.parametrize("alpha", [1.0, 0.95, 0.3])
@pytest.mark.parametrize("num_members", [2, 5])
def test_crps_matches_numpy_and_its_gradient_the_handwritten_one(alpha, num_members):
    rng = np.random.default_rng(num_members)
    members = jnp.asarray(rng.standard_normal((num_members, 3, 7)), jnp.float32)
    observation = jnp.asarray(rng.standard_normal((3, 7)), jnp.float32)
    value = almost_fair_crps(members, observation, alpha)
    np.testing.assert_allclose(
        float(value), numpy_fair_crps(members, observation, alpha), rtol=1e-5
    )
    grad = jax.grad(almost_fair_crps)(members, observation, alpha)
    expected = jax.grad(lambda m: ref_fair_crps(list(m), observation, alpha))(members)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_almost_fair_is_the_mix_of_fair_and_biased():
    rng = np.random.default_rng(3)
    members = jnp.asarray(rng.standard_normal((4, 20)), jnp.float32)
    observation = jnp.asarray(rng.standard_normal(20), jnp.float32)
    fair = tx.metrics.crps(members, observation, fair=True)
    biased = tx.metrics.crps(members, observation, fair=False)
    np.testing.assert_allclose(almost_fair_crps(members, observation, 1.0), fair, rtol=1e-6)
    np.testing.assert_allclose(
        almost_fair_crps(members, observation, 0.95), 0.95 * fair + 0.05 * biased, rtol=1e-5
    )


def test_fair_crps_is_unbiased_where_the_biased_one_is_not():
    """Members and truth from N(0, 1): the expected fair CRPS of M = 2 members is the
    CRPS of N(0, 1) itself, 1/sqrt(pi); the empirical-distribution CRPS is larger by
    E|X - X'| / (2M) = 1/(M sqrt(pi))."""
    rng = np.random.default_rng(0)
    num_entries, M = 400_000, 2
    members = jnp.asarray(rng.standard_normal((M, num_entries)), jnp.float32)
    truth = jnp.asarray(rng.standard_normal(num_entries), jnp.float32)
    exact = 1.0 / math.sqrt(math.pi)
    fair = float(almost_fair_crps(members, truth, 1.0))
    biased = float(almost_fair_crps(members, truth, 1e-9))
    # Standard error of a mean of 4e5 draws of O(1) spread: ~1.5e-3.
    assert abs(fair - exact) < 6e-3, (fair, exact)
    assert abs(biased - exact - exact / M) < 6e-3, (biased, exact)
    assert biased - exact > 0.2


def test_noise_input_stepper_samples_with_one_evaluation_per_call():
    calls = []

    def network(x):
        calls.append(x.shape)
        return x[:1] + x[1:2]

    stepper = tx.NoiseInputStepper(network, num_noise_channels=1)
    assert tx.NoiseInputStepper.needs_key is True and stepper.needs_key is True
    state = jnp.zeros((1, 6))
    first = stepper(state, key=jax.random.key(1))
    assert calls == [(2, 6)]
    np.testing.assert_array_equal(first, stepper(state, key=jax.random.key(1)))
    assert not np.allclose(first, stepper(state, key=jax.random.key(2)))
    with pytest.raises(ValueError, match="needs a random key"):
        stepper(state)
    with pytest.raises(ValueError, match="Pass `key="):
        tx.rollout(stepper, state, 3)
    ensemble = tx.rollout(stepper, state, 3, key=jax.random.key(0), num_samples=4)
    assert ensemble.shape == (4, 3, 1, 6)
    assert float(jnp.std(ensemble[:, -1])) > 0.0


def test_a_normalised_residual_noise_input_stepper_stays_stochastic():
    """Training sees `normalized_space()` of a `NormalizedStepper`: with `residual=True`
    that is a wrapper, which must still declare the key the network needs."""
    data = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6, 3)), jnp.float32)
    normalizer = tx.Normalizer.fit(data, increments=True)
    network = eqx.nn.MLP(6, 3, 8, 1, key=jax.random.key(0))
    stepper = tx.NormalizedStepper(
        tx.NoiseInputStepper(network, num_noise_channels=3), normalizer, residual=True
    )
    assert stepper.needs_key and stepper.normalized_space().needs_key
    loss = CRPSEnsemble(2)(stepper.normalized_space(), data, key=jax.random.key(1))
    assert np.isfinite(float(loss))


def test_noise_input_stepper_checks_its_arguments():
    with pytest.raises(ValueError, match="num_noise_channels"):
        tx.NoiseInputStepper(conv_stepper(0, in_channels=1), num_noise_channels=0)
    with pytest.raises(TypeError, match="callable"):
        tx.NoiseInputStepper(3)


def test_crps_ensemble_checks_its_arguments():
    with pytest.raises(ValueError, match="num_members"):
        CRPSEnsemble(num_members=1)
    for alpha in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match=r"crps_alpha.*\(0, 1\]"):
            CRPSEnsemble(crps_alpha=alpha)
    with pytest.raises(TypeError, match="crps_alpha"):
        CRPSEnsemble(crps_alpha=True)
    with pytest.raises(ValueError, match="time_level_weights"):
        CRPSEnsemble(2, time_level_weights=[1.0])
    data = random_windows(0, 3)
    configuration = CRPSEnsemble(2)
    with pytest.raises(TypeError, match="NoiseInputStepper"):
        configuration(conv_stepper(0), data, key=jax.random.key(0))
    stepper = tx.NoiseInputStepper(conv_stepper(0, in_channels=2))
    with pytest.raises(ValueError, match="random key"):
        configuration(stepper, data)
    with pytest.raises(ValueError, match="at least 3 snapshots"):
        configuration(stepper, data[:, :2], key=jax.random.key(0))


def test_scanned_and_unrolled_members_agree(key):
    stepper = tx.NoiseInputStepper(conv_stepper(1, in_channels=2))
    data = random_windows(5, 4)
    unrolled = CRPSEnsemble(3, unroll=True)(stepper, data, key=key)
    scanned = CRPSEnsemble(3, unroll=False)(stepper, data, key=key)
    np.testing.assert_allclose(unrolled, scanned, rtol=1e-5)


def _noisy_trajectories(seed, num_trajectories=16, num_steps=12, num_points=16, sigma=0.3):
    """`u_{n+1} = 0.8 roll(u_n) + sigma xi_n`: a genuinely uncertain next state."""
    rng = np.random.default_rng(seed)
    states = [rng.standard_normal((num_trajectories, 1, num_points))]
    for _ in range(num_steps - 1):
        noise = rng.standard_normal((num_trajectories, 1, num_points))
        states.append(0.8 * np.roll(states[-1], 1, axis=-1) + sigma * noise)
    return jnp.asarray(np.stack(states, axis=1), jnp.float32)


def test_training_an_ensemble_lowers_its_crps_and_gives_it_spread():
    train, test = _noisy_trajectories(0), _noisy_trajectories(1)
    network = eqx.nn.Conv1d(
        3, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.key(0)
    )
    stepper = tx.NoiseInputStepper(network, num_noise_channels=2)
    ic, truth = test[:, 0], test[:, 1]

    def one_step_crps(s):
        ensemble = tx.rollout(
            s, ic, 1, key=jax.random.key(9), num_samples=8, batched=True
        )[:, :, 0]
        return float(tx.metrics.crps(ensemble, truth)), float(jnp.std(ensemble, axis=0).mean())

    before, _ = one_step_crps(stepper)
    trainer = tx.trainer.CRPSEnsembleTrainer(
        train,
        optimizer=optax.adam(3e-2),
        num_training_steps=300,
        batch_size=16,
        num_members=4,
    )
    trained, losses = trainer(stepper, jax.random.key(1), spawn_tqdm=False)
    after, spread = one_step_crps(trained)
    assert np.all(np.isfinite(losses))
    assert after < 0.6 * before, (before, after)
    # The noise of the data is 0.3: the ensemble must spread, not collapse to its mean.
    assert 0.2 < spread < 0.4, spread


# --- the command line -----------------------------------------------------------------


def test_crps_spec_parses_formats_and_checks_its_members():
    method = parse_method("crps;4")
    assert (method.num_members, method.num_rollout_steps) == (4, 1)
    assert format_method(method) == "crps;4"
    assert format_method(parse_method("crps;3;2")) == "crps;3;2"
    assert eqx.tree_equal(
        parse_method("crps;3;2").configuration(), CRPSEnsemble(2, num_members=3)
    )
    with pytest.raises(ConfigError, match="at least 2 ensemble members"):
        parse_method("crps;1")


def test_crps_from_the_command_line(tmp_path):
    """`crps;2;2` in a fresh process: the run completes, is evaluated as a stochastic
    emulator, and the saved configuration rebuilds a `CRPSEnsemble` trainer."""
    metrics, trainer = train_method_in_fresh_process(tmp_path, "crps;2;2")
    assert eqx.tree_equal(trainer.loss_configuration, CRPSEnsemble(2, num_members=2))
