"""Trajectories on disk (`tx.data`): the same windows, minibatches and weights as in
memory, for every storage format, and clear errors at construction."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from helpers import conv_stepper

KEY = jax.random.PRNGKey(2)


def make_data(shape=(5, 12, 1, 16), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def store(tmp_path, file_format: str, data: np.ndarray) -> str:
    """Write `data` in `file_format`; the spec string that opens it."""
    if file_format == "npy":
        path = tmp_path / "data.npy"
        np.save(path, data)
        return f"npy:{path}"
    if file_format == "hdf5":
        h5py = pytest.importorskip("h5py")
        path = tmp_path / "data.h5"
        with h5py.File(path, "w") as f:
            f["fields/u"] = data
            f["other"] = np.zeros(3)
        return f"hdf5:{path}#fields/u"
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "data.zarr"
    group = zarr.open_group(str(path), mode="w")
    group.create_array("u", shape=data.shape, dtype=data.dtype, chunks=(1, 4) + data.shape[2:])[...] = data
    return f"zarr:{path}#u"


FORMATS = ["npy", "hdf5", "zarr"]


@pytest.mark.parametrize("file_format", FORMATS)
def test_windows_from_disk_equal_windows_in_memory(tmp_path, file_format):
    data = make_data()
    source = tx.data.open_trajectories(store(tmp_path, file_format, data))
    assert source.shape == data.shape and source.ndim == 4 and source.dtype == "float32"
    np.testing.assert_array_equal(source.read(), data)
    indices = np.array([0, 7, 3, 39, 12])
    for options in (dict(), dict(only_store_ic=True), dict(do_sub_stacking=False)):
        on_disk = tx.TrajectorySubStacker(source, 4, **options)
        in_memory = tx.TrajectorySubStacker(data, 4, **options)
        assert on_disk.on_disk and not in_memory.on_disk
        assert on_disk.num_total_samples == in_memory.num_total_samples
        chosen = indices[indices < in_memory.num_total_samples]
        np.testing.assert_array_equal(on_disk(chosen), in_memory(chosen))
        np.testing.assert_array_equal(on_disk(int(chosen[1])), in_memory(int(chosen[1])))
        np.testing.assert_array_equal(on_disk(slice(None)), in_memory(slice(None)))
    # A view: trajectories 1..3, first 9 snapshots.
    view = source.select((1, 4), 9)
    assert view.shape == (3, 9, 1, 16)
    np.testing.assert_array_equal(view.read(), data[1:4, :9])
    np.testing.assert_array_equal(
        tx.TrajectorySubStacker(view, 3)(np.arange(21)),
        tx.TrajectorySubStacker(data[1:4, :9], 3)(np.arange(21)),
    )


def sum_of_batch(update_i, stepper, data):
    return {"batch_sum": None if data is None else jnp.sum(data)}


@pytest.mark.parametrize("file_format", FORMATS)
def test_training_from_disk_equals_training_in_memory(tmp_path, file_format):
    data = make_data()
    source = tx.data.open_trajectories(store(tmp_path, file_format, data))
    trainers = {
        name: tx.trainer.SupervisedTrainer(
            trajectories, optimizer=optax.adam(1e-2), num_training_steps=25, batch_size=6,
            num_rollout_steps=2, steps_per_dispatch=1, callback_fn=sum_of_batch,
        )
        for name, trajectories in (("memory", data), ("disk", source))
    }
    memory, disk = (
        trainers[name].train(conv_stepper(), KEY, spawn_tqdm=False) for name in ("memory", "disk")
    )
    np.testing.assert_array_equal(disk.stepper.weight, memory.stepper.weight)
    np.testing.assert_array_equal(disk.loss_history, memory.loss_history)
    # The callback saw the same minibatch at every update.
    for seen_disk, seen_memory in zip(disk.aux_history, memory.aux_history):
        np.testing.assert_array_equal(seen_disk["batch_sum"], seen_memory["batch_sum"])
    assert disk.train_state.steps_per_dispatch == 1
    # The full-data loss reads every window from the file.
    np.testing.assert_allclose(
        trainers["disk"].full_loss(disk.stepper),
        trainers["memory"].full_loss(disk.stepper),
        rtol=1e-6,
    )


def test_flow_matching_from_disk_resumes_exactly(tmp_path):
    data = make_data()
    source = tx.data.open_trajectories(store(tmp_path, "npy", data))
    velocity = tx.flow.ConditionalVelocity(
        eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(0))
    )

    def trainer(trajectories, **options):
        return tx.trainer.FlowMatchingTrainer(
            trajectories, optimizer=optax.adam(1e-2), num_training_steps=20, batch_size=8,
            **options,
        )

    memory = trainer(data, steps_per_dispatch=1).train(velocity, KEY, spawn_tqdm=False)
    path = tmp_path / "state.eqx"
    on_disk = trainer(source, checkpoint_path=path)  # "auto" dispatch: one per update
    first = on_disk.train(velocity, KEY, num_steps=8, spawn_tqdm=False)
    assert first.train_state.step == 8
    state = tx.load_train_state(path, velocity, optax.adam(1e-2))
    resumed = on_disk.train(resume_from=state, spawn_tqdm=False)
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(resumed.stepper, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(memory.stepper, eqx.is_array))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.loss_history, memory.loss_history)


class BatchAtEnd(tx.hook.AbstractHook):
    """Looks at `loop.batch()` after the last update (as the logging hook does)."""

    def on_end(self, loop):
        self.batch = loop.batch()


def test_hooks_see_the_batch_after_the_last_update(tmp_path):
    data = make_data()
    source = tx.data.open_trajectories(store(tmp_path, "npy", data))
    seen = []
    for trajectories in (data, source):
        hook = BatchAtEnd()
        tx.trainer.SupervisedTrainer(
            trajectories, optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=4,
            steps_per_dispatch=1,
        ).train(conv_stepper(), KEY, spawn_tqdm=False, hooks=[hook])
        seen.append(hook.batch)
    np.testing.assert_array_equal(seen[1], seen[0])


def test_validation_of_a_run_on_disk(tmp_path):
    data = make_data((7, 12, 1, 16))
    source = tx.data.open_trajectories(store(tmp_path, "npy", data[:5]))
    result = tx.trainer.SupervisedTrainer(
        source, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=4,
        validation_data=data[5:], validate_every=3, validation_metrics=("loss", "nrmse@2"),
    ).train(conv_stepper(), KEY, spawn_tqdm=False)
    assert result.train_state.step == 6
    with pytest.raises(ValueError, match="states must have the shape of the training states"):
        tx.trainer.SupervisedTrainer(
            source, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=4,
            validation_data=data[5:, :, :, :8],
        )


def test_a_failed_read_is_raised_in_the_training_thread(tmp_path):
    spec = store(tmp_path, "npy", make_data())
    source = tx.data.open_trajectories(spec)
    trainer = tx.trainer.SupervisedTrainer(
        source, optimizer=optax.adam(1e-2), num_training_steps=5, batch_size=4
    )
    np.save(tmp_path / "data.npy", make_data((5, 12, 2, 16)))  # replaced behind its back
    with pytest.raises(RuntimeError, match="reading the minibatch of update 0") as info:
        trainer.train(conv_stepper(), KEY, spawn_tqdm=False)
    assert isinstance(info.value.__cause__, ValueError)


# --- errors at construction -----------------------------------------------------------


def test_missing_files_and_data_sets_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no npy trajectory file at .*missing.npy"):
        tx.data.open_trajectories(f"npy:{tmp_path / 'missing.npy'}")
    with pytest.raises(FileNotFoundError, match="no hdf5 trajectory file"):
        tx.data.DiskTrajectories(tmp_path / "missing.h5", "hdf5", "u")
    spec = store(tmp_path, "hdf5", make_data())
    path = spec[len("hdf5:"):].split("#")[0]
    with pytest.raises(ValueError, match=r"no data set 'v'; it holds \['fields/u', 'other'\]"):
        tx.data.open_trajectories(f"hdf5:{path}#v")
    with pytest.raises(ValueError, match=r"needs the name of a data set; it holds \[") as info:
        tx.data.open_trajectories(f"hdf5:{path}")
    assert "None" not in str(info.value)
    zarr_spec = store(tmp_path, "zarr", make_data())
    with pytest.raises(ValueError, match=r"no array 'v'; it holds \['u'\]"):
        tx.data.open_trajectories(zarr_spec.replace("#u", "#v"))
    with pytest.raises(ValueError, match=r"needs the name of an array; it holds \['u'\]") as info:
        tx.data.open_trajectories(zarr_spec.split("#")[0])
    assert "None" not in str(info.value)
    npy = store(tmp_path, "npy", make_data())
    with pytest.raises(ValueError, match="holds one array"):
        tx.data.open_trajectories(npy + "#u")
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="not a readable .npy file"):
        tx.data.open_trajectories(f"npy:{tmp_path / 'junk.npy'}")


def test_a_missing_file_in_the_configuration_ends_its_message_once(tmp_path):
    """The engine's sentence inside the configuration error: one full stop, not two."""
    config = tx.experiment.validate_config(
        {"data": {"source": f"hdf5:{tmp_path / 'missing.h5'}#u"}})
    with pytest.raises(tx.experiment.ConfigError, match="no hdf5 trajectory file") as info:
        tx.experiment.load_data(config)
    message = str(info.value)
    assert "'.." not in message and ".." not in message.replace(str(tmp_path), ""), message


