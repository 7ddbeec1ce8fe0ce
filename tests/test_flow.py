"""Tests of `trainax_fm.flow`: velocity wrapper, solvers, flow map, stochastic steppers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from trainax_fm import flow

KEY = jax.random.key(0)
METHODS = ("euler", "midpoint", "heun")
EXPECTED_NFE = {"euler": 1, "midpoint": 2, "heun": 2}


# --- tiny networks ------------------------------------------------------------------


def mlp(num_channels=3, num_input_steps=1, step_size_input=False, seed=0):
    in_features = flow.velocity_input_channels(
        num_channels, num_input_steps, step_size_input=step_size_input
    )
    return eqx.nn.MLP(in_features, num_channels, 8, 2, key=jax.random.key(seed))


def conv(num_channels=1, num_input_steps=1, seed=0):
    in_channels = flow.velocity_input_channels(num_channels, num_input_steps)
    return eqx.nn.Conv1d(
        in_channels, num_channels, 3, padding=1, padding_mode="CIRCULAR",
        key=jax.random.key(seed),
    )


class CountingNetwork(eqx.Module):
    """Wraps a network and counts calls in a Python list (works un-jitted / unrolled)."""

    network: eqx.Module
    counter: list = eqx.field(static=True)

    def __call__(self, z):
        self.counter.append(1)
        return self.network(z)


class CallbackCountingNetwork(eqx.Module):
    """Counts evaluations at run time with `jax.debug.callback` (works inside loops)."""

    network: eqx.Module
    counter: list = eqx.field(static=True)

    def __call__(self, z):
        jax.debug.callback(lambda: self.counter.append(1), ordered=True)
        return self.network(z)


class ExactGaussianVelocity(eqx.Module):
    """Exact FM velocity for y ~ anything, x1 | y ~ N(a y, s^2), x_t = t x1 + (1-t) x0."""

    a: float
    s: float

    def __call__(self, z):
        x, y, t = z[0], z[1], z[2]
        mean = self.a * y
        variance = t**2 * self.s**2 + (1 - t) ** 2
        v = mean + (t * self.s**2 - (1 - t)) * (x - t * mean) / variance
        return v[None]


# --- velocity ----------------------------------------------------------------------


def test_velocity_input_channels():
    assert flow.velocity_input_channels(3) == 7
    assert flow.velocity_input_channels(3, 2) == 10
    assert flow.velocity_input_channels(1, 1, step_size_input=True) == 4
    with pytest.raises(TypeError, match="num_channels"):
        flow.velocity_input_channels(1.5)


@pytest.mark.parametrize("shape", [(2,), (2, 5), (2, 4, 3)])
def test_conditioning_layout(shape):
    velocity = flow.ConditionalVelocity(lambda z: z[: shape[0]])
    x = jax.random.normal(KEY, shape)
    y = jax.random.normal(jax.random.key(1), (2 * shape[0],) + shape[1:])
    z = velocity.network_input(x, y, 0.25)
    assert z.shape == (3 * shape[0] + 1,) + shape[1:]
    np.testing.assert_array_equal(z[: shape[0]], x)
    np.testing.assert_array_equal(z[shape[0] : 3 * shape[0]], y)
    np.testing.assert_array_equal(z[-1], jnp.full(shape[1:], 0.25))
    with_d = flow.ConditionalVelocity(lambda z: z[: shape[0]], step_size_input=True)
    z = with_d.network_input(x, y, 0.25, 0.5)
    np.testing.assert_array_equal(z[-2], jnp.full(shape[1:], 0.25))
    np.testing.assert_array_equal(z[-1], jnp.full(shape[1:], 0.5))
    np.testing.assert_array_equal(velocity(x, y, 0.25), x)
    # unconditional use
    assert velocity.network_input(x, None, 0.1).shape == (shape[0] + 1,) + shape[1:]


def test_velocity_errors():
    velocity = flow.ConditionalVelocity(mlp(3))
    with pytest.raises(ValueError, match="spatial"):
        velocity(jnp.ones((3, 4)), jnp.ones((3, 5)), 0.1)
    with pytest.raises(TypeError, match="7 input channels"):
        flow.ConditionalVelocity(mlp(2))(jnp.ones(3), jnp.ones(3), 0.1)
    with pytest.raises(ValueError, match="output channels"):
        flow.ConditionalVelocity(lambda z: z)(jnp.ones(3), jnp.ones(3), 0.1)
    with pytest.raises(ValueError, match="step size"):
        flow.ConditionalVelocity(mlp(3, step_size_input=True), step_size_input=True)(
            jnp.ones(3), jnp.ones(3), 0.1
        )
    with pytest.raises(ValueError, match="scalar"):
        velocity(jnp.ones(3), jnp.ones(3), jnp.ones(2))
    with pytest.raises(TypeError, match="callable"):
        flow.ConditionalVelocity(3)


# --- solvers -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_steps", [1, 3])
def test_solver_counts_python(method, num_steps):
    counter = []
    velocity = flow.ConditionalVelocity(CountingNetwork(mlp(3), counter))
    x0, y = jnp.ones(3), jnp.zeros(3)
    flow.integrate(velocity, x0, y, num_steps, method=method, unroll=True)
    expected = flow.num_function_evaluations(velocity, num_steps, method)
    assert expected == EXPECTED_NFE[method] * num_steps
    assert len(counter) == expected


@pytest.mark.parametrize("method", METHODS)
def test_solver_counts_at_run_time_in_loop(method):
    counter = []
    velocity = flow.ConditionalVelocity(CallbackCountingNetwork(mlp(3), counter))
    stepper = flow.FlowMatchingStepper(velocity, 4, method, unroll=False)
    jax.block_until_ready(stepper(jnp.zeros(3), key=KEY))
    jax.effects_barrier()
    assert len(counter) == stepper.num_function_evaluations == EXPECTED_NFE[method] * 4


def test_flow_map_counts():
    counter = []
    velocity = flow.ConditionalVelocity(CountingNetwork(mlp(3), counter))
    flow_map = flow.FlowMap(velocity)
    # the correction copies the network (sharing the counter)
    flow.integrate(flow_map, jnp.ones(3), jnp.zeros(3), 3, unroll=True)
    assert len(counter) == 6 == flow.num_function_evaluations(flow_map, 3)
    assert flow.FlowMapStepper(flow_map, 3).num_function_evaluations == 6


class LinearDecay(eqx.Module):
    def __call__(self, z):
        return -z[:1]


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_solver_order(method, order):
    velocity = flow.ConditionalVelocity(LinearDecay())
    x0 = jnp.ones(1, dtype=jnp.float32)

    def error(n):
        x1 = flow.integrate(velocity, x0, None, n, method=method)
        return abs(float(x1[0]) - np.exp(-1.0))

    ratio = error(8) / error(16)
    assert 2**order * 0.8 < ratio < 2**order * 1.25


def test_integrate_time_interval():
    velocity = flow.ConditionalVelocity(lambda z: jnp.ones(1))
    x = flow.integrate(velocity, jnp.zeros(1), None, 4, t0=0.25, t1=0.75)
    np.testing.assert_allclose(x, 0.5, rtol=1e-6)


def test_bad_method():
    with pytest.raises(ValueError, match="euler"):
        flow.integrate(flow.ConditionalVelocity(mlp(3)), jnp.ones(3), jnp.ones(3), 2, method="rk4")
    step_velocity = flow.ConditionalVelocity(mlp(3, step_size_input=True), step_size_input=True)
    with pytest.raises(ValueError, match="euler"):
        flow.FlowMatchingStepper(step_velocity, 2, "heun")


# --- exact Gaussian velocity: sampling reproduces the conditional law ---------------


@pytest.mark.parametrize("method,num_steps", [("euler", 200), ("heun", 20)])
def test_exact_velocity_samples_conditional_gaussian(method, num_steps):
    a, s, y_value = 0.8, 0.5, 1.5
    stepper = flow.FlowMatchingStepper(
        flow.ConditionalVelocity(ExactGaussianVelocity(a, s)), num_steps, method
    )
    y = jnp.full((4000, 1), y_value)
    samples = jax.jit(jax.vmap(lambda yi, k: stepper(yi, key=k)))(
        y, jax.random.split(KEY, 4000)
    )
    assert abs(float(samples.mean()) - a * y_value) < 0.04
    assert abs(float(samples.std()) - s) < 0.03


# --- extending the input layer and the flow map ------------------------------------


def _network(name):
    k = jax.random.key(3)
    if name.startswith("pdq"):
        pdq = pytest.importorskip("pdequinox")
        if name == "pdq_convnet":
            return pdq.arch.ConvNet(1, 3, 1, hidden_channels=4, depth=1, key=k), (3, 16)
        return pdq.arch.ClassicUNet(1, 3, 1, hidden_channels=4, num_levels=1, key=k), (3, 16)
    if name == "mlp":
        return mlp(3), (7,)
    if name == "linear":
        return eqx.nn.Linear(7, 3, key=k), (7,)
    if name == "conv1d":
        return conv(1), (3, 16)
    if name == "conv2d":
        return eqx.nn.Conv2d(3, 1, 3, padding=1, key=k), (3, 8, 8)
    layers = [
        eqx.nn.Conv1d(3, 4, 1, key=k),
        eqx.nn.Lambda(jnp.tanh),
        eqx.nn.Conv1d(4, 1, 1, key=k),
    ]
    return eqx.nn.Sequential(layers), (3, 16)


@pytest.mark.parametrize("name", ["mlp", "linear", "conv1d", "conv2d", "sequential",
                                  "pdq_convnet"])
def test_extend_input_channels_ignores_new_channel(name):
    network, shape = _network(name)
    widened = flow.extend_input_channels(network)
    z = jax.random.normal(KEY, shape)
    extra = jax.random.normal(jax.random.key(9), (1,) + shape[1:])

    @eqx.filter_jit
    def both(network, widened):
        return network(z), widened(jnp.concatenate([z, extra]))

    original, new = both(network, widened)
    np.testing.assert_allclose(new, original, rtol=1e-5, atol=1e-6)


class NormFirst(eqx.Module):
    norm: eqx.nn.LayerNorm
    linear: eqx.nn.Linear

    def __call__(self, z):
        return self.linear(self.norm(z))


def test_extend_input_channels_errors():
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="Supported"):
        flow.extend_input_channels(NormFirst(eqx.nn.LayerNorm(3), eqx.nn.Linear(3, 3, key=k)))
    with pytest.raises(ValueError, match="groups"):
        flow.extend_input_channels(eqx.nn.Conv1d(4, 2, 1, groups=2, key=k))
    with pytest.raises(ValueError, match="scalar"):
        flow.extend_input_channels(eqx.nn.Linear("scalar", 2, key=k))
    with pytest.raises(ValueError, match="no parameter"):
        flow.extend_input_channels(eqx.nn.Lambda(jnp.tanh))


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_flow_map_is_euler_step_at_init(kind):
    if kind == "mlp":
        velocity = flow.ConditionalVelocity(mlp(3))
        x, y = jax.random.normal(KEY, (3,)), jax.random.normal(jax.random.key(1), (3,))
    else:
        velocity = flow.ConditionalVelocity(conv(1))
        x = jax.random.normal(KEY, (1, 16))
        y = jax.random.normal(jax.random.key(1), (1, 16))
    flow_map = flow.FlowMap(velocity)
    assert flow_map.correction.step_size_input
    for t, d in [(0.0, 1.0), (0.3, 0.5), (0.9, 0.1), (0.5, 0.0)]:
        euler = x + d * velocity(x, y, t)
        np.testing.assert_allclose(flow_map(x, y, t, d), euler, rtol=1e-5, atol=1e-6)
    # F_0 is exactly the identity
    np.testing.assert_array_equal(flow_map(x, y, 0.4, 0.0), x)


def test_flow_map_derivative_in_d_is_velocity():
    velocity = flow.ConditionalVelocity(mlp(3))
    flow_map = flow.FlowMap(velocity)
    # perturb phi so the check is not trivial
    flow_map = eqx.tree_at(
        lambda m: m.correction.network.layers[-1].bias,
        flow_map,
        replace_fn=lambda b: b + 1.0,
    )
    x, y = jnp.ones(3), jnp.zeros(3)
    derivative = jax.jacfwd(lambda d: flow_map(x, y, 0.2, d))(0.0)
    np.testing.assert_allclose(derivative, velocity(x, y, 0.2), rtol=1e-5, atol=1e-6)


def test_flow_map_freezes_velocity():
    flow_map = flow.FlowMap(flow.ConditionalVelocity(mlp(3)))
    x, y = jnp.ones(3), jnp.zeros(3)
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x, y, 0.3, 0.5) ** 2))(flow_map)
    velocity_grads = jax.tree_util.tree_leaves(grads.velocity)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in velocity_grads)
    correction_grads = jax.tree_util.tree_leaves(grads.correction)
    assert any(float(jnp.abs(g).max()) > 0.0 for g in correction_grads)


def test_flow_map_optimizer_keeps_velocity():
    flow_map = flow.FlowMap(flow.ConditionalVelocity(mlp(3)))
    optimizer = flow.flow_map_optimizer(optax.adamw(1e-2, weight_decay=0.5))
    params = eqx.filter(flow_map, eqx.is_inexact_array)
    state = optimizer.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = optimizer.update(grads, state, params)
    new = eqx.apply_updates(flow_map, updates)
    for old, upd in zip(jax.tree_util.tree_leaves(flow_map.velocity),
                        jax.tree_util.tree_leaves(new.velocity)):
        np.testing.assert_array_equal(old, upd)
    changed = [
        not np.array_equal(o, n)
        for o, n in zip(jax.tree_util.tree_leaves(eqx.filter(flow_map.correction, eqx.is_array)),
                        jax.tree_util.tree_leaves(eqx.filter(new.correction, eqx.is_array)))
    ]
    assert all(changed)


def test_flow_map_construction_errors():
    velocity = flow.ConditionalVelocity(mlp(3))
    with pytest.raises(TypeError, match="ConditionalVelocity"):
        flow.FlowMap(mlp(3))
    with pytest.raises(TypeError, match="step_size_input"):
        flow.FlowMap(velocity, velocity)
    with pytest.raises(ValueError, match="plain velocity"):
        flow.FlowMap(flow.with_step_size_input(velocity))


def test_with_step_size_input_matches_velocity():
    velocity = flow.ConditionalVelocity(mlp(3))
    student = flow.with_step_size_input(velocity)
    x, y = jnp.ones(3), jnp.arange(3.0)
    for d in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(student(x, y, 0.3, d), velocity(x, y, 0.3), rtol=1e-6)


# --- stochastic steppers -----------------------------------------------------------


def _steppers(num_input_steps=1):
    velocity = flow.ConditionalVelocity(mlp(3, num_input_steps))
    return [
        flow.FlowMatchingStepper(velocity, 3, "midpoint", num_input_steps=num_input_steps),
        flow.FlowMapStepper(flow.FlowMap(velocity), 2, num_input_steps=num_input_steps),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_stepper_needs_key(index):
    stepper = _steppers()[index]
    assert stepper.needs_key is True
    with pytest.raises(ValueError, match="key"):
        stepper(jnp.ones(3))
    with pytest.raises(ValueError, match="key"):
        tx.rollout(stepper, jnp.ones(3), 2)


@pytest.mark.parametrize("index", [0, 1])
def test_stepper_rollout(index):
    stepper = _steppers()[index]
    out = stepper(jnp.ones(3), key=KEY)
    assert out.shape == (3,)
    # different keys give different samples; same key the same
    np.testing.assert_array_equal(out, stepper(jnp.ones(3), key=KEY))
    assert not np.allclose(out, stepper(jnp.ones(3), key=jax.random.key(1)))
    trajectory = tx.rollout(stepper, jnp.ones(3), 4, key=KEY)
    assert trajectory.shape == (4, 3)
    assert np.all(np.isfinite(trajectory))


def network_input(x, y, t, d=None):
    """`[x, y, t * ones(, d * ones)]` on the channel axis, written out."""
    constants = [t] if d is None else [t, d]
    channels = [jnp.full((1,) + x.shape[1:], c, x.dtype) for c in constants]
    return jnp.concatenate([x, y] + channels, axis=0)


def hand_euler_step(network, x, y, t, d):
    return x + d * network(network_input(x, y, t))


def hand_midpoint_step(network, x, y, t, d):
    half = x + 0.5 * d * network(network_input(x, y, t))
    return x + d * network(network_input(half, y, t + 0.5 * d))


def hand_heun_step(network, x, y, t, d):
    k1 = network(network_input(x, y, t))
    k2 = network(network_input(x + d * k1, y, t + d))
    return x + 0.5 * d * (k1 + k2)


HAND_STEPS = {"euler": hand_euler_step, "midpoint": hand_midpoint_step, "heun": hand_heun_step}


def hand_sample(method, network, y, noise, num_steps):
    """`num_steps` equal steps of `method` from the noise at t = 0 to t = 1."""
    d = 1.0 / num_steps
    x = noise
    for k in range(num_steps):
        x = HAND_STEPS[method](network, x, y, k * d, d)
    return x


def hand_flow_map_sample(velocity_network, correction_network, y, noise, num_steps):
    d = 1.0 / num_steps
    x = noise
    for k in range(num_steps):
        t = k * d
        v = velocity_network(network_input(x, y, t))
        phi = correction_network(network_input(x, y, t, d))
        x = x + d * v + d**2 * (phi - v)
    return x


def test_stepper_history():
    midpoint, flow_map = _steppers(num_input_steps=2)
    ic = jnp.stack([jnp.linspace(-1.0, 1.0, 3), jnp.array([0.5, -0.2, 0.3])])
    hand_samplers = (
        (midpoint, lambda y, noise: hand_sample(
            "midpoint", midpoint.velocity.network, y, noise, midpoint.num_steps
        )),
        (flow_map, lambda y, noise: hand_flow_map_sample(
            flow_map.flow_map.velocity.network, flow_map.flow_map.correction.network,
            y, noise, flow_map.num_steps,
        )),
    )
    for stepper, sample in hand_samplers:
        trajectory = tx.rollout(stepper, ic, 3, key=KEY, num_input_steps=2)
        # The rollout calls step t with `split(key, 3)[t]`, on the last two states
        # stacked oldest first; each call draws its noise from that key.
        window, expected = ic, []
        for step_key in jax.random.split(KEY, 3):
            noise = jax.random.normal(step_key, (3,))
            new = sample(window.reshape(6), noise)
            expected.append(new)
            window = jnp.stack([window[1], new])
        np.testing.assert_allclose(trajectory, jnp.stack(expected), rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="multiple"):
            stepper(jnp.ones(5), key=KEY)


def test_stepper_constructor_errors():
    with pytest.raises(TypeError, match="ConditionalVelocity"):
        flow.FlowMatchingStepper(mlp(3), 2)
    with pytest.raises(TypeError, match="FlowMap"):
        flow.FlowMapStepper(flow.ConditionalVelocity(mlp(3)), 2)
    with pytest.raises(ValueError, match="num_steps"):
        flow.FlowMatchingStepper(flow.ConditionalVelocity(mlp(3)), 0)


@pytest.mark.parametrize("method", METHODS)
def test_stepper_on_1d_conv_state(method):
    stepper = flow.FlowMatchingStepper(flow.ConditionalVelocity(conv(1)), 2, method)
    ic = jnp.sin(jnp.linspace(0.0, 2 * jnp.pi, 16, endpoint=False))[None]
    trajectory = tx.rollout(stepper, ic, 3, key=KEY, include_init=True)
    state, expected = ic, [ic]
    for step_key in jax.random.split(KEY, 3):
        noise = jax.random.normal(step_key, (1, 16))
        state = hand_sample(method, stepper.velocity.network, state, noise, 2)
        expected.append(state)
    np.testing.assert_allclose(trajectory, jnp.stack(expected), rtol=1e-5, atol=1e-6)


def test_flow_map_optimizer_moves_ema():
    flow_map = flow.FlowMap(flow.ConditionalVelocity(mlp(3)))
    pair = flow.EMAFlowMap(flow_map, decay=0.75)
    optimizer = flow.flow_map_optimizer(optax.sgd(0.1))
    params = eqx.filter(pair, eqx.is_inexact_array)
    state = optimizer.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = optimizer.update(grads, state, params)
    new = eqx.apply_updates(pair, updates)
    # online correction: plain SGD; online and EMA velocity: frozen
    for old, upd in zip(arrays(pair.flow_map.correction), arrays(new.flow_map.correction)):
        np.testing.assert_allclose(upd, old - 0.1, rtol=1e-6)
    for tree in (new.flow_map.velocity, new.ema.velocity):
        for old, upd in zip(arrays(flow_map.velocity), arrays(tree)):
            np.testing.assert_array_equal(old, upd)
    # EMA: 0.75 * old + 0.25 * new
    for old, online, ema in zip(arrays(pair.ema.correction), arrays(new.flow_map.correction),
                                arrays(new.ema.correction)):
        np.testing.assert_allclose(ema, 0.75 * old + 0.25 * online, rtol=1e-6, atol=1e-7)
    # calling the pair evaluates the EMA map
    x, y = jnp.ones(3), jnp.zeros(3)
    np.testing.assert_array_equal(new(x, y, 0.1, 0.5), new.ema(x, y, 0.1, 0.5))
    with pytest.raises(ValueError, match="decay"):
        flow.EMAFlowMap(flow_map, decay=1.0)
    with pytest.raises(ValueError, match="params"):
        optimizer.update(grads, state)


def arrays(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
