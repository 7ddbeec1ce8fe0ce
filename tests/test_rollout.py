"""`rollout` against hand-written Python loops of the stepper."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainax_fm._rollout._inference import rollout

NUM_POINTS = 16


def python_loop(stepper, state, num_steps, step_keys=None):
    states = []
    for t in range(num_steps):
        if step_keys is None:
            state = stepper(state)
        else:
            state = stepper(state, key=step_keys[t])
        states.append(state)
    return jnp.stack(states)


@pytest.fixture(scope="module")
def conv():
    return eqx.nn.Conv1d(2, 2, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.key(0))


class NoisyStepper(eqx.Module):
    """Damped state plus Gaussian noise: a minimal stochastic stepper."""

    scale: float = 0.1
    needs_key: bool = eqx.field(static=True, default=True)

    def __call__(self, x, *, key):
        return 0.9 * x + self.scale * jax.random.normal(key, x.shape, x.dtype)


def noisy_without_attribute(x, *, key):
    return x + jax.random.normal(key, x.shape, x.dtype)


@pytest.mark.parametrize("include_init", [False, True])
def test_deterministic_conv_matches_loop(conv, include_init):
    ic = jax.random.normal(jax.random.key(1), (2, NUM_POINTS))
    out = rollout(conv, ic, 5, include_init=include_init)
    expected = python_loop(conv, ic, 5)
    if include_init:
        expected = jnp.concatenate([ic[None], expected])
    assert out.shape == ((6 if include_init else 5), 2, NUM_POINTS)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_ode_state_and_plain_function():
    matrix = jnp.array([[0.9, -0.2, 0.0], [0.2, 0.9, 0.0], [0.0, 0.0, 0.5]])
    ic = jnp.array([1.0, 0.0, 2.0])
    out = rollout(lambda x: matrix @ x, ic, 4)
    expected = np.stack([np.linalg.matrix_power(np.asarray(matrix), t) @ ic for t in range(1, 5)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_batched_matches_per_sample_loops(conv):
    ics = jax.random.normal(jax.random.key(2), (3, 2, NUM_POINTS))
    out = rollout(conv, ics, 4, batched=True, include_init=True)
    assert out.shape == (3, 5, 2, NUM_POINTS)
    for b in range(3):
        expected = jnp.concatenate([ics[b][None], python_loop(conv, ics[b], 4)])
        np.testing.assert_allclose(out[b], expected, rtol=1e-5, atol=1e-6)
    # batched=True is the same as vmapping an unbatched rollout yourself
    vmapped = jax.vmap(lambda x: rollout(conv, x, 4, include_init=True))(ics)
    np.testing.assert_allclose(vmapped, out, rtol=1e-5, atol=1e-6)


def test_history_two_with_conv1d():
    num_channels, history = 1, 2
    net = eqx.nn.Conv1d(
        history * num_channels, num_channels, 3, padding=1, padding_mode="CIRCULAR",
        key=jax.random.key(3),
    )
    ic = jax.random.normal(jax.random.key(4), (history, num_channels, NUM_POINTS))
    out = rollout(net, ic, 6, num_input_steps=history, include_init=True)
    window = [ic[0], ic[1]]
    expected = [ic[1]]
    for _ in range(6):
        new = net(jnp.concatenate(window, axis=0))
        window = [window[1], new]
        expected.append(new)
    assert out.shape == (7, num_channels, NUM_POINTS)
    np.testing.assert_allclose(out, jnp.stack(expected), rtol=1e-5, atol=1e-6)

    batched = rollout(net, jnp.stack([ic, 2 * ic]), 6, num_input_steps=2, batched=True)
    assert batched.shape == (2, 6, 1, NUM_POINTS)
    np.testing.assert_allclose(batched[0], out[1:], rtol=1e-5, atol=1e-6)


# The stochastic tests share one IC shape and rollout length so that the compiled
# rollouts are reused between them (threefry-based noise is slow to compile on CPU).
STOCHASTIC_IC = jnp.ones((1, NUM_POINTS))
STOCHASTIC_STEPS = 3


def test_stochastic_matches_documented_key_splitting():
    stepper = NoisyStepper()
    key = jax.random.key(5)
    out = rollout(stepper, STOCHASTIC_IC, STOCHASTIC_STEPS, key=key)
    expected = python_loop(
        stepper, STOCHASTIC_IC, STOCHASTIC_STEPS, jax.random.split(key, STOCHASTIC_STEPS)
    )
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_stochastic_batched_with_raw_uint32_key():
    # batched: one key per trajectory (split of `key`), then one per step
    stepper = NoisyStepper()
    key = jax.random.PRNGKey(0)  # legacy raw keys work as well as typed ones
    ics = jnp.stack([STOCHASTIC_IC, -STOCHASTIC_IC])
    out = rollout(stepper, ics, STOCHASTIC_STEPS, key=key, batched=True)
    assert out.shape == (2, STOCHASTIC_STEPS, 1, NUM_POINTS)
    for b, trajectory_key in enumerate(jax.random.split(key, 2)):
        step_keys = jax.random.split(trajectory_key, STOCHASTIC_STEPS)
        expected = python_loop(stepper, ics[b], STOCHASTIC_STEPS, step_keys)
        np.testing.assert_allclose(out[b], expected, rtol=1e-6, atol=1e-6)
    # ensemble of batches: member keys first, then the batch split inside each member
    ensemble = rollout(stepper, ics, STOCHASTIC_STEPS, key=key, num_samples=2, batched=True)
    assert ensemble.shape == (2, 2, STOCHASTIC_STEPS, 1, NUM_POINTS)
    member_key = jax.random.split(key, 2)[1]
    np.testing.assert_allclose(
        ensemble[1],
        rollout(stepper, ics, STOCHASTIC_STEPS, key=member_key, batched=True),
        rtol=1e-6,
        atol=1e-6,
    )


def test_ensemble_members_distinct_and_reproducible():
    stepper = NoisyStepper()
    key = jax.random.key(6)
    num_members = 4
    ensemble = rollout(stepper, STOCHASTIC_IC, STOCHASTIC_STEPS, key=key, num_samples=num_members)
    assert ensemble.shape == (num_members, STOCHASTIC_STEPS, 1, NUM_POINTS)
    finals = np.asarray(ensemble[:, -1]).reshape(num_members, -1)
    for i in range(num_members):
        for j in range(i + 1, num_members):
            assert not np.allclose(finals[i], finals[j])
    # member m is the single rollout with the m-th split key
    for m, member_key in enumerate(jax.random.split(key, num_members)):
        single = rollout(stepper, STOCHASTIC_IC, STOCHASTIC_STEPS, key=member_key)
        np.testing.assert_allclose(ensemble[m], single, rtol=1e-6, atol=1e-6)


def test_under_jit_and_grad(conv):
    ic = jax.random.normal(jax.random.key(7), (2, NUM_POINTS))
    jitted = eqx.filter_jit(rollout)(conv, ic, 5)
    np.testing.assert_allclose(jitted, rollout(conv, ic, 5), rtol=1e-5, atol=1e-6)

    @eqx.filter_grad
    def grad_fn(model):
        return jnp.sum(rollout(model, ic, 3) ** 2)

    grads = grad_fn(conv)
    assert jnp.all(jnp.isfinite(grads.weight)) and jnp.any(grads.weight != 0)


def test_missing_key_errors():
    ic = jnp.zeros((1, 4))
    with pytest.raises(ValueError, match="needs_key"):
        rollout(NoisyStepper(), ic, 2)
    with pytest.raises(ValueError, match="requires a random key"):
        rollout(noisy_without_attribute, ic, 2)
    with pytest.raises(ValueError, match="num_samples"):
        rollout(lambda x: x, ic, 2, num_samples=3)


def test_key_for_deterministic_stepper_errors(conv):
    with pytest.raises(ValueError, match="does not accept a keyword argument `key`"):
        rollout(lambda x: 2 * x, jnp.zeros((1, 4)), 2, key=jax.random.key(0))


@pytest.mark.parametrize("bad", [0, -3])
def test_nonpositive_num_steps(bad):
    with pytest.raises(ValueError, match="num_steps"):
        rollout(lambda x: x, jnp.zeros((1, 4)), bad)


@pytest.mark.parametrize("bad", [2.5, True, "3", None])
def test_noninteger_num_steps(bad):
    with pytest.raises(TypeError, match="num_steps"):
        rollout(lambda x: x, jnp.zeros((1, 4)), bad)


def test_bad_flags_and_counts():
    with pytest.raises(TypeError, match="batched"):
        rollout(lambda x: x, jnp.zeros((1, 4)), 2, batched="yes")
    with pytest.raises(ValueError, match="num_input_steps"):
        rollout(lambda x: x, jnp.zeros((1, 4)), 2, num_input_steps=0)
    with pytest.raises(ValueError, match="num_samples"):
        rollout(NoisyStepper(), jnp.zeros((1, 4)), 2, key=jax.random.key(0), num_samples=0)


def test_shape_errors(conv):
    # the stepper returns a batch-shaped or wrongly-channelled output
    with pytest.raises(ValueError, match=r"one state of shape \(2, 16\)"):
        rollout(lambda x: jnp.stack([x, x]), jnp.zeros((2, NUM_POINTS)), 2)
    # history axis of the wrong length
    with pytest.raises(ValueError, match="history axis has 3 entries"):
        rollout(lambda x: x[:1], jnp.zeros((3, 1, 4)), 2, num_input_steps=2)
    # batched IC without a batch axis
    with pytest.raises(ValueError, match="rank >= 2"):
        rollout(lambda x: x, jnp.zeros((4,)), 2, batched=True)
    # a batch passed as a single state: the conv rejects the input rank, we say why
    with pytest.raises(ValueError, match="batched=True"):
        rollout(conv, jnp.zeros((3, 2, NUM_POINTS)), 2)
    # history stepper that returns the whole stacked input
    with pytest.raises(ValueError, match="returns C"):
        rollout(lambda x: x, jnp.zeros((2, 1, 4)), 2, num_input_steps=2)


def test_pytree_output_errors():
    with pytest.raises(ValueError, match="single array"):
        rollout(lambda x: (x, x), jnp.zeros((1, 4)), 2)


def test_integer_ic_is_cast_to_stepper_dtype():
    out = rollout(lambda x: 0.5 * x, jnp.ones((1, 4), dtype=jnp.int32), 2)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out[-1], 0.25)
