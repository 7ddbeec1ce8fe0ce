"""Trajectories on disk (`tx.data`): the same windows, minibatches and weights as in
memory, for every storage format, and clear errors at construction."""

import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from helpers import conv_stepper
from trainax_fm.experiment import ConfigError, validate_config

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
    group.create_array(
        "u", shape=data.shape, dtype=data.dtype, chunks=(1, 4) + data.shape[2:]
    )[...] = data
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


def test_training_from_disk_with_the_default_options(tmp_path):
    """Under `steps_per_dispatch="auto"` a small in-memory update runs many updates in
    one compiled loop, which XLA optimises differently from the single update per
    dispatch that data on disk always run: the same windows in the same order, but the
    arithmetic is reassociated. The difference is float32 rounding (eps 1.2e-7 per
    operation; about 5e-7 on the losses here), so a tolerance of 1e-5 relative catches
    any wrong minibatch (a different window moves the loss by O(1)) with margin."""
    data = make_data()
    source = tx.data.open_trajectories(store(tmp_path, "npy", data))
    memory, disk = (
        tx.trainer.SupervisedTrainer(
            trajectories, optimizer=optax.adam(1e-2), num_training_steps=25, batch_size=6,
            num_rollout_steps=2,
        ).train(conv_stepper(), KEY, spawn_tqdm=False)
        for trajectories in (data, source)
    )
    # The case the docs describe: in memory loops, from disk one update per dispatch.
    assert memory.train_state.steps_per_dispatch > 1
    assert disk.train_state.steps_per_dispatch == 1
    np.testing.assert_allclose(
        disk.stepper.weight, memory.stepper.weight, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(disk.loss_history, memory.loss_history, rtol=1e-5)
    # In memory with one update per dispatch, as from disk: bit for bit.
    one_per_dispatch = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=25, batch_size=6,
        num_rollout_steps=2, steps_per_dispatch=1,
    ).train(conv_stepper(), KEY, spawn_tqdm=False)
    np.testing.assert_array_equal(disk.stepper.weight, one_per_dispatch.stepper.weight)
    np.testing.assert_array_equal(disk.loss_history, one_per_dispatch.loss_history)


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


def hand_validation(stepper, trajectories):
    """The validation metrics `loss` (one-step MSE over every window) and `nrmse@2`,
    written out with NumPy."""
    step = jax.vmap(stepper)
    states = trajectories[:, :-1].reshape((-1,) + trajectories.shape[2:])
    targets = trajectories[:, 1:].reshape(states.shape)
    loss = np.mean((np.asarray(step(states)) - targets) ** 2)
    two_steps = np.asarray(step(step(trajectories[:, 0])))
    reference = trajectories[:, 2]
    error = np.sqrt(np.sum((two_steps - reference) ** 2, axis=(1, 2)))
    nrmse = np.mean(error / np.sqrt(np.sum(reference**2, axis=(1, 2))))
    return {"loss": loss, "nrmse@2": nrmse}


def test_validation_of_a_run_on_disk(tmp_path):
    data = make_data((7, 12, 1, 16))
    source = tx.data.open_trajectories(store(tmp_path, "npy", data[:5]))
    trainer = tx.trainer.SupervisedTrainer(
        source, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=4,
        validation_data=data[5:], validate_every=3, validation_metrics=("loss", "nrmse@2"),
    )
    result = trainer.train(conv_stepper(), KEY, spawn_tqdm=False)
    assert result.train_state.step == 6
    np.testing.assert_array_equal(result.validation.steps, [3, 6])
    # The same run stopped after 3 updates holds the stepper validated at update 3.
    halfway = trainer.train(conv_stepper(), KEY, num_steps=3, spawn_tqdm=False).stepper
    for index, stepper in enumerate((halfway, result.stepper)):
        expected = hand_validation(stepper, data[5:])
        for name, value in expected.items():
            np.testing.assert_allclose(result.validation.values[name][index], value, rtol=1e-5)
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
    with pytest.raises(
        ValueError, match=r"`trajectories` must be \(start, stop\) with 0 <= start < stop <= 5"
    ):
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


# --- other layouts: channels last, the_well's per-field HDF5 groups --------------------


