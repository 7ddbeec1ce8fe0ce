"""Stochastic-interpolant forecasting: the interpolant and its score against closed forms,
the Euler-Maruyama sampler against a hand-written one, the law of the next state on a
Gaussian toy problem with the exact drift (for the trained diffusion and others chosen
after training), the history case, and the argument checks.

The configuration's loss and gradient against a hand-written reference, jit, vmap over
seeds and the trainer's engine contracts run through `tests/registry.py`.
"""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import ref_stochastic_interpolant
from test_cli import train_method_in_fresh_process

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import FlowMatching, StochasticInterpolant
from trainax_fm.experiment import ConfigError
from trainax_fm.experiment._method import METHODS
from trainax_fm.experiment._method_spec import format_method, parse_method
from trainax_fm.flow._interpolant import StochasticInterpolantPath

EPS, TAU, X0 = 0.8, 0.3, 0.5


def mlp_velocity(seed=0, num_channels=3, num_input_steps=1):
    network = eqx.nn.MLP(
        flow.velocity_input_channels(num_channels, num_input_steps),
        num_channels,
        8,
        2,
        activation=jax.nn.tanh,
        key=jax.random.key(seed),
    )
    return flow.ConditionalVelocity(network)


def gaussian_moments(s, quadratic, eps=EPS, tau=TAU, x0=X0):
    """Law of `I_s` when `x1 = x0 + tau * xi`: mean, variance, and the covariance of
    the regression target's noise part with `I_s`, by hand."""
    beta, beta_dot = (s * s, 2 * s) if quadratic else (s, 1.0)
    sigma, sigma_dot = eps * (1 - s), -eps
    mean = (1 - s + beta) * x0
    variance = beta**2 * tau**2 + sigma**2 * s
    covariance = beta * beta_dot * tau**2 + s * sigma * sigma_dot
    return mean, variance, covariance, beta_dot


class ExactGaussianDrift(eqx.Module):
    """The exact drift `E[dI/ds | I_s = x, x0]` for `x1 = x0 + tau * xi` on a scalar
    state: `(beta' - 1) x0 + cov / var * (x - mean)`, the ratio divided through by `s`
    so that it is finite at `s = 0`. Input `[x, x0, s]` as a flow network sees it."""

    quadratic: bool = eqx.field(static=True)

    def __call__(self, inputs):
        x, x0, s = inputs[0], inputs[1], inputs[2]
        if self.quadratic:
            beta_over_s, beta, beta_dot = s, s * s, 2 * s
        else:
            beta_over_s, beta, beta_dot = 1.0, s, 1.0
        sigma = EPS * (1 - s)
        ratio = (beta_over_s * beta_dot * TAU**2 - sigma * EPS) / (
            beta_over_s * beta * TAU**2 + sigma**2
        )
        return jnp.stack([(beta_dot - 1) * x0 + ratio * (x - (1 - s + beta) * x0)])