def test_bad_arrays_and_specs_are_rejected(tmp_path):
    np.save(tmp_path / "rank2.npy", np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(S, T, C, \*spatial\).*got shape \(4, 10\) \(rank 2\)"):
        tx.data.open_trajectories(f"npy:{tmp_path / 'rank2.npy'}")
    np.save(tmp_path / "ints.npy", np.zeros((2, 5, 1), np.int32))
    with pytest.raises(TypeError, match="floating point, got dtype int32"):
        tx.data.open_trajectories(f"npy:{tmp_path / 'ints.npy'}")
    for spec in ("data.npy", "csv:data.csv", "npy:"):
        with pytest.raises(ValueError, match="`spec` must look like"):
            tx.data.open_trajectories(spec)
    with pytest.raises(TypeError, match="`spec` must be a string"):
        tx.data.open_trajectories(tmp_path)
    path = tmp_path / "data.npy"
    np.save(path, make_data())
    with pytest.raises(ValueError, match="`file_format` must be one of"):
        tx.data.DiskTrajectories(path, "csv")
    with pytest.raises(ValueError, match=r"`trajectories` must be \(start, stop\) with 0 <= start < stop <= 5"):
        tx.data.DiskTrajectories(path, trajectories=(3, 9))
    with pytest.raises(ValueError, match=r"`num_time_steps` must be an integer in \[1, 12\]"):
        tx.data.DiskTrajectories(path, num_time_steps=13)
    with pytest.raises(ValueError, match="<= 5"):
        tx.data.DiskTrajectories(path).select((4, 6))


def test_what_data_on_disk_cannot_do_is_said_at_construction(tmp_path):
    source = tx.data.open_trajectories(store(tmp_path, "npy", make_data()))
    common = dict(optimizer=optax.adam(1e-2), num_training_steps=5, batch_size=4)
    with pytest.raises(ValueError, match="`num_seeds` is not supported with data on disk"):
        tx.trainer.SupervisedTrainer(source, num_seeds=2, **common)
    with pytest.raises(ValueError, match="one update per dispatch.*steps_per_dispatch=4"):
        tx.trainer.SupervisedTrainer(source, steps_per_dispatch=4, **common)
    trainer = tx.trainer.SupervisedTrainer(source, **common)
    with pytest.raises(ValueError, match="one update per dispatch"):
        trainer.train(conv_stepper(), KEY, steps_per_dispatch=8)
    with pytest.raises(TypeError, match="cannot run under a JAX transformation"):
        eqx.filter_vmap(lambda k: trainer(conv_stepper(), k, spawn_tqdm=False))(
            jax.random.split(KEY, 2)
        )
    with pytest.raises(TypeError, match="concrete indices"):
        jax.jit(tx.TrajectorySubStacker(source, 2))(jnp.arange(3))
    with pytest.raises(ValueError, match="longer than the trajectories"):
        tx.TrajectorySubStacker(source, 13)
