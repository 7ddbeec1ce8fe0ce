"""Checkpoints: atomic, versioned, resumable; failures never destroy the last good one."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx

KEY = jax.random.PRNGKey(0)


def conv():
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(1))


@pytest.fixture(scope="module")
def data():
    return jax.random.normal(KEY, (3, 10, 1, 8))


def trainer(data, steps=20, optimizer=None):
    return tx.trainer.SupervisedTrainer(
        data, optimizer=optimizer or optax.adam(1e-2), num_training_steps=steps,
        batch_size=4, num_rollout_steps=2, steps_per_dispatch=1,
    )


def test_save_load_round_trip(tmp_path, data):
    run = trainer(data).train(conv(), KEY, num_steps=7, spawn_tqdm=False)
    path = tx.save_train_state(tmp_path / "state.eqx", run.train_state)
    loaded = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert loaded.step == 7
    np.testing.assert_array_equal(loaded.stepper.weight, run.stepper.weight)
    np.testing.assert_array_equal(loaded.loss_history, run.train_state.loss_history)
    np.testing.assert_array_equal(loaded.key, KEY)
    for a, b in zip(
        jax.tree_util.tree_leaves(loaded.opt_state), jax.tree_util.tree_leaves(run.opt_state)
    ):
        np.testing.assert_array_equal(a, b)


def test_typed_keys_round_trip(tmp_path, data):
    key = jax.random.key(3)
    run = trainer(data).train(conv(), key, num_steps=3, spawn_tqdm=False)
    tx.save_train_state(tmp_path / "s.eqx", run.train_state)
    loaded = tx.load_train_state(tmp_path / "s.eqx", conv(), optax.adam(1e-2))
    np.testing.assert_array_equal(jax.random.key_data(loaded.key), jax.random.key_data(key))


def test_train_save_resume_equals_uninterrupted(tmp_path, data):
    full = trainer(data).train(conv(), KEY, spawn_tqdm=False)
    path = tmp_path / "ckpt.eqx"
    trainer(data).train(conv(), KEY, num_steps=10, checkpoint_path=path, spawn_tqdm=False)
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    resumed = trainer(data).train(resume_from=state, spawn_tqdm=False)
    np.testing.assert_array_equal(resumed.stepper.weight, full.stepper.weight)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)


def changed_trainer(data, **changes):
    settings = dict(optimizer=optax.adam(1e-2), num_training_steps=20, batch_size=4,
                    num_rollout_steps=2, steps_per_dispatch=1)
    return tx.trainer.SupervisedTrainer(data, **{**settings, **changes})


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"batch_size": 2}, ["`batch_size` (windows per update) = 4", "uses 2"]),
        ({"num_rollout_steps": 4}, ["window length", "= 3", "uses 5", "num_rollout_steps + 1"]),
        ({"num_training_steps": 6}, ["already done 10 updates", "`num_training_steps`",
                                     "= 6", "train nothing", "num_training_steps >= 10"]),
    ],
    ids=["batch_size", "rollout_length", "fewer_steps"],
)
def test_resume_with_a_changed_trainer_is_refused(tmp_path, data, changes, words):
    """In memory and from a checkpoint file: a resumed run must keep its minibatches
    and windows, and must have updates left (the CLI refuses the same)."""
    path = tmp_path / "ckpt.eqx"
    first = trainer(data).train(conv(), KEY, num_steps=10, checkpoint_path=path,
                                spawn_tqdm=False)
    from_file = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert (from_file.batch_size, from_file.window_length) == (4, 3)
    for state in (first.train_state, from_file):
        with pytest.raises(ValueError, match="`resume_from`") as info:
            changed_trainer(data, **changes).train(resume_from=state, spawn_tqdm=False)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
    # the unchanged trainer still resumes, also with exactly the steps already done
    trainer(data, steps=10).train(resume_from=from_file, spawn_tqdm=False)


def test_periodic_checkpoints_hold_the_right_step(tmp_path, data):
    path = tmp_path / "ckpt.eqx"
    written = []
    original = tx.hook._checkpoint.save_train_state

    def spy(p, state):
        written.append(state.step)
        return original(p, state)

    tx.hook._checkpoint.save_train_state = spy
    try:
        trainer(data).train(conv(), KEY, checkpoint_path=path, checkpoint_every=6, spawn_tqdm=False)
    finally:
        tx.hook._checkpoint.save_train_state = original
    assert written == [6, 12, 18, 20]
    assert tx.load_train_state(path, conv(), optax.adam(1e-2)).step == 20


def test_interrupted_write_keeps_previous_checkpoint(tmp_path, data, monkeypatch):
    path = tmp_path / "ckpt.eqx"
    run = trainer(data).train(conv(), KEY, num_steps=5, checkpoint_path=path, spawn_tqdm=False)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", crash)
    with pytest.raises(KeyboardInterrupt):
        tx.save_train_state(path, run.train_state)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.eqx"]
    assert tx.load_train_state(path, conv(), optax.adam(1e-2)).step == 5


class PoisonedAfter(tx.configuration.BaseConfiguration):
    """One-step supervised loss that turns NaN from training step `bad_step` on."""

    bad_step: int

    @property
    def required_window_length(self):
        return 2

    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None, key=None, step=None):
        loss = tx.configuration.Supervised()(stepper, data)
        return loss + jnp.where(step >= self.bad_step, jnp.nan, 0.0)


def test_nan_stops_at_the_right_step_and_keeps_the_checkpoint(tmp_path, data):
    path = tmp_path / "ckpt.eqx"
    t = tx.trainer.ConfigurationTrainer(
        data, PoisonedAfter(7), optimizer=optax.adam(1e-2), num_training_steps=20,
        batch_size=4,
    )
    with pytest.raises(tx.NonFiniteLossError, match="at update 7") as info:
        t.train(conv(), KEY, checkpoint_path=path, checkpoint_every=5, spawn_tqdm=False)
    assert str(path) in str(info.value)
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert state.step == 5
    assert np.all(np.isfinite(np.asarray(state.loss_history)))


def test_exploding_parameters_stop_before_reaching_a_checkpoint(tmp_path, data):
    class Scale(eqx.Module):
        weight: jax.Array

        def __call__(self, u):
            return u * self.weight

    path = tmp_path / "ckpt.eqx"
    t = tx.trainer.SupervisedTrainer(
        data * 1e18, optimizer=optax.sgd(1e10), num_training_steps=50, batch_size=4
    )
    with pytest.raises(tx.NonFiniteLossError, match="parameters became NaN/Inf in update 0"):
        t.train(
            Scale(jnp.ones(())), KEY, checkpoint_path=path, checkpoint_every=1, spawn_tqdm=False
        )
    assert not path.exists()


def test_skip_keeps_parameters_finite(data):
    class Scale(eqx.Module):
        weight: jax.Array

        def __call__(self, u):
            return u * self.weight

    t = tx.trainer.SupervisedTrainer(
        data * 1e18, optimizer=optax.sgd(1e10), num_training_steps=30, batch_size=4
    )
    result = t.train(Scale(jnp.ones(())), KEY, on_nonfinite="skip", spawn_tqdm=False)
    assert not np.all(np.isfinite(np.asarray(result.loss_history)))


@pytest.mark.parametrize(
    "content, match",
    [(b"", "not a trainax_fm"), (b"hello\n", "not a trainax_fm"),
     (b'{"magic": "trainax_fm-train-state", "format_version": 99}\n', "version 99")],
)
def test_foreign_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.eqx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        tx.load_train_state(path, conv(), optax.adam(1e-2))


def test_truncated_file_is_a_clear_error(tmp_path, data):
    run = trainer(data).train(conv(), KEY, num_steps=2, spawn_tqdm=False)
    path = tx.save_train_state(tmp_path / "s.eqx", run.train_state)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 40])
    with pytest.raises(ValueError, match="truncated"):
        tx.load_train_state(path, conv(), optax.adam(1e-2))


def test_missing_file_and_bad_arguments(tmp_path, data):
    with pytest.raises(FileNotFoundError):
        tx.load_train_state(tmp_path / "nope.eqx", conv(), optax.adam(1e-2))
    with pytest.raises(ValueError, match="checkpoint_path"):
        trainer(data).train(conv(), KEY, checkpoint_every=3, spawn_tqdm=False)
    with pytest.raises(ValueError, match="on_nonfinite"):
        trainer(data).train(conv(), KEY, on_nonfinite="ignore", spawn_tqdm=False)
    with pytest.raises(TypeError, match="TrainState"):
        tx.save_train_state(tmp_path / "x", {"not": "a state"})


class HeavyConv(eqx.Module):
    """A convolution stack heavy enough that "auto" picks one update per dispatch."""

    layers: tuple

    def __init__(self, key):
        keys = jax.random.split(key, 3)
        self.layers = (
            eqx.nn.Conv1d(1, 96, 5, padding=2, padding_mode="CIRCULAR", key=keys[0]),
            eqx.nn.Conv1d(96, 96, 5, padding=2, padding_mode="CIRCULAR", key=keys[1]),
            eqx.nn.Conv1d(96, 1, 5, padding=2, padding_mode="CIRCULAR", key=keys[2]),
        )

    def __call__(self, u):
        for layer in self.layers[:-1]:
            u = jax.nn.relu(layer(u))
        return self.layers[-1](u)


@pytest.mark.parametrize(
    "make_stepper, steps, expected_dispatch",
    [(conv, 200, "loop"), (lambda: HeavyConv(jax.random.key(3)), 24, "single")],
    ids=["light", "heavy"],
)
def test_default_resume_is_bit_identical(tmp_path, data, make_stepper, steps, expected_dispatch):
    """With default options, N updates equal N/2 + save + load + N/2 bit for bit: the
    automatic dispatch choice is a function of the program, not of timings."""

    def make():
        return tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=steps, batch_size=16,
            num_rollout_steps=2,
        )

    full = make().train(make_stepper(), KEY, spawn_tqdm=False)
    dispatch = full.train_state.steps_per_dispatch
    assert (dispatch == 1) == (expected_dispatch == "single")
    path = tmp_path / "ckpt.eqx"
    make().train(make_stepper(), KEY, num_steps=steps // 2, checkpoint_path=path, spawn_tqdm=False)
    state = tx.load_train_state(path, make_stepper(), optax.adam(1e-3))
    assert state.steps_per_dispatch == dispatch
    tx.clear_caches()  # the resumed run must not depend on what this process compiled
    resumed = make().train(resume_from=state, spawn_tqdm=False)
    for a, b in zip(
        jax.tree_util.tree_leaves(eqx.filter(resumed.stepper, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(full.stepper, eqx.is_array)),
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)


def test_numpy_data_works_everywhere(data):
    numpy_data = np.asarray(data)
    trainer = tx.trainer.SupervisedTrainer(
        numpy_data, optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=4
    )
    assert trainer.trajectory_sub_stacker(np.array([0, 1])).shape == (2, 2, 1, 8)
    assert np.isfinite(float(trainer.full_loss(conv())))


def test_trailing_data_is_a_clear_error(tmp_path, data):
    run = trainer(data).train(conv(), KEY, num_steps=2, spawn_tqdm=False)
    path = tx.save_train_state(tmp_path / "s.eqx", run.train_state)
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(ValueError, match="more data"):
        tx.load_train_state(path, conv(), optax.adam(1e-2))


def test_version_3_files_load_their_validation_as_the_hook_state(tmp_path, data):
    """Version 3 kept the validation record in a slot of its own; it loads as the
    validation hook's state, and the run resumes from it as from a version 4 file."""
    import json

    options = dict(validation_data=data, validate_every=5, spawn_tqdm=False)
    path = tmp_path / "state.eqx"
    trainer(data).train(conv(), KEY, num_steps=10, checkpoint_path=path, **options)
    header, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(header)
    assert header["format_version"] == 4 and list(header["hook_states"]) == ["validation"]
    current = tx.load_train_state(path, conv(), optax.adam(1e-2))
    old = {k: v for k, v in header.items() if k != "hook_states"}
    old.update(format_version=3, validation=header["hook_states"]["validation"]["describe"])
    path.write_bytes(json.dumps(old).encode() + b"\n" + payload)
    converted = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert list(converted.hook_states) == ["validation"]
    assert converted.validation.num_validations == 2
    for a, b in zip(jax.tree_util.tree_leaves(converted), jax.tree_util.tree_leaves(current)):
        np.testing.assert_array_equal(a, b)
    resumed = trainer(data).train(resume_from=converted, **options)
    full = trainer(data).train(conv(), KEY, **options)
    np.testing.assert_array_equal(resumed.stepper.weight, full.stepper.weight)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.validation),
                    jax.tree_util.tree_leaves(full.validation)):
        np.testing.assert_array_equal(a, b)