# --- the interpolant ------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["quadratic", "linear"])
def test_interpolant_ends_at_both_states_and_its_target_is_its_time_derivative(schedule):
    path = StochasticInterpolantPath(EPS, schedule)
    rng = np.random.default_rng(0)
    x0, x1, z = (jnp.asarray(rng.standard_normal(4), jnp.float32) for _ in range(3))
    np.testing.assert_allclose(path.interpolant(x0, x1, z, 0.0), x0, atol=1e-7)
    np.testing.assert_allclose(path.interpolant(x0, x1, z, 1.0), x1, atol=1e-7)
    # d/ds of the interpolant at fixed z, minus the Wiener part's own derivative
    # sigma(s) d sqrt(s)/ds (the Ito increment that the SDE's dW supplies):
    s, h = 0.37, 1e-3
    x0d, x1d, zd = (np.asarray(a, np.float64) for a in (x0, x1, z))
    beta = (lambda r: r * r) if schedule == "quadratic" else (lambda r: r)

    def interpolant(r):
        return (1 - r) * x0d + beta(r) * x1d + EPS * (1 - r) * np.sqrt(r) * zd

    derivative = (interpolant(s + h) - interpolant(s - h)) / (2 * h)
    wiener_part = EPS * (1 - s) * zd / (2 * np.sqrt(s))
    np.testing.assert_allclose(
        path.drift_target(x0, x1, z, s), derivative - wiener_part, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("schedule", ["quadratic", "linear"])
def test_score_from_the_drift_equals_the_gaussian_score(schedule):
    """Where the exact drift is known, the score the sampler derives from it is the
    score of the Gaussian law of `I_s`, `-(x - mean) / var`."""
    quadratic = schedule == "quadratic"
    path = StochasticInterpolantPath(EPS, schedule)
    drift = flow.ConditionalVelocity(ExactGaussianDrift(quadratic))
    x0 = jnp.array([X0])
    for s in (0.05, 0.3, 0.8, 0.97):
        mean, variance, _, _ = gaussian_moments(s, quadratic)
        for x in (-1.0, 0.2, 1.3):
            xs = jnp.array([x])
            score = path.score(drift(xs, x0, s), xs, x0, s)
            np.testing.assert_allclose(score, [-(x - mean) / variance], rtol=2e-4)
    # at the point mass the sampler needs no correction
    assert float(path.score(drift(x0, x0, 0.0), x0, x0, 0.0)[0]) == 0.0


# --- the sampler ------------------------------------------------------------------------


def hand_written_sampler(velocity, y, key, K, eps, g, quadratic=True):
    """Euler-Maruyama from the current state, the score by the formula of Chen et al.
    written out for these schedules; the first step keeps the trained diffusion."""
    x0 = y[-3:]
    x = x0
    keys = jax.random.split(key, K)
    h = 1.0 / K
    for k in range(K):
        s = k * h
        b = velocity(x, y, s)
        sigma = eps * (1 - s)
        diffusion = sigma
        if g is not None and k > 0:
            beta, beta_dot = (s * s, 2 * s) if quadratic else (s, 1.0)
            if g == "follmer":
                diffusion = np.sqrt(2 * s * sigma * (beta_dot * sigma + beta * eps) / beta
                                    - sigma**2)
            else:
                diffusion = g * (1 - s)
            score = (beta * b - beta_dot * x + (beta_dot * (1 - s) + beta) * x0) / (
                s * sigma * (beta_dot * sigma + beta * eps)
            )
            b = b + 0.5 * (diffusion**2 - sigma**2) * score
        x = x + h * b + diffusion * jnp.sqrt(h) * jax.random.normal(keys[k], x.shape)
    return x


@pytest.mark.parametrize("g", [None, 0.0, 0.4, 1.7, "follmer"])
@pytest.mark.parametrize("schedule", ["quadratic", "linear"])
def test_sampler_matches_a_hand_written_euler_maruyama(g, schedule, key):
    velocity = mlp_velocity(3, num_input_steps=2)
    y = jnp.asarray(np.random.default_rng(1).standard_normal(6), jnp.float32)
    for unroll in (True, False):
        stepper = flow.StochasticInterpolantStepper(
            velocity, 5, noise_scale=EPS, beta_schedule=schedule,
            sampling_noise_scale=g, num_input_steps=2, unroll=unroll,
        )
        expected = hand_written_sampler(velocity, y, key, 5, EPS, g, schedule == "quadratic")
        np.testing.assert_allclose(stepper(y, key=key), expected, rtol=1e-5, atol=1e-6)
    assert stepper.num_function_evaluations == 5


def test_zero_sampling_diffusion_is_the_probability_flow_ode_after_the_first_step(key):
    """With `g = 0` every step after the first is the deterministic ODE
    `dx/ds = b - sigma^2 / 2 * score` (hand-written below, no noise drawn); only the
    first step, leaving the point mass, draws noise, with the trained diffusion."""
    velocity = mlp_velocity(4)
    y = jnp.array([0.3, -0.2, 0.9])
    stepper = flow.StochasticInterpolantStepper(
        velocity, 6, noise_scale=EPS, sampling_noise_scale=0.0
    )
    h = 1 / 6
    first = jax.random.normal(jax.random.split(key, 6)[0], (3,))
    x = y + h * velocity(y, y, 0.0) + EPS * np.sqrt(h) * first
    for k in range(1, 6):
        s = k * h
        b = velocity(x, y, s)
        sigma = EPS * (1 - s)
        score = (s * s * b - 2 * s * x + (2 * s * (1 - s) + s * s) * y) / (
            s * sigma * (2 * s * sigma + s * s * EPS)
        )
        x = x + h * (b - 0.5 * sigma**2 * score)
    np.testing.assert_allclose(stepper(y, key=key), x, rtol=1e-5, atol=1e-6)


def samples(stepper, num_samples=4000):
    keys = jax.random.split(jax.random.key(7), num_samples)
    return jax.vmap(lambda k: stepper(jnp.array([X0]), key=k))(keys)


@pytest.mark.parametrize("g", [None, EPS, 2 * EPS, "follmer"])
def test_exact_drift_samples_the_law_of_the_next_state(g):
    """`x1 = x0 + tau * xi`: with the exact drift the sampler reproduces mean `x0` and
    variance `tau^2` for the trained diffusion and for larger ones chosen after
    training (the drift correction at work), 100 steps, 4000 samples."""
    velocity = flow.ConditionalVelocity(ExactGaussianDrift(True))
    stepper = flow.StochasticInterpolantStepper(
        velocity, 100, noise_scale=EPS, sampling_noise_scale=g, unroll=False
    )
    x = samples(stepper)
    assert abs(float(x.mean()) - X0) < 3 * TAU / np.sqrt(4000) + 0.01
    np.testing.assert_allclose(float(x.var()), TAU**2, rtol=0.06)


def test_without_the_drift_correction_another_diffusion_gets_the_spread_wrong():
    """The correction is what keeps the law: the same SDE with `g = 2 eps` but the
    uncorrected drift overshoots the variance (the test above cannot pass by luck)."""
    velocity = flow.ConditionalVelocity(ExactGaussianDrift(True))

    def uncorrected(y, *, key):
        keys = jax.random.split(key, 100)
        h = 0.01

        def step(k, x):
            s = k * h
            noise = jax.random.normal(keys[k], x.shape)
            return x + h * velocity(x, y, s) + 2 * EPS * (1 - s) * jnp.sqrt(h) * noise

        return jax.lax.fori_loop(0, 100, step, y)

    x = samples(uncorrected, 2000)
    assert float(x.var()) > 2 * TAU**2


def test_deterministic_flow_from_the_point_mass_would_collapse():
    """Why the first step keeps the trained diffusion: an SDE whose first step drew no
    noise would stay at one forecast (the probability-flow drift is singular at the
    point mass). With the first step stochastic the ODE spreads the samples."""
    velocity = flow.ConditionalVelocity(ExactGaussianDrift(True))
    stepper = flow.StochasticInterpolantStepper(
        velocity, 50, noise_scale=EPS, sampling_noise_scale=0.0, unroll=False
    )
    x = samples(stepper, 2000)
    # Euler's error on the singular early steps does not vanish with K for g = 0 (the
    # docs quote it): the spread is right in size, not exact.
    assert 0.8 * TAU**2 < float(x.var()) < 1.5 * TAU**2


@pytest.mark.parametrize("schedule", ["quadratic", "linear"])
def test_follmer_diffusion_is_the_papers_formula(schedule):
    """`g_F^2 = 2 s sigma (beta' sigma - beta sigma') / beta - sigma^2`, finite at 0."""
    path = StochasticInterpolantPath(EPS, schedule)
    for s in (1e-3, 0.2, 0.5, 0.9, 0.999):
        beta, beta_dot = (s * s, 2 * s) if schedule == "quadratic" else (s, 1.0)
        sigma = EPS * (1 - s)
        expected = np.sqrt(2 * s * sigma * (beta_dot * sigma + beta * EPS) / beta - sigma**2)
        np.testing.assert_allclose(path.follmer_diffusion(s), expected, rtol=1e-6)
        assert float(path.follmer_diffusion(s)) >= sigma  # never below the trained one
    np.testing.assert_allclose(
        path.follmer_diffusion(0.0), EPS * (np.sqrt(3) if schedule == "quadratic" else 1.0)
    )


def test_with_sampling_noise_scale_keeps_the_trained_drift(key):
    stepper = flow.StochasticInterpolantStepper(mlp_velocity(), 3, noise_scale=0.5)
    other = stepper.with_sampling_noise_scale(1.5)
    assert other.velocity is stepper.velocity and other.path == stepper.path
    assert other.sampling_noise_scale == 1.5 and other.num_steps == 3
    same = stepper.with_sampling_noise_scale(0.5)
    # g = sigma: the correction vanishes, the samples equal the trained SDE's
    np.testing.assert_allclose(
        same(jnp.ones(3), key=key), stepper(jnp.ones(3), key=key), rtol=1e-5, atol=1e-6
    )


def test_rollout_of_the_stepper_samples_trajectories(key):
    stepper = flow.StochasticInterpolantStepper(mlp_velocity(), 2)
    trajectory = tx.rollout(stepper, jnp.ones(3), 4, key=key)
    assert trajectory.shape == (4, 3) and bool(jnp.all(jnp.isfinite(trajectory)))
    other = tx.rollout(stepper, jnp.ones(3), 4, key=jax.random.key(1))
    assert not np.allclose(trajectory, other)


# --- the configuration ------------------------------------------------------------------


def test_history_of_two_states_conditions_on_both_and_starts_from_the_last(key):
    velocity = mlp_velocity(5, num_input_steps=2)
    data = jnp.asarray(np.random.default_rng(2).standard_normal((4, 3, 3)), jnp.float32)
    configuration = StochasticInterpolant(num_input_steps=2, noise_scale=EPS)
    stepper = flow.StochasticInterpolantStepper(
        velocity, 2, noise_scale=EPS, num_input_steps=2
    )
    for model in (velocity, stepper):
        loss, grad = eqx.filter_jit(
            eqx.filter_value_and_grad(lambda m: configuration(m, data, key=key))
        )(model)
        ref, ref_grad = eqx.filter_jit(
            eqx.filter_value_and_grad(
                lambda m: ref_stochastic_interpolant(m, data, key, EPS, True, 2)
            )
        )(model)
        np.testing.assert_allclose(loss, ref, rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(ref_grad)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert configuration.required_window_length == 3 and configuration.needs_key


@pytest.mark.slow
def test_trained_drift_learns_the_toy_law():
    """A few thousand updates of a tiny MLP on `x1 = x0 + tau * xi` come close to the
    exact drift's loss floor and sample a spread near `tau`."""
    import optax

    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1, 1, (64, 1, 1))
    data = jnp.asarray(
        np.concatenate([x0, x0 + TAU * rng.standard_normal((64, 1, 1))], axis=1), jnp.float32
    )
    network = eqx.nn.MLP(3, 1, 32, 2, activation=jax.nn.tanh, key=jax.random.key(0))
    stepper = flow.StochasticInterpolantStepper(
        flow.ConditionalVelocity(network), 50, noise_scale=EPS, unroll=False
    )
    trainer = tx.trainer.StochasticInterpolantTrainer(
        data, optimizer=optax.adam(3e-3), num_training_steps=3000, batch_size=64,
        noise_scale=EPS,
    )
    trained, _ = trainer(stepper, jax.random.key(1))
    x = samples(trained, 2000)
    assert abs(float(x.mean()) - X0) < 0.08
    assert 0.5 * TAU < float(x.std()) < 1.5 * TAU


# --- argument checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"noise_scale": 0.0}, ValueError, "noise_scale"),
        ({"noise_scale": -1.0}, ValueError, "noise_scale"),
        ({"noise_scale": float("nan")}, ValueError, "noise_scale"),
        ({"noise_scale": "1"}, TypeError, "noise_scale"),
        ({"sampling_noise_scale": -0.1}, ValueError, "sampling_noise_scale"),
        ({"sampling_noise_scale": True}, TypeError, "sampling_noise_scale"),
        ({"sampling_noise_scale": "föllmer"}, ValueError, "sampling_noise_scale"),
        ({"beta_schedule": "cubic"}, ValueError, "beta_schedule"),
    ],
)
def test_stepper_rejects_bad_scales_and_schedules(kwargs, error, match):
    with pytest.raises(error, match=match):
        flow.StochasticInterpolantStepper(mlp_velocity(), 2, **kwargs)


