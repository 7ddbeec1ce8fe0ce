"""The PDE-Refiner row of `benchmarks/bench_stability.py`: what it trains and rolls out
(the benchmark itself runs for an hour and is not run here)."""

import importlib.util
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import trainax_fm as tx

BENCHMARK = (
    pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "bench_stability.py"
)


@pytest.fixture(scope="module")
def bench_stability():
    pytest.importorskip("exponax")
    spec = importlib.util.spec_from_file_location("bench_stability", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refiner_row_trains_pde_refiner_on_the_shared_convnet(bench_stability):
    configurations = bench_stability.methods(100, 0.03, 0.1, 16, 2, 0.01)
    refiner = configurations["refiner"]
    assert eqx.tree_equal(refiner, tx.configuration.PDERefiner(2, 0.01))
    assert bench_stability.stepper_factory(configurations["one-step"]) is (
        bench_stability.ResidualConvNet)
    stepper = bench_stability.stepper_factory(refiner)(jax.random.key(0))
    assert isinstance(stepper, tx.flow.PDERefinerStepper)
    assert stepper.num_function_evaluations == 3
    # Same layer shapes as the other methods' network, but three input channels.
    shapes = [layer.weight.shape for layer in stepper.model.network.layers]
    reference = [layer.weight.shape for layer in bench_stability.ResidualConvNet(
        jax.random.key(0)).layers]
    assert shapes == [(24, 3, 5)] + reference[1:]


def test_refiner_convnet_is_residual_only_at_the_prediction_step(bench_stability):
    """With the last layer zeroed the network returns `u` at `k = 0` and zero noise at
    `k >= 1`: the skip connection belongs to the prediction step only."""
    network = bench_stability.RefinerConvNet(jax.random.key(1))
    network = eqx.tree_at(
        lambda n: (n.layers[-1].weight, n.layers[-1].bias),
        network,
        replace_fn=jnp.zeros_like,
    )
    u = jnp.sin(jnp.linspace(0.0, 6.0, 64))[None]
    noisy = jnp.cos(jnp.linspace(0.0, 3.0, 64))[None]
    for level, expected in [(0.0, u), (0.5, jnp.zeros_like(u))]:
        x = jnp.concatenate([noisy, u, jnp.full_like(u, level)])
        np.testing.assert_array_equal(network(x), expected)