@pytest.mark.parametrize("file_format", FORMATS)
def test_channels_last_arrays_read_like_channels_first(tmp_path, file_format):
    data = make_data((4, 9, 3, 6, 5))  # (S, T, C, X, Y)
    spec = store(tmp_path, file_format, np.ascontiguousarray(np.moveaxis(data, 2, -1)))
    source = tx.data.open_trajectories(spec + ";channels_last")
    assert source.channels_last and source.shape == data.shape
    np.testing.assert_array_equal(source.read(), data)
    indices = np.array([0, 5, 17, 27, 2])  # 4 trajectories of 7 windows
    np.testing.assert_array_equal(
        tx.TrajectorySubStacker(source, 3)(indices), tx.TrajectorySubStacker(data, 3)(indices)
    )
    view = source.select((1, 3), 5)
    assert view.channels_last
    np.testing.assert_array_equal(view.read(), data[1:3, :5])
    # Without the option the same file is read as stored.
    assert tx.data.open_trajectories(spec).shape == (4, 9, 6, 5, 3)


def store_well(path, fields: dict, field_names: dict = {}):
    """Write `{"t0_fields/NAME": array, ...}` in the_well's layout; `field_names`
    gives a group's `field_names` attribute."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.attrs["n_spatial_dims"] = 2
        f["dimensions/time"] = np.arange(12, dtype=np.float32)
        for name, array in fields.items():
            f[name] = array
        for group, names in field_names.items():
            f[group].attrs["field_names"] = names
    return str(path)


def well_fields(shape=(3, 12, 5, 4)):
    rng = np.random.default_rng(1)
    s, t, x, y = shape
    return {
        "t0_fields/pressure": rng.normal(size=(s, t, x, y)).astype(np.float32),
        "t0_fields/density": rng.normal(size=(s, t, x, y)).astype(np.float32),
        "t1_fields/velocity": rng.normal(size=(s, t, x, y, 2)).astype(np.float32),
        "t2_fields/stress": rng.normal(size=(s, t, x, y, 2, 2)).astype(np.float32),
    }


def as_channels(fields, names):
    """The fields stacked on a channel axis `(S, T, C, X, Y)`, built with NumPy."""
    channels = []
    for name in names:
        array = fields[name]
        if name.startswith("t0_fields/"):
            channels.append(array[:, :, None])
        elif name.startswith("t1_fields/"):
            channels.append(np.moveaxis(array, -1, 2))
        else:
            components = array.reshape(array.shape[:4] + (4,))  # (d1, d2) row-major
            channels.append(np.moveaxis(components, -1, 2))
    return np.concatenate(channels, axis=2)


# (selection, the fields it stacks in channel order); the default takes t0 then t1,
# t0 in the order of its `field_names` attribute.
WELL_SELECTIONS = [
    (None, ["t0_fields/pressure", "t0_fields/density", "t1_fields/velocity"]),
    ("stress,density", ["t2_fields/stress", "t0_fields/density"]),
    (["t1_fields/velocity", "pressure"], ["t1_fields/velocity", "t0_fields/pressure"]),
]


@pytest.mark.parametrize("selection, names", WELL_SELECTIONS)
def test_the_well_fields_read_like_the_stacked_array(tmp_path, selection, names):
    fields = well_fields()
    path = store_well(tmp_path / "well.hdf5", fields,
                      {"t0_fields": ["pressure", "density"]})
    data = as_channels(fields, names)
    source = tx.data.DiskTrajectories(path, "well", selection)
    assert source.dataset == ",".join(names) and source.shape == data.shape
    np.testing.assert_array_equal(source.read(), data)
    for options in (dict(), dict(only_store_ic=True)):
        on_disk, in_memory = (tx.TrajectorySubStacker(d, 4, **options) for d in (source, data))
        chosen = np.array([0, 8, 3, 26])  # 3 trajectories of 9 windows
        np.testing.assert_array_equal(on_disk(chosen), in_memory(chosen))
    np.testing.assert_array_equal(source.select((1, 3), 6).read(), data[1:3, :6])
    if isinstance(selection, (str, type(None))):
        spec = f"well:{path}" + ("" if selection is None else f"#{selection}")
        assert tx.data.open_trajectories(spec) == source


def test_the_well_layout_errors_name_the_field(tmp_path):
    fields = well_fields()
    path = store_well(tmp_path / "well.hdf5", fields)
    with pytest.raises(ValueError, match=r"no field 'pressur'; it holds \['t0_fields/density', "
                       r"'t0_fields/pressure', 't1_fields/velocity', 't2_fields/stress'\]"):
        tx.data.open_trajectories(f"well:{path}#density,pressur")
    mismatched = {**fields, "t1_fields/velocity": np.zeros((3, 12, 5, 3, 2), np.float32)}
    with pytest.raises(ValueError, match=r"share \(S, T, \*spatial\): 't0_fields/density' has "
                       r"\(3, 12, 5, 4\), but 't1_fields/velocity' has \(3, 12, 5, 3\)"):
        tx.data.open_trajectories(f"well:{store_well(tmp_path / 'm.hdf5', mismatched)}")
    not_square = {"t2_fields/stress": np.zeros((3, 12, 5, 4, 2, 3), np.float32)}
    with pytest.raises(ValueError, match=r"'t2_fields/stress' .* must be shaped "
                       r"\(S, T, \*spatial, D, D\) with a square D x D tensor, got shape "
                       r"\(3, 12, 5, 4, 2, 3\)"):
        tx.data.open_trajectories(f"well:{store_well(tmp_path / 's.hdf5', not_square)}#stress")
    twice = {"t0_fields/u": fields["t0_fields/density"],
             "t1_fields/u": fields["t1_fields/velocity"]}
    with pytest.raises(ValueError, match=r"'u' is in several groups .*'t0_fields/u'"):
        tx.data.open_trajectories(f"well:{store_well(tmp_path / 't.hdf5', twice)}#u")
    store(tmp_path, "hdf5", make_data())  # one array in data.h5, no field groups
    with pytest.raises(ValueError, match="not in the_well's layout.*'hdf5:"):
        tx.data.open_trajectories(f"well:{tmp_path / 'data.h5'}")
    with pytest.raises(ValueError, match="channels_last=True` does not apply"):
        tx.data.open_trajectories(f"well:{path};channels_last")
    with pytest.raises(ValueError, match=r"unknown option 'channel_last'.*\('channels_last',\)"):
        tx.data.open_trajectories(f"well:{path};channel_last")
    with pytest.raises(TypeError, match="`dataset` must be a data set name"):
        tx.data.DiskTrajectories(path, "hdf5", ["t0_fields/density"])


def test_command_line_trains_on_the_well_layout_and_channels_last(tmp_path):
    """A `trainax-fm train` run (fresh process) on a the_well file, tested on the same
    fields stored channels last; relative paths, fields and options survive in the
    saved configuration."""
    rng = np.random.default_rng(3)
    density = rng.normal(size=(6, 8, 16)).astype(np.float32)
    velocity = rng.normal(size=(6, 8, 16, 1)).astype(np.float32)
    store_well(tmp_path / "w.hdf5", {"t0_fields/density": density,
                                     "t1_fields/velocity": velocity})
    stacked = np.stack([density, velocity[..., 0]], axis=-1)  # (S, T, X, C)
    np.save(tmp_path / "test.npy", stacked[:2])
    (tmp_path / "c.toml").write_text(
        'name = "well"\n'
        '[data]\nsource = "well:w.hdf5#velocity,density"\n'
        'test_source = "npy:test.npy;channels_last"\n'
        '[network]\nspec = "Conv;4;2;relu"\n'
        '[training]\nmethod = "sup;2"\nnum_training_steps = 4\nbatch_size = 4\n'
        '[evaluation]\nnum_rollout_steps = 3\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "trainax_fm", "train", str(tmp_path / "c.toml"),
         "--results", str(tmp_path / "runs"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "well"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and len(metrics["nrmse"]) == 3
    # two channels in and out: (2*4*3 + 4) + (4*4*3 + 4) + (4*2*3 + 2) parameters
    assert metrics["num_parameters"] == 106
    saved = tx.experiment.load_config(run / "config.toml")["data"]
    assert saved["source"] == f"well:{tmp_path / 'w.hdf5'}#velocity,density"
    assert saved["test_source"] == f"npy:{tmp_path / 'test.npy'};channels_last"


def test_the_experiment_data_of_other_layouts(tmp_path):
    fields = well_fields((5, 12, 5, 4))
    store_well(tmp_path / "w.hdf5", fields)
    names = ["t0_fields/density", "t0_fields/pressure", "t1_fields/velocity"]
    dataset, config = tx.experiment.load_data(validate_config(
        {"data": {"source": f"well:{tmp_path / 'w.hdf5'}"}, "evaluation": {"num_rollout_steps": 3}}
    ))
    assert config["data"]["num_test_samples"] == 1
    assert dataset.train.shape == (4, 12, 4, 5, 4)
    np.testing.assert_array_equal(dataset.test, as_channels(fields, names)[4:, :4])
    with pytest.raises(ConfigError, match="data.source.*no field 'vorticity'"):
        tx.experiment.load_data(validate_config(
            {"data": {"source": f"well:{tmp_path / 'w.hdf5'}#vorticity"}}))
    with pytest.raises(ConfigError, match="data.test_source.*unknown option 'channels_first'"):
        validate_config({"data": {"source": f"well:{tmp_path / 'w.hdf5'}",
                                  "test_source": f"npy:{tmp_path / 't.npy'};channels_first"}})
    with pytest.raises(ConfigError, match="data.source.*only on a source read from disk.*npy:"):
        validate_config({"data": {"source": f"file:{tmp_path / 't.npy'};channels_last"}})