def test_stepper_and_configuration_errors(key):
    velocity = mlp_velocity()
    with pytest.raises(ValueError, match="num_steps"):
        flow.StochasticInterpolantStepper(velocity, 0)
    with pytest.raises(TypeError, match="ConditionalVelocity"):
        flow.StochasticInterpolantStepper(velocity.network, 2)
    with pytest.raises(TypeError, match="Gaussian noise"):
        flow.StochasticInterpolantStepper(flow.FlowMatchingStepper(velocity, 2), 2)
    with pytest.raises(ValueError, match="step_size_input"):
        flow.StochasticInterpolantStepper(
            flow.ConditionalVelocity(velocity.network, step_size_input=True), 2
        )
    stepper = flow.StochasticInterpolantStepper(velocity, 2, noise_scale=0.5)
    with pytest.raises(ValueError, match="needs a random key"):
        stepper(jnp.ones(3))
    with pytest.raises(ValueError, match="multiple of 2"):
        flow.StochasticInterpolantStepper(velocity, 2, num_input_steps=2)(
            jnp.ones(3), key=key
        )
    data = jnp.ones((2, 2, 3))
    with pytest.raises(ValueError, match="noise_scale=0.5"):
        StochasticInterpolant(noise_scale=1.0)(stepper, data, key=key)
    with pytest.raises(ValueError, match="num_input_steps"):
        StochasticInterpolant(num_input_steps=2, noise_scale=0.5)(
            stepper, jnp.ones((2, 3, 3)), key=key
        )
    with pytest.raises(ValueError, match="key"):
        StochasticInterpolant()(velocity, data)
    with pytest.raises(ValueError, match="noise_scale"):
        StochasticInterpolant(noise_scale=0)
    with pytest.raises(TypeError, match="time_level_loss"):
        StochasticInterpolant(time_level_loss="mse")
    # the other flow configurations do not take the interpolant's stepper
    with pytest.raises(TypeError, match="stepper"):
        FlowMatching()(stepper, data, key=key)


