"""PDE-Refiner: the configuration's special cases and the sampler against hand-written loops.

The loss and gradient against the hand-written reference, jit, vmap over seeds, the
engine options and resume are covered through the registry (`tests/registry.py`,
cases `PDERefiner*`, `PDERefinerTrainer`).
"""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_value_and_grad_close, value_and_grad
from registry import ode_trajectories, ode_windows, refiner_stepper, velocity_mlp
from test_cli import train_method_in_fresh_process

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import PDERefiner, Supervised
from trainax_fm.experiment._method import METHODS
from trainax_fm.experiment._method_spec import format_method, parse_method


class _OneStep(eqx.Module):
    """The `k = 0` branch as a plain stepper: `model(0, u, 0)`."""

    model: flow.ConditionalVelocity

    def __call__(self, u):
        return self.model(jnp.zeros_like(u), u, 0.0)


def test_zero_refinement_steps_is_one_step_supervised_training():
    model = velocity_mlp(3)
    data = ode_windows(300, batch=5)
    refiner = PDERefiner(0)
    assert not refiner.needs_key
    expected = value_and_grad(lambda m: Supervised(1)(_OneStep(m), data), model)
    actual = value_and_grad(lambda m: refiner(flow.PDERefinerStepper(m, 0), data), model)
    assert_value_and_grad_close(actual, expected, rtol=1e-6, atol=1e-7)


def test_zero_refinement_steps_trains_like_the_one_step_trainer():
    """`PDERefinerTrainer` with `K = 0` and `SupervisedTrainer(num_rollout_steps=1)` of
    `model(0, u, 0)` see the same minibatches and reach the same weights, bit for bit."""
    data = ode_trajectories(3)
    common = dict(optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=4)
    refined = tx.trainer.PDERefinerTrainer(data, num_refinement_steps=0, **common).train(
        flow.PDERefinerStepper(velocity_mlp(6), 0), jax.random.key(1), spawn_tqdm=False)
    one_step = tx.trainer.SupervisedTrainer(data, num_rollout_steps=1, **common).train(
        _OneStep(velocity_mlp(6)), jax.random.key(1), spawn_tqdm=False)
    np.testing.assert_array_equal(refined.loss_history, one_step.loss_history)
    assert bool(eqx.tree_equal(refined.stepper.model, one_step.stepper.model))
    # No refinement step, no noise: the trained stepper rolls out without a key.
    assert tx.rollout(refined.stepper, jnp.ones(3), 2).shape == (2, 3)


def test_both_branches_are_drawn_per_sample(key):
    """With many samples every refinement step occurs, and the loss is their mean."""
    stepper = refiner_stepper(1, K=3, min_noise_std=0.01)
    data = ode_windows(301, batch=64)
    key_step, key_noise = jax.random.split(key)
    k = np.asarray(jax.random.randint(key_step, (64,), 0, 4))
    assert set(k.tolist()) == {0, 1, 2, 3}
    noise = jax.random.normal(key_noise, data[:, 1].shape)
    per_sample = []
    for b in range(64):
        if k[b] == 0:
            out = stepper.model(jnp.zeros(3), data[b, 0], 0.0)
            per_sample.append(np.mean((np.asarray(out) - np.asarray(data[b, 1])) ** 2))
        else:
            sigma = 0.01 ** (k[b] / 3)
            out = stepper.model(data[b, 1] + sigma * noise[b], data[b, 0], k[b] / 3)
            per_sample.append(np.mean((np.asarray(out) - np.asarray(noise[b])) ** 2))
    loss = PDERefiner(3, 0.01)(stepper, data, key=key)
    np.testing.assert_allclose(loss, np.mean(per_sample), rtol=1e-5)


class _Counting(eqx.Module):
    network: eqx.nn.MLP
    calls: list = eqx.field(static=True)

    def __call__(self, x):
        self.calls.append(x.shape)
        return self.network(x)


@pytest.mark.parametrize("K", [0, 1, 3])
def test_stepper_evaluates_the_network_k_plus_one_times(K, key):
    calls = []
    network = velocity_mlp(4).network
    stepper = flow.PDERefinerStepper(flow.ConditionalVelocity(_Counting(network, calls)), K)
    assert stepper.num_function_evaluations == K + 1
    assert stepper.needs_key is (K > 0)
    stepper(jnp.ones(3), key=key)
    assert calls == [(7,)] * (K + 1)


def test_stepper_matches_a_hand_written_refinement_loop(key):
    K, sigma_min = 3, 0.02
    stepper = refiner_stepper(5, K=K, min_noise_std=sigma_min)
    u = jnp.asarray([0.3, -1.2, 0.7])
    model = stepper.model
    estimate = model(jnp.zeros(3), u, 0.0)
    for k, step_key in zip(range(1, K + 1), jax.random.split(key, K)):
        sigma = sigma_min ** (k / K)
        noisy = estimate + sigma * jax.random.normal(step_key, (3,))
        estimate = noisy - sigma * model(noisy, u, k / K)
    np.testing.assert_allclose(stepper(u, key=key), estimate, rtol=1e-6, atol=1e-6)
    # Deterministic given the key, different for another key.
    np.testing.assert_array_equal(stepper(u, key=key), stepper(u, key=key))
    assert not np.allclose(stepper(u, key=key), stepper(u, key=jax.random.key(99)))


def _truth(y):
    return jnp.sin(2.0 * y) + 0.5


