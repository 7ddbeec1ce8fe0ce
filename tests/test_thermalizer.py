"""The thermalizer (`tx.flow.Thermalizer`, `ThermalizerDiffusion`, `ThermalizerTrainer`)
and `tx.flow.ThermalizedStepper`.

An *oracle* thermalizer knows the stationary distribution exactly: for data
`x_0 ~ N(0, s² I)` the noised state is `x_k ~ N(0, v_k I)`, `v_k = ᾱ_k s² + 1 - ᾱ_k`,
so the optimal noise prediction is `E[ε | x_k] = sqrt(1 - ᾱ_k) / v_k · x_k` and the
optimal classifier's logits are the Gaussian log-likelihoods of `x_k` under each `v_k`.
With it the wrapper must leave in-distribution states alone and pull drifted ones back.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import ref_cosine_alpha_bars

import trainax_fm as tx
from trainax_fm.configuration import ThermalizerDiffusion
from trainax_fm.flow import ThermalizedStepper, Thermalizer

K = 50
S2 = 0.09  # the data's variance per entry
N = 64  # grid points of the (1, N) states
THRESHOLD = 6


class OracleDenoiser(eqx.Module):
    alpha_bars: jax.Array

    def __call__(self, inputs):
        x, fraction = inputs[:-1], inputs[-1, 0]
        alpha_bar = self.alpha_bars[jnp.round(fraction * K).astype(int)]
        return jnp.sqrt(1 - alpha_bar) / (alpha_bar * S2 + 1 - alpha_bar) * x


class OracleClassifier(eqx.Module):
    alpha_bars: jax.Array

    def __call__(self, x):
        variances = self.alpha_bars[1:] * S2 + 1 - self.alpha_bars[1:]
        return -0.5 * x.size * jnp.log(variances) - jnp.sum(x**2) / (2 * variances)


def oracle():
    alpha_bars = jnp.asarray(ref_cosine_alpha_bars(K), jnp.float32)
    return Thermalizer(OracleDenoiser(alpha_bars), OracleClassifier(alpha_bars), num_noise_steps=K)


def data_states(seed, batch=None):
    shape = (1, N) if batch is None else (batch, 1, N)
    return jnp.sqrt(S2) * jax.random.normal(jax.random.key(seed), shape)


def roll(u):
    return jnp.roll(u, 1, axis=-1)


def growing(u):
    # a spurious growing mode: the variance grows by 1.69 per step
    return 1.3 * jnp.roll(u, 1, axis=-1)


class NoisyRoll(eqx.Module):
    needs_key = True

    def __call__(self, u, *, key):
        return roll(u) + 0.01 * jax.random.normal(key, u.shape)


def test_schedule_matches_the_cosine_formula():
    thermalizer = oracle()
    np.testing.assert_allclose(thermalizer.alpha_bars, ref_cosine_alpha_bars(K), rtol=2e-5)
    linear = Thermalizer(roll, roll, num_noise_steps=1000, schedule="linear")
    np.testing.assert_allclose(
        linear.alpha_bars[1:], np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-4
    )


def test_denoise_is_the_ddpm_posterior_mean_chain():
    """`denoise(x, k)` without key equals a NumPy loop of the posterior means."""
    thermalizer = oracle()
    x = np.asarray(data_states(1) + 0.5 * jax.random.normal(jax.random.key(2), (1, N)))
    alpha_bars = ref_cosine_alpha_bars(K)
    expected = x.astype(np.float64)
    for k in range(12, 0, -1):
        beta = 1 - alpha_bars[k] / alpha_bars[k - 1]
        epsilon = np.sqrt(1 - alpha_bars[k]) / (alpha_bars[k] * S2 + 1 - alpha_bars[k]) * expected
        expected = (expected - beta / np.sqrt(1 - alpha_bars[k]) * epsilon) / np.sqrt(1 - beta)
    got = eqx.filter_jit(thermalizer.denoise)(jnp.asarray(x), 12)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(thermalizer.denoise(jnp.asarray(x), 0), x)


def test_in_distribution_states_are_left_untouched():
    thermalizer = oracle()
    wrapped = ThermalizedStepper(roll, thermalizer, threshold=THRESHOLD)
    ics = data_states(3, batch=4)
    report = wrapped.rollout(ics, 20, batched=True)
    assert int(report.num_interventions.sum()) == 0
    assert int(report.noise_levels.max()) <= THRESHOLD
    np.testing.assert_array_equal(
        report.trajectory, tx.rollout(roll, ics, 20, batched=True)
    )
    np.testing.assert_array_equal(
        tx.rollout(wrapped, ics, 20, batched=True), tx.rollout(roll, ics, 20, batched=True)
    )


@pytest.mark.parametrize("stochastic", [False, True])
def test_a_drifted_state_is_pulled_back(stochastic):
    thermalizer = oracle()
    drifted = data_states(4) + 0.5 * jax.random.normal(jax.random.key(5), (1, N))
    assert float(jnp.mean(drifted**2)) > 3 * S2
    assert int(thermalizer.estimate_noise_level(drifted)) > THRESHOLD
    wrapped = ThermalizedStepper(
        lambda u: u, thermalizer, threshold=THRESHOLD, stochastic_denoising=stochastic
    )
    key = jax.random.key(6) if stochastic else None
    state, level, intervened = wrapped.thermalize(drifted, key=key)
    assert bool(intervened) and int(level) > THRESHOLD
    assert float(jnp.mean(state**2)) < 1.6 * S2
    assert int(thermalizer.estimate_noise_level(state)) <= THRESHOLD


def test_a_growing_mode_stays_bounded_and_the_report_counts_interventions():
    thermalizer = oracle()
    ic = data_states(7)
    free = tx.rollout(growing, ic, 30)
    assert float(jnp.mean(free[-1] ** 2)) > 1000 * S2
    wrapped = ThermalizedStepper(growing, thermalizer, threshold=THRESHOLD)
    report = wrapped.rollout(ic, 30)
    assert float(jnp.max(jnp.mean(report.trajectory**2, axis=(1, 2)))) < 5 * S2
    assert 0 < int(report.num_interventions) == int(report.interventions.sum())
    assert bool(jnp.all((report.noise_levels > THRESHOLD) == report.interventions))
    np.testing.assert_allclose(tx.rollout(wrapped, ic, 30), report.trajectory, rtol=1e-5)


def test_every_checks_only_every_nth_state():
    wrapped = ThermalizedStepper(growing, oracle(), threshold=THRESHOLD, every=3)
    report = wrapped.rollout(data_states(8), 12)
    checked = np.arange(1, 13) % 3 == 0
    assert bool(jnp.all(report.noise_levels[~checked] == 0))
    assert bool(jnp.all(report.noise_levels[checked] > 0))
    assert not bool(report.interventions[~checked].any()) and bool(report.interventions.any())
    with pytest.raises(ValueError, match="every=3"):
        tx.rollout(wrapped, data_states(8), 2)


def test_a_stochastic_emulator_gets_its_own_keys():
    """Step `t` splits `split(key, T)[t]` into the emulator's key and the denoiser's."""
    wrapped = ThermalizedStepper(NoisyRoll(), oracle(), threshold=THRESHOLD)
    assert wrapped.needs_key
    ic, key = data_states(9), jax.random.key(10)
    states = tx.rollout(wrapped, ic, 5, key=key)
    expected, state = [], ic
    for step_key in jax.random.split(key, 5):
        state = NoisyRoll()(state, key=jax.random.split(step_key)[0])
        expected.append(state)
    np.testing.assert_allclose(states, jnp.stack(expected), rtol=1e-6)
    np.testing.assert_allclose(wrapped.rollout(ic, 5, key=key).trajectory, states, rtol=1e-6)


def test_errors():
    thermalizer = oracle()
    with pytest.raises(TypeError, match="trainax_fm.flow.Thermalizer"):
        ThermalizedStepper(roll, roll, threshold=1)
    with pytest.raises(ValueError, match=r"threshold.*0 \.\.\. 49"):
        ThermalizedStepper(roll, thermalizer, threshold=K)
    with pytest.raises(TypeError, match="threshold"):
        ThermalizedStepper(roll, thermalizer, threshold=1.5)
    with pytest.raises(ValueError, match="every"):
        ThermalizedStepper(roll, thermalizer, threshold=1, every=0)
    with pytest.raises(ValueError, match="key"):
        ThermalizedStepper(NoisyRoll(), thermalizer, threshold=1).rollout(data_states(0), 2)
    with pytest.raises(ValueError, match="key"):
        ThermalizedStepper(roll, thermalizer, threshold=1, stochastic_denoising=True)(
            data_states(0)
        )
    with pytest.raises(ValueError, match="schedule"):
        Thermalizer(roll, roll, schedule="quadratic")
    with pytest.raises(ValueError, match="num_noise_steps=50 logits"):
        Thermalizer(roll, roll, num_noise_steps=K).noise_logits(data_states(0))
    with pytest.raises(ValueError, match="2 input and 1 output channels"):
        Thermalizer(lambda x: x, roll, num_noise_steps=K).epsilon(data_states(0), 3)
    with pytest.raises(ValueError, match="noise_level_weight"):
        ThermalizerDiffusion(noise_level_weight=-1.0)
    with pytest.raises(TypeError, match="trains a trainax_fm.flow.Thermalizer"):
        ThermalizerDiffusion()(roll, data_states(0, batch=2)[:, None], key=jax.random.key(0))
    with pytest.raises(ValueError, match="random key"):
        ThermalizerDiffusion()(thermalizer, data_states(0, batch=2)[:, None])


def test_the_oracle_has_the_lowest_diffusion_loss():
    """The loss of the oracle is lower than that of a slightly wrong one (a check that the
    configuration scores the right target), and its classifier finds the true levels."""
    states = data_states(11, batch=64)[:, None]
    loss = eqx.filter_jit(ThermalizerDiffusion())
    oracle_loss = loss(oracle(), states, key=jax.random.key(12))
    bars = jnp.asarray(ref_cosine_alpha_bars(K), jnp.float32)
    wrong = Thermalizer(
        eqx.tree_at(lambda d: d.alpha_bars, OracleDenoiser(bars), bars**0.8),
        OracleClassifier(bars**0.8),
        num_noise_steps=K,
    )
    assert float(oracle_loss) < float(loss(wrong, states, key=jax.random.key(12)))
    noise = jax.random.normal(jax.random.key(13), (64, 1, N))

    @eqx.filter_jit
    def estimates(thermalizer, level):
        noisy = jax.vmap(thermalizer.add_noise, in_axes=(0, None, 0))(states[:, 0], level, noise)
        return jax.vmap(thermalizer.estimate_noise_level)(noisy)

    for level in (10, 25, 40):
        assert abs(float(jnp.median(estimates(oracle(), level))) - level) <= 3


def test_a_thermalizer_of_normalised_states_works_in_physical_units():
    """`NormalizedStepper(thermalizer, normalizer)` (how the trainers train on
    normalised data): the check and the denoising happen in normalised units."""
    normalizer = tx.Normalizer(mean=jnp.full((1, 1), 5.0), std=jnp.full((1, 1), 2.0))
    wrapped = ThermalizedStepper(
        lambda u: 5.0 + growing(u - 5.0),
        tx.NormalizedStepper(oracle(), normalizer),
        threshold=THRESHOLD,
    )
    ic = 5.0 + 2.0 * data_states(14)
    report = wrapped.rollout(ic, 30)
    assert float(jnp.max(jnp.mean(((report.trajectory - 5.0) / 2.0) ** 2, axis=(1, 2)))) < 5 * S2
    assert int(report.num_interventions) > 0
    calm = ThermalizedStepper(roll, tx.NormalizedStepper(oracle(), normalizer), threshold=THRESHOLD)
    np.testing.assert_array_equal(calm.rollout(ic, 5).trajectory, tx.rollout(roll, ic, 5))
    with pytest.raises(ValueError, match="residual=True"):
        ThermalizedStepper(
            roll,
            tx.NormalizedStepper(
                oracle(),
                tx.Normalizer(
                    mean=jnp.zeros((1, 1)), std=jnp.ones((1, 1)),
                    increment_mean=jnp.zeros((1, 1)), increment_std=jnp.ones((1, 1)),
                ),
                residual=True,
            ),
            threshold=1,
        )


def test_the_diffusion_loss_trains_the_thermalizer_of_a_thermalized_stepper():
    """Given a `ThermalizedStepper`, the loss is that of its thermalizer: on the states
    themselves, or on `(x - mean) / std` (written out here) inside a
    `NormalizedStepper`; neither the emulator nor the statistics get a gradient."""
    states = 5.0 + 2.0 * data_states(15, batch=16)[:, None]
    normalized = (states - 5.0) / 2.0
    loss = eqx.filter_jit(ThermalizerDiffusion())
    key = jax.random.key(16)
    plain = ThermalizedStepper(roll, oracle(), threshold=THRESHOLD)
    np.testing.assert_allclose(
        loss(plain, states, key=key), loss(oracle(), states, key=key), rtol=1e-6)
    normalizer = tx.Normalizer(mean=jnp.full((1, 1), 5.0), std=jnp.full((1, 1), 2.0))
    emulator = eqx.nn.Conv1d(1, 1, 3, padding=1, key=jax.random.key(17))
    wrapped = ThermalizedStepper(
        emulator, tx.NormalizedStepper(oracle(), normalizer), threshold=THRESHOLD)
    np.testing.assert_allclose(
        loss(wrapped, states, key=key), loss(oracle(), normalized, key=key), rtol=1e-6)
    grads = eqx.filter_grad(lambda s: loss(s, states, key=key))(wrapped)
    for leaf in jax.tree_util.tree_leaves((grads.stepper, grads.thermalizer.normalizer)):
        np.testing.assert_array_equal(leaf, 0.0)
    with pytest.raises(TypeError, match="ThermalizedStepper"):
        loss(emulator, states, key=key)


@pytest.mark.slow  # about 20 s on a shared 2-core CPU (600 updates and their compile)
def test_the_trainer_learns_to_tell_noise_levels_apart():
    """A few hundred updates on Gaussian states: the classifier's estimate grows with
    the true level and the denoiser beats predicting zero noise."""
    levels = 10
    key = jax.random.key(15)
    states = 0.5 * jax.random.normal(key, (8, 40, 6))  # 8 trajectories of 40 states (6,)
    thermalizer = Thermalizer(
        eqx.nn.MLP(7, 6, 32, 2, activation=jax.nn.gelu, key=jax.random.key(16)),
        eqx.nn.MLP(6, levels, 32, 2, activation=jax.nn.gelu, key=jax.random.key(17)),
        num_noise_steps=levels,
    )
    trainer = tx.trainer.ThermalizerTrainer(
        states, optimizer=optax.adam(3e-3), num_training_steps=600, batch_size=64,
    )
    trained, losses = trainer(thermalizer, jax.random.key(18))
    assert float(np.mean(losses[-50:])) < 0.8 * float(np.mean(losses[:50]))
    noise = jax.random.normal(jax.random.key(19), (256, 6))
    clean = 0.5 * jax.random.normal(jax.random.key(20), (256, 6))

    @eqx.filter_jit
    def median_estimate(model, level):
        noisy = jax.vmap(model.add_noise, in_axes=(0, None, 0))(clean, level, noise)
        return jnp.median(jax.vmap(model.estimate_noise_level)(noisy))

    medians = [float(median_estimate(trained, level)) for level in (1, 4, 7, 10)]
    assert medians == sorted(medians) and medians[-1] - medians[0] >= 4