# --- the command line -----------------------------------------------------------------


def test_si_spec_parses_formats_and_builds_its_stepper():
    method = parse_method("si;8")
    assert (method.num_sampling_steps, method.sampling_noise_scale) == (8, None)
    assert format_method(method) == "si;8"
    assert format_method(parse_method("si;4;1")) == "si;4;1.0"
    assert parse_method("si;4;0").sampling_noise_scale == 0.0
    assert parse_method("si;4;follmer").sampling_noise_scale == "follmer"
    assert format_method(parse_method("si;4;follmer")) == "si;4;follmer"
    assert method.is_flow_matching and method.required_window_length == 2
    assert eqx.tree_equal(method.configuration(), StochasticInterpolant())
    stepper = METHODS["si"].stepper(
        parse_method("si;4;0.5"),
        lambda c: eqx.nn.Conv1d(c, 1, 3, padding=1, key=jax.random.key(0)),
        1,
        None,
    )
    assert isinstance(stepper, flow.StochasticInterpolantStepper)
    assert (stepper.num_function_evaluations, stepper.sampling_noise_scale) == (4, 0.5)
    for bad in ("si;4;-1", "si;4;x", "si;0", "si;4;Follmer"):
        with pytest.raises(ConfigError):
            parse_method(bad)


def test_si_from_the_command_line(tmp_path):
    """`si;2;0.5` in a fresh process: the run completes, is evaluated as a stochastic
    emulator with 2 network evaluations per step, and the saved configuration rebuilds
    a `StochasticInterpolant` trainer."""
    metrics, trainer = train_method_in_fresh_process(tmp_path, "si;2;0.5")
    assert metrics["num_function_evaluations"] == 2
    assert eqx.tree_equal(trainer.loss_configuration, StochasticInterpolant())