def test_version_4_files_naming_the_old_module_of_the_validation_state_load(tmp_path, data):
    """Format 4 files record each hook state's type by module path; files written while
    `ValidationHistory` lived in `trainax_fm._validation_history` still load."""
    import json

    options = dict(validation_data=data, validate_every=5, spawn_tqdm=False)
    path = tmp_path / "state.eqx"
    trainer(data).train(conv(), KEY, num_steps=10, checkpoint_path=path, **options)
    header, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(header)
    assert header["hook_states"]["validation"]["type"] == (
        "trainax_fm._state._validation_history.ValidationHistory"
    )
    current = tx.load_train_state(path, conv(), optax.adam(1e-2))
    header["hook_states"]["validation"]["type"] = "trainax_fm._validation_history.ValidationHistory"
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    old = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert isinstance(old.validation, tx.ValidationHistory)
    for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(current)):
        np.testing.assert_array_equal(a, b)


class _UpdateCount(tx.hook.AbstractHookState):
    count: jax.Array
    label: str = eqx.field(static=True)

    def describe(self):
        return {"label": self.label}

    @classmethod
    def like(cls, description, stepper_like, num_seeds):
        return cls(jnp.zeros((), jnp.int32), description["label"])


class _CountUpdates(tx.hook.AbstractHook):
    """A user hook with state of its own: it counts the updates of the whole run."""

    state_name = "count"

    def init_state(self, loop):
        return _UpdateCount(jnp.zeros((), jnp.int32), "updates")

    def after_updates(self, loop, chunk):
        state = loop.hook_states[self.state_name]
        loop.hook_states[self.state_name] = eqx.tree_at(
            lambda s: s.count, state, state.count + chunk.count
        )


def test_a_new_stateful_hook_is_checkpointed_by_name(tmp_path, data):
    path = tmp_path / "state.eqx"
    trainer(data).train(conv(), KEY, num_steps=7, checkpoint_path=path,
                        hooks=[_CountUpdates()], spawn_tqdm=False)
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert list(state.hook_states) == ["count"] and state.validation is None
    assert int(state.hook_states["count"].count) == 7
    resumed = trainer(data).train(resume_from=state, hooks=[_CountUpdates()], spawn_tqdm=False)
    assert int(resumed.train_state.hook_states["count"].count) == 20
