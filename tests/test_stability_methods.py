"""The methods against drifting rollouts, beyond the registry's reference contracts:
pushforward cuts the pushed steps, training noise has the specified scale, the MMD is
zero for identical samples and grows with a shift, the curriculum's length follows its
schedule, the weight schedules, Lorenz-96 and the long-run metrics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import conv_stepper, mse, random_windows, value_and_grad
from references import ref_mmd, ref_supervised

import trainax_fm as tx
from trainax_fm.configuration import (
    Composite,
    InputNoise,
    InvariantMeasureMMD,
    MixChainPostPhysics,
    Pushforward,
    RolloutCurriculum,
    Supervised,
    geometric_weights,
    inverse_sqrt_weights,
    linear_weights,
)

# --- pushforward --------------------------------------------------------------------


def test_pushforward_passes_no_gradient_through_the_pushed_steps():
    """The gradient equals one-step training from the pushed state given as data, and
    differs from backpropagating through the push."""
    stepper, data = conv_stepper(1), random_windows(1, 4)
    loss = Pushforward(1, num_pushforward_steps=2)
    pushed = jax.vmap(stepper)(jax.vmap(stepper)(data[:, 0]))
    as_data = data.at[:, 2].set(pushed)[:, 2:]
    expected = value_and_grad(lambda s: Supervised(1)(s, as_data), stepper)
    actual = value_and_grad(lambda s: loss(s, data), stepper)
    np.testing.assert_allclose(actual[0], expected[0], rtol=1e-6)
    for a, e in zip(actual[1], expected[1]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)

    def through_push(s):
        state = jax.vmap(s)(jax.vmap(s)(data[:, 0]))
        return mse(jax.vmap(s)(state), data[:, 3])

    backpropagated = value_and_grad(through_push, stepper)
    np.testing.assert_allclose(backpropagated[0], actual[0], rtol=1e-6)
    assert not np.allclose(backpropagated[1][0], actual[1][0])


def test_pushforward_without_push_is_supervised():
    stepper, data = conv_stepper(2), random_windows(2, 3)
    np.testing.assert_allclose(
        Pushforward(2, num_pushforward_steps=0)(stepper, data),
        ref_supervised(stepper, data, 2, jnp.ones(2), False, 1),
        rtol=1e-6,
    )


def test_random_pushforward_covers_every_number_of_pushed_steps():
    """Over many keys, the loss takes the value of each fixed k in {0, 1, 2} for a
    single window, and never another."""
    stepper, data = conv_stepper(3), random_windows(3, 4, batch=1)
    fixed = [
        float(Pushforward(1, num_pushforward_steps=k)(stepper, data[:, 2 - k :]))
        for k in range(3)
    ]
    loss = eqx.filter_jit(
        lambda key: Pushforward(1, num_pushforward_steps=2, random_pushforward=True)(
            stepper, data, key=key
        )
    )
    seen = {int(np.argmin(np.abs(np.array(fixed) - float(loss(jax.random.key(i))))))
            for i in range(30)}
    assert seen == {0, 1, 2}
    for i in range(5):
        assert min(abs(f - float(loss(jax.random.key(i)))) for f in fixed) < 1e-6


def test_pushforward_errors():
    with pytest.raises(ValueError, match="needs a random key"):
        Pushforward(1, num_pushforward_steps=1, random_pushforward=True)(
            conv_stepper(0), random_windows(0, 3)
        )
    with pytest.raises(ValueError, match="num_pushforward_steps"):
        Pushforward(1, num_pushforward_steps=-1)
    with pytest.raises(ValueError, match="at least 4 snapshots"):
        Pushforward(1, num_pushforward_steps=2)(conv_stepper(0), random_windows(0, 3))
    with pytest.raises(TypeError, match="random_pushforward"):
        Pushforward(1, random_pushforward=1)


# --- training noise -----------------------------------------------------------------


def test_input_noise_has_the_specified_scale_and_spares_the_targets():
    data = 3.0 * random_windows(4, 3, batch=64, num_points=64)
    noisy = InputNoise(Supervised(2), 0.1).noisy(data, jax.random.key(0))
    noise = noisy[:, 0] - data[:, 0]
    np.testing.assert_allclose(float(jnp.std(noise)), 0.1 * float(jnp.std(data)), rtol=0.03)
    np.testing.assert_allclose(float(jnp.mean(noise)), 0.0, atol=0.01)
    np.testing.assert_array_equal(noisy[:, 1:], data[:, 1:])
    fixed = InputNoise(Supervised(1), 0.5, num_noisy_states=2, data_std=2.0)
    noisy = fixed.noisy(data, jax.random.key(1))
    np.testing.assert_allclose(float(jnp.std(noisy[:, :2] - data[:, :2])), 1.0, rtol=0.03)
    np.testing.assert_array_equal(noisy[:, 2:], data[:, 2:])


def test_input_noise_wraps_any_configuration_and_forwards_its_needs():
    data = random_windows(5, 4)
    inner = Composite([Supervised(2), InvariantMeasureMMD(3)], [1.0, 0.5])
    wrapped = InputNoise(inner, 0.05)
    assert wrapped.required_window_length == 4 and wrapped.needs_key
    loss = wrapped(conv_stepper(5), data, key=jax.random.key(0))
    assert np.isfinite(float(loss)) and float(loss) != float(inner(conv_stepper(5), data))
    reference = InputNoise(MixChainPostPhysics(1, 1), 0.05)
    assert reference.needs_ref_stepper


def test_input_noise_errors():
    with pytest.raises(ValueError, match="relative_std"):
        InputNoise(Supervised(1), 0.0)
    with pytest.raises(TypeError, match="relative_std"):
        InputNoise(Supervised(1), "0.1")
    with pytest.raises(TypeError, match="configuration"):
        InputNoise(lambda *a, **k: 0.0, 0.1)
    with pytest.raises(ValueError, match="needs a random key"):
        InputNoise(Supervised(1), 0.1)(conv_stepper(0), random_windows(0, 2))
    with pytest.raises(ValueError, match="data_std"):
        InputNoise(Supervised(1), 0.1, data_std=(1.0, 2.0)).noisy(
            random_windows(0, 2), jax.random.key(0)
        )


# --- curriculum ---------------------------------------------------------------------


def test_curriculum_length_follows_the_schedule_and_masks_later_levels():
    curriculum = RolloutCurriculum(Supervised(4), "10:1,20:2,30:4")
    stepper, data = conv_stepper(6), random_windows(6, 5)
    for step, length in ((0, 1), (9, 1), (10, 2), (19, 2), (20, 4), (1000, 4), (None, 4)):
        assert int(curriculum.length(step)) == length
        expected = ref_supervised(stepper, data, length, jnp.ones(length), False, 1)
        np.testing.assert_allclose(curriculum(stepper, data, step=step), expected, rtol=1e-5)
    # One program for every length: the step is traced.
    jitted = eqx.filter_jit(lambda s, step: curriculum(s, data, step=step))
    np.testing.assert_allclose(
        jitted(stepper, jnp.asarray(15)), ref_supervised(stepper, data, 2, jnp.ones(2), False, 1),
        rtol=1e-5,
    )


def test_curriculum_trains_with_the_trainer():
    data = random_windows(7, 6, batch=4)
    trainer = tx.trainer.ConfigurationTrainer(
        data, RolloutCurriculum(Supervised(3), "2:1,4:3"), optimizer=optax.adam(1e-2),
        num_training_steps=4, batch_size=2,
    )
    result = trainer.train(conv_stepper(7), jax.random.key(0), spawn_tqdm=False)
    assert result.loss_history.shape == (4,) and np.all(np.isfinite(result.loss_history))


@pytest.mark.parametrize(
    "build, exception, match",
    [
        (lambda: RolloutCurriculum(Supervised(2), "10:1,20:3"), ValueError, "1 ... 2"),
        (lambda: RolloutCurriculum(Supervised(2), "10:1.5"), ValueError, "integers"),
        (lambda: RolloutCurriculum(Supervised(2), 0), ValueError, "1 ... 2"),
        (lambda: RolloutCurriculum(Supervised(2), "20:1,10:2"), ValueError, "increase"),
        (lambda: RolloutCurriculum(Supervised(2), lambda s: 1), TypeError, "callable"),
        (lambda: RolloutCurriculum(MixChainPostPhysics(2, 1), 1), ValueError, "time levels"),
        (lambda: RolloutCurriculum(InvariantMeasureMMD(2), 1), TypeError, "rollout"),
    ],
)
def test_curriculum_errors(build, exception, match):
    with pytest.raises(exception, match=match):
        build()


# --- weight schedules ---------------------------------------------------------------


def test_weight_schedules():
    np.testing.assert_allclose(geometric_weights(3, 0.5), np.array([4, 2, 1]) / (7 / 3), rtol=1e-6)
    np.testing.assert_allclose(
        inverse_sqrt_weights(4), (1 / np.sqrt([1, 2, 3, 4])) / np.mean(1 / np.sqrt([1, 2, 3, 4])),
        rtol=1e-6,
    )
    np.testing.assert_allclose(linear_weights(4), [1.6, 1.2, 0.8, 0.4], rtol=1e-6)
    np.testing.assert_allclose(geometric_weights(5, 1.0), np.ones(5))
    weighted = Supervised(4, time_level_weights=inverse_sqrt_weights(4))
    assert weighted.time_level_weights.shape == (4,)
    with pytest.raises(ValueError, match="ratio"):
        geometric_weights(3, 1.5)
    with pytest.raises(ValueError, match="num_steps"):
        linear_weights(0)


# --- MMD ----------------------------------------------------------------------------


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_shift():
    samples = jax.random.normal(jax.random.key(0), (64, 1, 8))
    assert abs(float(tx.metrics.mmd(samples, samples))) < 1e-6
    values = [float(tx.metrics.mmd(samples, samples + shift)) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values[0] > 1e-3 and all(a < b for a, b in zip(values, values[1:]))
    other = jax.random.normal(jax.random.key(1), (40, 1, 8))
    np.testing.assert_allclose(
        tx.metrics.mmd(samples, other, bandwidths=(0.5, 1.0)),
        ref_mmd(samples, other, (0.5, 1.0)),
        rtol=1e-4, atol=1e-6,
    )


def test_invariant_measure_is_zero_for_the_exact_stepper():
    """A stepper that reproduces the data has an MMD of (rounding-level) zero, and one
    that drifts off has a positive one."""
    data = random_windows(8, 4)
    data = data.at[:, 1:].set(jnp.stack([jnp.roll(data[:, 0], t, -1) for t in (1, 2, 3)], 1))
    exact = InvariantMeasureMMD(3)(lambda u: jnp.roll(u, 1, -1), data)
    drifting = InvariantMeasureMMD(3)(lambda u: jnp.roll(u, 1, -1) + 0.5, data)
    assert abs(float(exact)) < 1e-6 and float(drifting) > 1e-3


def test_mmd_errors():
    with pytest.raises(ValueError, match="bandwidths"):
        InvariantMeasureMMD(2, bandwidths=(1.0, -1.0))
    with pytest.raises(TypeError, match="bandwidths"):
        tx.metrics.mmd(jnp.ones((2, 3)), jnp.ones((2, 3)), bandwidths=None)
    with pytest.raises(ValueError, match="event shapes"):
        tx.metrics.mmd(jnp.ones((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="at least 3 snapshots"):
        InvariantMeasureMMD(2)(conv_stepper(0), random_windows(0, 2))


# --- Lorenz-96 ----------------------------------------------------------------------


def _lorenz96_rhs(u, forcing):
    n = u.shape[-1]
    return jnp.stack(
        [(u[..., (i + 1) % n] - u[..., i - 2]) * u[..., i - 1] - u[..., i] + forcing
         for i in range(n)], axis=-1,
    )


def test_lorenz96_stepper_is_rk4_of_the_system():
    u = jax.random.normal(jax.random.key(0), (1, 6))
    dt, forcing = 0.01, 8.0
    k1 = _lorenz96_rhs(u, forcing)
    k2 = _lorenz96_rhs(u + dt / 2 * k1, forcing)
    k3 = _lorenz96_rhs(u + dt / 2 * k2, forcing)
    k4 = _lorenz96_rhs(u + dt * k3, forcing)
    expected = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    stepper = tx.sample_data.make_lorenz96_stepper_rk4(dt, forcing=forcing)
    np.testing.assert_allclose(stepper(u), expected, rtol=1e-6, atol=1e-6)


def test_lorenz96_trajectories_are_chaotic_on_the_attractor():
    data = tx.sample_data.lorenz96_rk4(
        2, num_points=12, temporal_horizon=400, num_warmup_steps=200, key=jax.random.key(0)
    )
    assert data.shape == (2, 400, 1, 12)
    stepper = tx.sample_data.make_lorenz96_stepper_rk4()
    np.testing.assert_allclose(stepper(data[:, 0]), data[:, 1], rtol=1e-5, atol=1e-5)
    # F = 8: mean about 2.3, standard deviation about 3.6, bounded.
    assert 1.5 < float(data.mean()) < 3.0 and 3.0 < float(data.std()) < 4.2
    assert float(jnp.abs(data).max()) < 20.0


def test_lorenz96_errors():
    with pytest.raises(TypeError, match="key"):
        tx.sample_data.lorenz96_rk4(2)
    with pytest.raises(ValueError, match="num_points"):
        tx.sample_data.lorenz96_rk4(2, num_points=3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dt"):
        tx.sample_data.make_lorenz96_stepper_rk4(0.0)
    with pytest.raises(ValueError, match="N >= 4"):
        tx.sample_data.make_lorenz96_stepper_rk4()(jnp.ones((1, 3)))


# --- long-run metrics ---------------------------------------------------------------


def _fields(seed, batch=3, steps=50, points=16):
    return jax.random.normal(jax.random.key(seed), (batch, steps, 1, points))


def test_long_run_distribution_distance():
    a, b = _fields(0), _fields(1)
    metric = tx.metrics.long_run_distribution_distance
    assert float(metric(a, a, batched=True)) == 0.0
    assert float(metric(a, b, batched=True)) < 0.1
    np.testing.assert_allclose(
        float(metric(a + 1.0, a, batched=True)), 1.0 / float(jnp.std(a)), rtol=1e-3
    )
    # The burn-in drops a transient at the start.
    transient = a.at[:, :10].add(5.0)
    assert float(metric(transient, a, batched=True, burn_in=10)) == 0.0
    assert float(metric(transient, a, batched=True)) > 0.5
    np.testing.assert_allclose(metric(a[0], b[0]), metric(a[:1], b[:1], batched=True))


def test_long_run_spectrum_error():
    a, b = _fields(2), _fields(3)
    metric = tx.metrics.long_run_spectrum_error
    assert float(metric(a, a, batched=True)) == 0.0
    np.testing.assert_allclose(float(metric(2.0 * a, a, batched=True)), np.log10(4.0), rtol=1e-5)
    assert float(metric(a, b, batched=True)) < 0.2


def test_blow_up_fraction():
    a = _fields(4, batch=4)
    metric = tx.metrics.blow_up_fraction
    assert float(metric(a, a, batched=True)) == 0.0
    broken = a.at[0, 5, 0, 0].set(jnp.nan).at[2, 7, 0, 3].set(1e3)
    assert float(metric(broken, a, batched=True)) == 0.5
    assert float(metric(broken, a, batched=True, factor=1e3)) == 0.25
    assert float(metric(broken[0], a[0])) == 1.0


def test_long_run_metric_errors():
    a = _fields(5)
    with pytest.raises(ValueError, match="burn_in"):
        tx.metrics.long_run_distribution_distance(a, a, batched=True, burn_in=50)
    with pytest.raises(TypeError, match="burn_in"):
        tx.metrics.long_run_spectrum_error(a, a, batched=True, burn_in=1.5)
    with pytest.raises(ValueError, match="shape"):
        tx.metrics.long_run_distribution_distance(a, a[:, :10], batched=True)
    with pytest.raises(ValueError, match="factor"):
        tx.metrics.blow_up_fraction(a, a, batched=True, factor=0.0)
    with pytest.raises(ValueError, match="num_quantiles"):
        tx.metrics.long_run_distribution_distance(a, a, batched=True, num_quantiles=1)


# --- adaptive term balancing (ReLoBRaLo) ----------------------------------------------


def _softmax_balance(losses, reference, temperature):
    ratios = np.asarray(losses) / (temperature * np.asarray(reference))
    e = np.exp(ratios - ratios.max())
    return len(losses) * e / e.sum()


@pytest.mark.parametrize("lookback", (1.0, 0.0))
def test_relobralo_matches_a_hand_written_balancing(lookback):
    """Three updates of a balanced composite: the loss is `sum c_i lambda_i L_i` with
    the weights of the ReLoBRaLo recursion, and the gradient has no term through the
    weights."""
    members = [Supervised(1), Supervised(2)]
    c = np.array([1.0, 0.5])
    rule = tx.configuration.ReLoBRaLo(temperature=0.5, smoothing=0.9, lookback_probability=lookback)
    composite = Composite(members, list(c), balancing=rule)
    assert composite.has_state and composite.needs_key == (lookback < 1.0)
    state = composite.init_state()
    weights = np.ones(2)
    first = previous = None
    for update in range(3):
        stepper, data = conv_stepper(10 + update), random_windows(10 + update, 3)
        terms = np.array([float(m(stepper, data)) for m in members])
        if update > 0:
            history = weights if lookback == 1.0 else _softmax_balance(terms, first, 0.5)
            weights = 0.9 * history + 0.1 * _softmax_balance(terms, previous, 0.5)
        first = terms if first is None else first
        previous = terms

        def loss(s):
            return composite.stateful_loss(s, data, state, key=jax.random.key(update))[0]

        expected = value_and_grad(
            lambda s: sum(
                float(ci * wi) * m(s, data) for ci, wi, m in zip(c, weights, members)
            ),
            stepper,
        )
        actual = value_and_grad(loss, stepper)
        np.testing.assert_allclose(actual[0], expected[0], rtol=1e-5)
        for a, e in zip(actual[1], expected[1]):
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-7)
        _, state = composite.stateful_loss(stepper, data, state, key=jax.random.key(update))
        np.testing.assert_allclose(state.weights, weights, rtol=1e-5)


def test_relobralo_state_resumes_exactly_and_plain_calls_use_fixed_weights(tmp_path):
    data = random_windows(20, 6, batch=4)
    composite = Composite(
        [Supervised(1), InvariantMeasureMMD(3)], [1.0, 0.1],
        balancing=tx.configuration.ReLoBRaLo(),
    )
    stepper = conv_stepper(20)
    np.testing.assert_allclose(
        composite(stepper, data),
        Supervised(1)(stepper, data) + 0.1 * InvariantMeasureMMD(3)(stepper, data),
        rtol=1e-6,
    )
    trainer = tx.trainer.ConfigurationTrainer(
        data, composite, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=2,
        checkpoint_path=str(tmp_path / "state.eqx"), checkpoint_every=3, steps_per_dispatch=1,
    )
    full = trainer.train(stepper, jax.random.key(0), spawn_tqdm=False)
    half = trainer.train(stepper, jax.random.key(0), num_steps=3, spawn_tqdm=False)
    loaded = tx.load_train_state(tmp_path / "state.eqx", stepper, trainer.optimizer)
    assert loaded.step == 3
    np.testing.assert_array_equal(
        loaded.opt_state.configuration_state.weights,
        half.opt_state.configuration_state.weights,
    )
    resumed = trainer.train(resume_from=loaded, spawn_tqdm=False)
    np.testing.assert_array_equal(resumed.train_state.loss_history, full.loss_history)
    np.testing.assert_array_equal(
        resumed.opt_state.configuration_state.weights,
        full.opt_state.configuration_state.weights,
    )
    assert not np.allclose(full.opt_state.configuration_state.weights, 1.0)
    # A plain optimizer state given by the user gets a fresh balancing state.
    plain = optax.adam(1e-2).init(eqx.filter(stepper, eqx.is_inexact_array))
    result = trainer.train(stepper, jax.random.key(0), opt_state=plain, spawn_tqdm=False)
    np.testing.assert_array_equal(result.loss_history, full.loss_history)


def test_relobralo_errors():
    with pytest.raises(ValueError, match="temperature"):
        tx.configuration.ReLoBRaLo(temperature=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        tx.configuration.ReLoBRaLo(smoothing=1.0)
    with pytest.raises(ValueError, match="lookback_probability"):
        tx.configuration.ReLoBRaLo(lookback_probability=1.5)
    with pytest.raises(TypeError, match="balancing"):
        Composite([Supervised(1)], [1.0], balancing="relobralo")
    balanced = Composite([Supervised(1)], [1.0], balancing=tx.configuration.ReLoBRaLo())
    with pytest.raises(ValueError, match="own state"):
        Composite([balanced], [1.0], balancing=tx.configuration.ReLoBRaLo())
    with pytest.raises(ValueError, match="needs `key="):
        balanced.stateful_loss(conv_stepper(0), random_windows(0, 2), balanced.init_state())