def _oracle(sigma_min, first_error=0.0):
    """A network that predicts `truth + first_error` at k = 0 and, at k >= 1, exactly
    the noise in its input: `(u_noisy - truth) / sigma_min ** t`."""

    def network(inputs):
        channels = (inputs.shape[0] - 1) // 2
        noisy, y, t = inputs[:channels], inputs[channels:-1], inputs[-1:]
        truth = _truth(y)
        first = truth + first_error
        return jnp.where(t == 0, first, (noisy - truth) / sigma_min**t)

    return flow.ConditionalVelocity(network)


@pytest.mark.parametrize("first_error", [0.0, 0.3])
def test_refinement_with_an_oracle_noise_predictor_returns_the_target(first_error, key):
    """An exact noise predictor removes every error of the first prediction too."""
    y = jnp.linspace(-1.0, 1.0, 16).reshape(2, 8)  # C = 2 channels, 8 grid points
    stepper = flow.PDERefinerStepper(_oracle(1e-2, first_error), 2, 1e-2)
    np.testing.assert_allclose(stepper(y, key=key), _truth(y), rtol=1e-5, atol=1e-5)
    # Without refinement the first prediction is what comes out.
    one_step = flow.PDERefinerStepper(_oracle(1e-2, first_error), 0, 1e-2)
    np.testing.assert_allclose(one_step(y), _truth(y) + first_error, rtol=1e-6, atol=1e-6)


def test_the_oracle_noise_predictor_has_zero_loss(key):
    """The configuration's target at k >= 1 is the noise the oracle recovers, at k = 0
    the next state: an oracle of the data's map has zero loss."""
    y = jax.random.normal(jax.random.key(7), (6, 1, 2, 8))
    data = jnp.concatenate([y, _truth(y)], axis=1)
    loss = PDERefiner(3, 0.05)(flow.PDERefinerStepper(_oracle(0.05), 3, 0.05), data, key=key)
    assert float(loss) < 1e-8


def test_rollout_and_history(key):
    stepper = refiner_stepper(2)
    trajectory = tx.rollout(stepper, jnp.ones(3), 4, key=key)
    assert trajectory.shape == (4, 3)
    with pytest.raises(ValueError, match="needs a random key"):
        stepper(jnp.ones(3))
    with pytest.raises(ValueError, match="num_input_steps=2"):
        flow.PDERefinerStepper(velocity_mlp(0), 1, num_input_steps=2)(jnp.ones(3), key=key)


@pytest.mark.parametrize(
    "kwargs, kind, match",
    [
        ({"num_refinement_steps": -1}, ValueError, "num_refinement_steps"),
        ({"num_refinement_steps": 1.5}, TypeError, "num_refinement_steps"),
        ({"num_refinement_steps": True}, TypeError, "num_refinement_steps"),
        ({"min_noise_std": 0.0}, ValueError, "min_noise_std"),
        ({"min_noise_std": 1.0}, ValueError, "min_noise_std"),
        ({"min_noise_std": -1e-3}, ValueError, "min_noise_std"),
        ({"min_noise_std": "1e-3"}, TypeError, "min_noise_std"),
        ({"num_input_steps": 0}, ValueError, "num_input_steps"),
    ],
)
def test_bad_arguments_are_named(kwargs, kind, match):
    with pytest.raises(kind, match=match):
        PDERefiner(**kwargs)
    with pytest.raises(kind, match=match):
        flow.PDERefinerStepper(velocity_mlp(0), **kwargs)


def test_bad_models_and_mismatched_steppers_are_rejected(key):
    data = ode_windows(302)
    with pytest.raises(TypeError, match="ConditionalVelocity"):
        flow.PDERefinerStepper(velocity_mlp(0).network)
    with pytest.raises(ValueError, match="step_size_input"):
        flow.PDERefinerStepper(velocity_mlp(0, step_size_input=True))
    with pytest.raises(TypeError, match="ConditionalVelocity"):
        PDERefiner(2)(velocity_mlp(0).network, data, key=key)
    with pytest.raises(ValueError, match=r"\(2, 0.05, 1\)"):
        PDERefiner(3, 0.05)(refiner_stepper(0, K=2, min_noise_std=0.05), data, key=key)
    with pytest.raises(ValueError, match="key"):
        PDERefiner(2)(refiner_stepper(0), data)
    # A bare velocity trains too (the configuration's K and noise levels apply).
    assert jnp.isfinite(PDERefiner(2)(velocity_mlp(0), data, key=key))


# --- the command line -----------------------------------------------------------------


def test_refiner_spec_builds_the_configuration_and_stepper():
    method = parse_method("refiner;3")
    assert (method.num_refinement_steps, method.min_noise_std) == (3, 1e-3)
    assert format_method(parse_method("refiner;2;1e-2")) == "refiner;2;0.01"
    assert eqx.tree_equal(parse_method("refiner;2;0.01").configuration(), PDERefiner(2, 0.01))
    network = lambda channels: eqx.nn.Conv1d(channels, 1, 3, padding=1, key=jax.random.key(0))  # noqa: E731
    stepper = METHODS["refiner"].stepper(method, network, 1, None)
    assert isinstance(stepper, flow.PDERefinerStepper)
    assert (stepper.num_refinement_steps, stepper.min_noise_std) == (3, 1e-3)
    assert stepper.model.network.in_channels == 3  # [u_noisy, u, k/K]


def test_refiner_from_the_command_line(tmp_path):
    """`refiner;2;0.01` in a fresh process: the run completes, is evaluated as a
    stochastic emulator with its 3 network evaluations per step, and the saved
    configuration rebuilds a `PDERefiner` trainer."""
    metrics, trainer = train_method_in_fresh_process(tmp_path, "refiner;2;0.01")
    assert metrics["num_function_evaluations"] == 3
    assert eqx.tree_equal(trainer.loss_configuration, PDERefiner(2, 0.01))
