"""The debiased Sinkhorn divergence (`tx.metrics.sinkhorn_divergence`) and the
invariant-measure regulariser built on it (`InvariantMeasureSinkhorn`): a NumPy
reference on tiny point sets, zero on identical sets, the Wasserstein-2 limit in 1D,
the gradient, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import conv_stepper, random_windows

import trainax_fm as tx
from trainax_fm.configuration import (
    Composite,
    InvariantMeasureMMD,
    InvariantMeasureSinkhorn,
    Supervised,
)


def numpy_entropic_ot(x, y, epsilon, num_iterations=2000):
    """Kernel-domain Sinkhorn in float64 and the primal value `<P, C> + eps KL`."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).mean(-1)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    kernel = np.exp(-cost / epsilon)
    v = np.ones(len(y))
    for _ in range(num_iterations):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    plan = u[:, None] * kernel * v[None, :]
    return (plan * cost).sum() + epsilon * (plan * np.log(plan / np.outer(a, b))).sum()


def numpy_divergence(x, y, epsilon):
    return numpy_entropic_ot(x, y, epsilon) - 0.5 * (
        numpy_entropic_ot(x, x, epsilon) + numpy_entropic_ot(y, y, epsilon)
    )


def clouds(seed, n=6, m=5, shape=(2, 3), shift=0.7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = (rng.standard_normal((m, *shape)) + shift).astype(np.float32)
    return x, y


@pytest.mark.parametrize("epsilon", [2.0, 0.5, 0.2])
def test_matches_a_numpy_reference(epsilon):
    x, y = clouds(0)
    value = tx.metrics.sinkhorn_divergence(x, y, epsilon=epsilon, num_iterations=400)
    np.testing.assert_allclose(float(value), numpy_divergence(x, y, epsilon), rtol=1e-4)


def test_zero_on_identical_sets_and_grows_with_a_shift():
    x, _ = clouds(1)
    assert abs(float(tx.metrics.sinkhorn_divergence(x, x))) < 1e-6
    values = [
        float(tx.metrics.sinkhorn_divergence(x, x + s, epsilon=0.1, num_iterations=300))
        for s in (0.25, 0.5, 1.0, 2.0)
    ]
    assert values == sorted(values) and values[0] > 0


def test_tends_to_the_wasserstein_distance_in_1d():
    """In 1D with equal sizes the squared W2 pairs sorted samples; the divergence
    approaches it as the blur shrinks, and orders three targets like W2 does."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 1)).astype(np.float32)
    targets = [
        (0.5 * rng.standard_normal((8, 1)) + shift).astype(np.float32)
        for shift in (0.2, 0.6, 1.2)
    ]
    exact = [np.mean((np.sort(x[:, 0]) - np.sort(t[:, 0])) ** 2) for t in targets]
    errors = []
    for epsilon, iterations in ((0.3, 200), (0.03, 2000), (0.003, 6000)):
        values = [
            float(tx.metrics.sinkhorn_divergence(x, t, epsilon=epsilon, num_iterations=iterations))
            for t in targets
        ]
        assert np.argsort(values).tolist() == np.argsort(exact).tolist()
        errors.append(abs(values[0] - exact[0]))
    assert errors[2] < errors[0] and errors[2] < 0.02 * exact[0] + 1e-3


def test_gradient_is_the_converged_gradient():
    """The envelope gradient equals the gradient through the reference's iterations."""
    x, y = clouds(3, shape=(3,))

    def reference(a):
        # kernel-domain iterations, differentiated through (independent mechanism)
        def ot(p, q):
            cost = jnp.mean((p[:, None] - q[None]) ** 2, -1)
            wa, wb = jnp.full(len(p), 1 / len(p)), jnp.full(len(q), 1 / len(q))
            kernel = jnp.exp(-cost / 2.0)
            v = jnp.ones(len(q))
            for _ in range(20):
                u = wa / (kernel @ v)
                v = wb / (kernel.T @ u)
            plan = u[:, None] * kernel * v[None]
            return jnp.sum(plan * cost) + 2.0 * jnp.sum(plan * jnp.log(plan / jnp.outer(wa, wb)))

        return ot(a, y) - 0.5 * (ot(a, a) + ot(y, y))

    got = jax.grad(
        lambda a: tx.metrics.sinkhorn_divergence(a, y, epsilon=2.0, num_iterations=20)
    )(jnp.asarray(x))
    expected = jax.jit(jax.grad(reference))(jnp.asarray(x))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)


def test_regulariser_is_zero_for_an_exact_stepper_and_positive_for_a_drifting_one():
    data = random_windows(4, 4, batch=3)
    data = data.at[:, 1:].set(jnp.stack([jnp.roll(data[:, 0], t, -1) for t in (1, 2, 3)], 1))
    regulariser = eqx.filter_jit(InvariantMeasureSinkhorn(3, num_iterations=30))
    exact = regulariser(lambda u: jnp.roll(u, 1, -1), data)
    drifting = regulariser(lambda u: jnp.roll(u, 1, -1) + 0.5, data)
    assert abs(float(exact)) < 1e-5 and float(drifting) > 0.05


def test_regulariser_composes_and_leaves_the_mmd_unchanged():
    stepper, data = conv_stepper(0), random_windows(5, 4)
    sinkhorn = InvariantMeasureSinkhorn(3, num_iterations=10)
    combined = Composite([Supervised(1), sinkhorn], [1.0, 0.1])
    expected = Supervised(1)(stepper, data) + 0.1 * sinkhorn(stepper, data)
    np.testing.assert_allclose(float(combined(stepper, data)), float(expected), rtol=1e-6)
    assert not hasattr(InvariantMeasureMMD(3), "epsilon")


def test_errors():
    with pytest.raises(ValueError, match="epsilon.*positive"):
        InvariantMeasureSinkhorn(2, epsilon=0.0)
    with pytest.raises(TypeError, match="epsilon"):
        tx.metrics.sinkhorn_divergence(jnp.ones((2, 3)), jnp.ones((2, 3)), epsilon="0.1")
    with pytest.raises(ValueError, match="num_iterations"):
        InvariantMeasureSinkhorn(2, num_iterations=0)
    with pytest.raises(ValueError, match="equal event shapes"):
        tx.metrics.sinkhorn_divergence(jnp.ones((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="InvariantMeasureSinkhorn"):
        InvariantMeasureSinkhorn(2)(conv_stepper(0), random_windows(0, 2))
