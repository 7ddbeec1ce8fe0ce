"""Seeds in parallel, several devices, remat: the scale-out paths."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import trainax_fm as tx

KEY = jax.random.PRNGKey(0)


def make_conv(key):
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=key)


def test_train_seeds_matches_separate_runs():
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=10, batch_size=4,
        num_rollout_steps=2,
    )
    result = trainer.train_seeds(make_conv, jax.random.PRNGKey(5), 3, record_loss_every=2)
    assert result.stepper.weight.shape == (3, 1, 1, 3)
    assert result.loss_history.shape == (3, 5)
    init_key, run_key = jax.random.split(jax.random.PRNGKey(5))
    for i in range(3):
        single = trainer.train(
            make_conv(jax.random.split(init_key, 3)[i]), jax.random.split(run_key, 3)[i],
            record_loss_every=2, spawn_tqdm=False,
        )
        np.testing.assert_allclose(
            result.stepper.weight[i], single.stepper.weight, rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(result.loss_history[i], single.loss_history, rtol=1e-5)


def test_seed_steppers_are_built_per_seed_and_stacked():
    from trainax_fm._stepper._seed_stacking import stack_seed_steppers as _stack_seed_steppers

    keys = jax.random.split(KEY, 4)
    mlp = lambda k: eqx.nn.MLP(3, 3, 8, 2, activation=jax.nn.gelu, key=k)  # noqa: E731
    stacked = _stack_seed_steppers(mlp, keys)
    for i in range(4):
        single = eqx.filter(mlp(keys[i]), eqx.is_array)
        seed_i = jax.tree_util.tree_map(lambda x: x[i], eqx.filter(stacked, eqx.is_array))
        for a, b in zip(jax.tree_util.tree_leaves(seed_i), jax.tree_util.tree_leaves(single)):
            np.testing.assert_array_equal(a, b)  # bit-identical to a separate init
    assert stacked.activation is jax.nn.gelu  # non-array parts are kept
    # vmapping the constructor gives the same parameters
    vmapped = eqx.filter_vmap(mlp)(keys)
    np.testing.assert_allclose(stacked.layers[0].weight, vmapped.layers[0].weight, rtol=1e-6)


def test_train_seeds_rejects_steppers_of_different_structure():
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4
    )
    calls = []

    def make(key):
        calls.append(key)
        bias = len(calls) == 1  # seed 0 gets a bias, the others do not
        return eqx.nn.Conv1d(1, 1, 3, padding=1, use_bias=bias, key=key)

    with pytest.raises(ValueError, match="different structures for seed 0 and seed 1"):
        trainer.train_seeds(make, KEY, 3)


def test_train_seeds_validates_num_seeds():
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4
    )
    with pytest.raises(ValueError, match="num_seeds"):
        trainer.train_seeds(make_conv, KEY, 0)


def test_mesh_arguments_are_checked():
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",))
    tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4, mesh=mesh
    )
    wrong_axis = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match="batch_axis"):
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4,
            mesh=wrong_axis,
        )
    with pytest.raises(TypeError, match="mesh"):
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4,
            mesh="cpu",
        )


FOUR_DEVICES = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, equinox as eqx, numpy as np, optax
    import trainax_fm as tx

    assert len(jax.devices()) == 4
    data = jax.random.normal(jax.random.PRNGKey(0), (4, 12, 1, 16))
    net = eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(1))
    meshes = {
        "none": None,
        "auto": jax.sharding.Mesh(np.array(jax.devices()), ("batch",)),
        "explicit": jax.make_mesh((4,), ("batch",)),
    }
    results = {}
    for name, mesh in meshes.items():
        for mode in (1, 8):
            trainer = tx.trainer.SupervisedTrainer(
                data, optimizer=optax.adam(1e-2), num_training_steps=20, batch_size=8,
                num_rollout_steps=2, steps_per_dispatch=mode, mesh=mesh,
            )
            results[name, mode] = trainer.train(net, jax.random.PRNGKey(2), spawn_tqdm=False)
    reference = results["none", 1]
    for (name, mode), result in results.items():
        np.testing.assert_allclose(
            result.stepper.weight, reference.stepper.weight, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(result.loss_history, reference.loss_history, rtol=1e-5)
    sharding = results["auto", 1].stepper.weight.sharding
    assert len(sharding.device_set) == 4, sharding
    try:
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=6,
            mesh=meshes["auto"],
        )
    except ValueError as error:
        assert "divisible" in str(error)
    else:
        raise AssertionError("batch size 6 on 4 devices must be rejected")
    print("OK")
    """
)


def test_four_devices_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES], capture_output=True, text=True, env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


def test_train_seeds_with_callbacks_resume_and_modes(tmp_path):
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    callback = tx.callback.WeightNorm(4)
    results = []
    for mode in (1, 4):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=12, batch_size=4,
            callback_fn=callback, steps_per_dispatch=mode,
        )
        results.append(trainer.train_seeds(make_conv, KEY, 2, spawn_tqdm=False))
    np.testing.assert_allclose(
        results[0].stepper.weight, results[1].stepper.weight, rtol=1e-5, atol=1e-7
    )
    aux = results[0].aux_history
    assert len(aux) == 12 and aux[4]["weight_norm"].shape == (2,) and aux[5]["weight_norm"] is None

    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=12, batch_size=4,
        steps_per_dispatch=1,
    )
    full = trainer.train_seeds(make_conv, KEY, 2, spawn_tqdm=False)
    path = tmp_path / "seeds.eqx"
    partial = trainer.train(
        eqx.filter_vmap(make_conv)(jax.random.split(jax.random.split(KEY)[0], 2)),
        jax.random.split(jax.random.split(KEY)[1], 2),
        num_seeds=2, num_steps=5, checkpoint_path=path, spawn_tqdm=False,
    )
    assert partial.loss_history.shape == (2, 5)
    # A seed-parallel checkpoint loads with a seed-stacked template.
    template = eqx.filter_vmap(make_conv)(jax.random.split(KEY, 2))
    state = tx.load_train_state(path, template, optax.adam(1e-2))
    assert state.step == 5 and state.loss_history.shape == (2, 5)
    resumed = trainer.train(resume_from=state, spawn_tqdm=False)
    np.testing.assert_array_equal(resumed.stepper.weight, full.stepper.weight)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)


def test_seed_axis_is_checked():
    data = jax.random.normal(KEY, (3, 10, 1, 8))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4
    )
    with pytest.raises(ValueError, match="leading seed axis"):
        trainer.train(make_conv(KEY), jax.random.split(KEY, 3), num_seeds=3, spawn_tqdm=False)
