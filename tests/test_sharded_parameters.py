"""Fully-sharded data parallelism: `parameter_axis` splits parameters and optimizer
state over a mesh axis. Runs in one subprocess with 4 virtual CPU devices."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import optax
import pytest

import trainax_fm as tx
from trainax_fm._loop._sharding import parameter_spec

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import equinox as eqx
    import jax
    import numpy as np
    import optax

    import trainax_fm as tx

    assert jax.device_count() == 4
    out = Path(sys.argv[1])
    mesh = jax.make_mesh((4,), ("batch",))
    data = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 1, 32))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    network = eqx.nn.Sequential([
        eqx.nn.Conv1d(1, 16, 3, padding=1, padding_mode="CIRCULAR", key=keys[0]),
        eqx.nn.Lambda(jax.nn.gelu),
        eqx.nn.Conv1d(16, 16, 3, padding=1, padding_mode="CIRCULAR", key=keys[1]),
        eqx.nn.Lambda(jax.nn.gelu),
        eqx.nn.Conv1d(16, 1, 3, padding=1, padding_mode="CIRCULAR", key=keys[2]),
    ])
    key = jax.random.PRNGKey(2)


    def trainer(mesh, **options):
        return tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=6, batch_size=8,
            num_rollout_steps=2, mesh=mesh, **{"steps_per_dispatch": 1, **options},
        )


    def arrays(tree):
        return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


    replicated = trainer(mesh).train(network, key, spawn_tqdm=False)
    sharded = trainer(mesh, parameter_axis="batch").train(network, key, spawn_tqdm=False)
    for got, expected in zip(arrays(sharded.stepper), arrays(replicated.stepper)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sharded.loss_history, replicated.loss_history, rtol=1e-6)

    # The default dispatch (several updates inside one compiled loop) keeps them split.
    looped = trainer(mesh, parameter_axis="batch", steps_per_dispatch="auto").train(
        network, key, spawn_tqdm=False
    )
    for got, expected in zip(arrays(looped.stepper), arrays(replicated.stepper)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert looped.stepper.layers[2].weight.sharding.spec == jax.sharding.PartitionSpec("batch")

    # What each device holds, from the arrays' shardings.
    state = arrays((sharded.stepper, sharded.opt_state))
    total = sum(x.nbytes for x in state)
    first = jax.devices()[0]
    on_first = sum(s.data.nbytes for x in state for s in x.addressable_shards if s.device == first)
    fraction = on_first / total
    print("fraction on one device", fraction)
    assert 0.24 <= fraction <= 0.3, fraction
    middle = sharded.stepper.layers[2].weight
    assert middle.sharding.spec == jax.sharding.PartitionSpec("batch"), middle.sharding
    replicated_state = arrays((replicated.stepper, replicated.opt_state))
    assert all(x.sharding.is_fully_replicated for x in replicated_state)

    # A checkpoint written on 4 devices, resumed on a mesh of 2.
    path = out / "state.eqx"
    trainer(mesh, parameter_axis="batch").train(
        network, key, num_steps=3, checkpoint_path=path, spawn_tqdm=False
    )
    optimizer = trainer(mesh, parameter_axis="batch").optimizer
    state = tx.load_train_state(path, network, optimizer)
    two = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("batch",))
    resumed = trainer(two, parameter_axis="batch").train(resume_from=state, spawn_tqdm=False)
    for got, expected in zip(arrays(resumed.stepper), arrays(sharded.stepper)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert resumed.stepper.layers[2].weight.sharding.mesh.devices.size == 2
    print("OK")
    """
)


def test_sharded_parameters_train_like_replicated_ones_and_resume_on_fewer_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
        env=env, cwd=ROOT, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-6000:]
    assert completed.stdout.strip().endswith("OK"), completed.stdout


@pytest.mark.parametrize(
    "shape, spec",
    [
        ((16, 8, 3), jax.sharding.PartitionSpec("p", None, None)),  # largest divisible axis
        ((3, 8), jax.sharding.PartitionSpec(None, "p")),
        ((8, 8), jax.sharding.PartitionSpec("p", None)),  # ties: the leading axis
        ((3,), jax.sharding.PartitionSpec()),  # nothing divisible: replicated
        ((), jax.sharding.PartitionSpec()),
    ],
)
def test_each_array_is_split_along_its_largest_divisible_axis(shape, spec):
    assert parameter_spec(shape, 4, "p") == spec


def test_parameter_axis_needs_a_mesh_with_that_axis():
    data = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 1, 8))
    common = dict(optimizer=optax.adam(1e-3), num_training_steps=2, batch_size=2)
    with pytest.raises(ValueError, match="`parameter_axis='model'` shards parameters"):
        tx.trainer.SupervisedTrainer(data, parameter_axis="model", **common)
    mesh = jax.sharding.Mesh(jax.devices()[:1], ("batch",))
    with pytest.raises(ValueError, match="whose axes are \\('batch',\\)"):
        tx.trainer.SupervisedTrainer(data, mesh=mesh, parameter_axis="model", **common)
    with pytest.raises(ValueError, match="cannot be combined"):
        tx.trainer.SupervisedTrainer(
            data, mesh=mesh, parameter_axis="batch", num_seeds=2, **common
        )
