"""The training loop: engine options on every trainer, hooks, stop requests, stages,
deterministic dispatch and bounded caches."""

import functools
import inspect
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import trainax_fm as tx
from trainax_fm._loop import _compiled
from trainax_fm._loop._dispatch import MAX_STEPS_PER_DISPATCH, steps_per_dispatch
from trainax_fm._loop._options import ENGINE_OPTION_NAMES

KEY = jax.random.PRNGKey(0)


def conv(seed=0):
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(seed))


@pytest.fixture(scope="module")
def data():
    return jax.random.normal(KEY, (3, 10, 1, 8))


def exported_trainers():
    return [
        getattr(tx.trainer, name)
        for name in dir(tx.trainer)
        if name.endswith("Trainer") and inspect.isclass(getattr(tx.trainer, name))
    ]


@pytest.mark.parametrize("trainer_class", exported_trainers(), ids=lambda c: c.__name__)
def test_every_trainer_accepts_every_engine_option(trainer_class):
    parameters = inspect.signature(trainer_class).parameters
    missing = [name for name in ENGINE_OPTION_NAMES if name not in parameters]
    assert not missing, f"{trainer_class.__name__} lacks engine options {missing}"
    for name in ENGINE_OPTION_NAMES:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    # ... also where static tools look: the `__init__` written in the source.
    written = trainer_init_parameters_read_statically()[trainer_class.__name__]
    missing = [name for name in ENGINE_OPTION_NAMES if name not in written]
    assert not missing, (
        f"{trainer_class.__name__}.__init__ does not spell out the engine options "
        f"{missing}; add them as keywords with EngineOptions' defaults"
    )


@functools.cache
def trainer_init_parameters_read_statically() -> dict[str, dict]:
    """Each trainer's `__init__` parameters as griffe reads them from the source,
    without importing it (what mkdocstrings and other static tools see)."""
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs tools")
    root = Path(tx.__file__).resolve().parents[1]
    extensions = griffe.load_extensions(
        "dataclasses", str(root / "docs" / "hooks" / "griffe_keyword_init.py")
    )
    package = griffe.load(
        "trainax_fm", search_paths=[str(root)], allow_inspection=False, extensions=extensions
    )
    found = {}
    for trainer_class in [*exported_trainers(), tx.GeneralTrainer]:
        static_class = package[
            f"{trainer_class.__module__}.{trainer_class.__name__}".removeprefix("trainax_fm.")
        ]
        init = static_class.all_members["__init__"]
        found[trainer_class.__name__] = {p.name: p for p in init.parameters}
    return found


def test_every_trainer_spells_out_its_keywords_in_the_source():
    # IDEs and the API reference read the source: every keyword `inspect` shows must be
    # written in the trainer's `__init__` with the same kind and default.
    static = trainer_init_parameters_read_statically()
    engine_defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(tx.EngineOptions).parameters.items()
    }
    for trainer_class in [*exported_trainers(), tx.GeneralTrainer]:
        written = static[trainer_class.__name__]
        runtime = inspect.signature(trainer_class).parameters
        assert [name for name in written if name != "self"] == list(runtime), (
            f"{trainer_class.__name__}.__init__ must list its keywords explicitly "
            "(no **keywords): IDEs and the API reference cannot see them otherwise"
        )
        for name, parameter in runtime.items():
            kind = written[name].kind.name.lower()
            assert kind == parameter.kind.name.lower(), (trainer_class.__name__, name)
            default = written[name].default
            if parameter.default is inspect.Parameter.empty:
                assert default is None, (trainer_class.__name__, name)
            else:
                assert default is not None, (trainer_class.__name__, name)
            if name in engine_defaults and not (
                trainer_class is tx.trainer.ProgressiveDistillationTrainer
                and name == "checkpoint_path"
            ):
                assert parameter.default == engine_defaults[name], (trainer_class.__name__, name)


def test_one_line_trainers_take_their_configuration_keywords_with_its_defaults():
    for trainer_class in exported_trainers():
        configuration_type = getattr(trainer_class, "configuration_type", None)
        if configuration_type is None:
            continue
        trainer_parameters = inspect.signature(trainer_class).parameters
        for name, parameter in inspect.signature(configuration_type).parameters.items():
            assert name in trainer_parameters, (trainer_class.__name__, name)
            assert trainer_parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert trainer_parameters[name].default == parameter.default, (
                trainer_class.__name__, name
            )


def test_trainer_keyword_errors_name_the_trainer():
    missing = "SupervisedTrainer: missing a required argument: 'optimizer'"
    with pytest.raises(TypeError, match=missing):
        tx.trainer.SupervisedTrainer(np.zeros((2, 5, 1, 4)), num_training_steps=1, batch_size=1)
    with pytest.raises(TypeError, match="PushforwardTrainer: got an unexpected keyword argument"):
        tx.trainer.PushforwardTrainer(
            np.zeros((2, 5, 1, 4)), optimizer=optax.sgd(0.1), num_training_steps=1,
            batch_size=1, num_pushforward_step=2,
        )


def test_griffe_extension_refuses_a_record_it_cannot_read(tmp_path):
    # A class whose `__init__ = keyword_init(Record)` names no dataclass of its module
    # would lose its signature in the API reference without a word: the extension says so.
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs tools")
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from somewhere import keyword_init\n\n"
        "class Trainer:\n"
        "    __init__ = keyword_init(NotHere)\n"
    )
    root = Path(tx.__file__).resolve().parents[1]
    extensions = griffe.load_extensions(
        "dataclasses", str(root / "docs" / "hooks" / "griffe_keyword_init.py")
    )
    with pytest.raises(ValueError, match="fakepkg.Trainer: `__init__ = keyword_init\\(NotHere\\)`"):
        griffe.load(
            "fakepkg", search_paths=[str(tmp_path)], allow_inspection=False,
            extensions=extensions,
        )


def test_trainers_keep_the_trainax_keywords():
    signature = inspect.signature(tx.trainer.SupervisedTrainer)
    names = list(signature.parameters)
    assert names[:8] == [
        "data_trajectories", "ref_stepper", "residuum_fn", "optimizer", "callback_fn",
        "num_training_steps", "batch_size", "num_rollout_steps",
    ]
    assert signature.parameters["cut_bptt"].default is False
    assert signature.parameters["optimizer"].default is inspect.Parameter.empty
    assert "cut_div_chain" in inspect.signature(tx.trainer.DivertedChainBranchOneTrainer).parameters
    assert "cut_prev" in inspect.signature(tx.trainer.ResiduumTrainer).parameters


def test_engine_options_reach_the_trainer(data, tmp_path):
    trainer = tx.trainer.TeacherForcingTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=4,
        num_rollout_steps=2, steps_per_dispatch=3, checkpoint_path=tmp_path / "c.eqx",
        checkpoint_every=2, on_nonfinite="skip",
    )
    assert trainer.options.steps_per_dispatch == 3
    result = trainer.train(conv(), KEY, spawn_tqdm=False)
    assert result.train_state.steps_per_dispatch == 3
    assert tx.load_train_state(tmp_path / "c.eqx", conv(), optax.adam(1e-2)).step == 6


@pytest.mark.parametrize(
    "options, error, words",
    [
        ({"steps_per_dispatch": 0}, ValueError, "steps_per_dispatch"),
        ({"checkpoint_every": 5}, ValueError, "checkpoint_path"),
        ({"on_nonfinite": "ignore"}, ValueError, "on_nonfinite"),
        ({"num_seeds": 0}, ValueError, "num_seeds"),
        ({"mesh": "cpu"}, TypeError, "mesh"),
        ({"steps_per_dispach": 2}, TypeError, "steps_per_dispach"),
    ],
)
def test_bad_engine_options_are_named(data, options, error, words):
    with pytest.raises(error, match=words):
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4, **options
        )


def test_train_overrides_engine_options(data):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=4
    )
    result = trainer.train(conv(), KEY, spawn_tqdm=False, steps_per_dispatch=1)
    assert result.train_state.steps_per_dispatch == 1
    with pytest.raises(TypeError, match="engine options"):
        trainer.train(conv(), KEY, spawn_tqdm=False, checkpoint_evry=2)


class Recorder(tx.hook.AbstractHook):
    """Records every event; asks for a boundary every 4 updates; may stop at a step."""

    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def next_boundary(self, loop, step):
        return (step // 4 + 1) * 4

    def on_start(self, loop):
        self.events.append(("start", loop.step))

    def before_updates(self, loop, count):
        self.events.append(("before", loop.step, count))

    def after_updates(self, loop, chunk):
        self.events.append(("after", chunk.first_step, chunk.count))

    def on_boundary(self, loop):
        self.events.append(("boundary", loop.step))
        if self.stop_at is not None and loop.step >= self.stop_at:
            loop.request_stop(f"stopped at {loop.step}")

    def on_end(self, loop):
        self.events.append(("end", loop.step))

    def close(self, loop):
        self.events.append(("close", loop.step))


def test_hook_events_in_order(data):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=10, batch_size=4,
        steps_per_dispatch=100,
    )
    recorder = Recorder()
    result = trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[recorder])
    assert recorder.events == [
        ("start", 0),
        ("before", 0, 4), ("after", 0, 4), ("boundary", 4),
        ("before", 4, 4), ("after", 4, 4), ("boundary", 8),
        ("before", 8, 2), ("after", 8, 2),
        ("end", 10), ("close", 10),
    ]
    assert result.stop_reason is None


def test_a_hook_stops_training_cleanly(data, tmp_path):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=20, batch_size=4,
        steps_per_dispatch=1, checkpoint_path=tmp_path / "c.eqx",
    )
    result = trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[Recorder(stop_at=8)])
    assert result.stop_reason == "stopped at 8"
    assert result.train_state.step == 8 and result.loss_history.shape == (8,)
    assert tx.load_train_state(tmp_path / "c.eqx", conv(), optax.adam(1e-2)).step == 8
    reference = trainer.train(conv(), KEY, spawn_tqdm=False, num_steps=8)
    np.testing.assert_array_equal(result.stepper.weight, reference.stepper.weight)


def test_close_runs_when_training_raises(data):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.sgd(1e30), num_training_steps=20, batch_size=4,
        steps_per_dispatch=1,
    )
    recorder = Recorder()
    with pytest.raises(tx.NonFiniteLossError):
        trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[recorder])
    assert recorder.events[-1][0] == "close"
    assert ("end", 20) not in recorder.events


def test_dispatch_rule_depends_only_on_the_cost():
    light = _compiled.UpdateCost(flops=1e4, has_convolution=True)
    heavy_conv = _compiled.UpdateCost(flops=1e8, has_convolution=True)
    heavy_dense = _compiled.UpdateCost(flops=1e8, has_convolution=False)
    assert steps_per_dispatch(light, "cpu") == MAX_STEPS_PER_DISPATCH
    assert steps_per_dispatch(heavy_conv, "cpu") == 1
    assert 2 <= steps_per_dispatch(heavy_dense, "cpu") < MAX_STEPS_PER_DISPATCH
    assert steps_per_dispatch(heavy_conv, "gpu") > 1


def test_auto_dispatch_is_the_same_after_clearing_caches(data):
    def dispatch():
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=4
        )
        return trainer.train(conv(), KEY, spawn_tqdm=False).train_state.steps_per_dispatch

    first = dispatch()
    tx.clear_caches()
    assert not _compiled._COMPILED_CACHE
    assert dispatch() == first


def test_compiled_cache_is_bounded(data, monkeypatch):
    monkeypatch.setattr(_compiled, "MAX_CACHED_UPDATES", 2)
    tx.clear_caches()
    for rate in (1e-2, 2e-2, 3e-2):  # three optimizers: three compiled programs
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.sgd(rate), num_training_steps=2, batch_size=4,
            steps_per_dispatch=1,
        ).train(conv(), KEY, spawn_tqdm=False)
    assert len(_compiled._COMPILED_CACHE) == 2


def test_stages_carry_the_stepper_and_resume_mid_stage(data, tmp_path):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=1, batch_size=4,
        num_rollout_steps=2,
    )
    stages = [
        tx.Stage(tx.configuration.Supervised(1), optax.adam(1e-2), 12),
        tx.Stage(tx.configuration.Supervised(2), optax.adam(1e-2), 12, keep_optimizer_state=True),
    ]
    full = tx.train_stages(trainer, stages, conv(), KEY, spawn_tqdm=False)
    assert [r.train_state.stage for r in full] == [0, 1]
    path = tmp_path / "stages.eqx"

    class Interrupt(tx.hook.AbstractHook):
        def on_boundary(self, loop):
            if loop.stage == 1 and loop.step == 6:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tx.train_stages(
            trainer, stages, conv(), KEY, spawn_tqdm=False, checkpoint_path=path,
            checkpoint_every=3, stage_hooks=lambda stage: [Interrupt()],
        )
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert (state.stage, state.step) == (1, 6)
    resumed = tx.train_stages(trainer, stages, resume_from=state, spawn_tqdm=False)
    assert len(resumed) == 1
    np.testing.assert_array_equal(resumed[-1].stepper.weight, full[-1].stepper.weight)
    np.testing.assert_array_equal(resumed[-1].loss_history, full[-1].loss_history)


def test_stage_rejects_bad_input(data):
    with pytest.raises(ValueError, match="num_steps"):
        tx.Stage(tx.configuration.Supervised(1), optax.adam(1e-2), 0)
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=1, batch_size=4
    )
    with pytest.raises(TypeError, match="Stage"):
        tx.train_stages(trainer, [], conv(), KEY)


def test_version_1_checkpoints_still_load(data, tmp_path):
    """Files written before stages existed (format 1) read as single-stage states."""
    import json

    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=4
    )
    path = tmp_path / "state.eqx"
    trainer.train(conv(), KEY, spawn_tqdm=False, checkpoint_path=path)
    header, payload = path.read_bytes().split(b"\n", 1)
    newer = ("stage", "staged", "validation", "hook_states")
    old = {k: v for k, v in json.loads(header).items() if k not in newer}
    path.write_bytes(json.dumps({**old, "format_version": 1}).encode() + b"\n" + payload)
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    assert (state.step, state.stage, state.stage_start, state.run_key) == (4, 0, None, None)
    path.write_bytes(json.dumps({**old, "format_version": 5}).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="format version 5"):
        tx.load_train_state(path, conv(), optax.adam(1e-2))


def test_train_stages_rejects_a_state_of_other_stages(data):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4
    )
    single = trainer.train(conv(), KEY, spawn_tqdm=False).train_state
    stages = [tx.Stage(tx.configuration.Supervised(1), optax.adam(1e-2), 2)]
    with pytest.raises(ValueError, match="not a state of these stages"):
        tx.train_stages(trainer, stages, resume_from=single, spawn_tqdm=False)
    with pytest.raises(TypeError, match="stepper"):
        tx.train_stages(trainer, stages, spawn_tqdm=False)


def test_unknown_trainer_keyword_names_the_trainer(data):
    with pytest.raises(TypeError, match="SupervisedTrainer.*num_rollout_step"):
        tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=4,
            num_rollout_step=2,
        )
    with pytest.raises(TypeError, match="ConfigurationTrainer.*missing .*'optimizer'"):
        tx.trainer.ConfigurationTrainer(
            data, tx.configuration.Supervised(1), num_training_steps=2, batch_size=4
        )
    with pytest.raises(TypeError, match="ConfigurationTrainer.*batch_sise"):
        tx.trainer.ConfigurationTrainer(
            data, tx.configuration.Supervised(1), optimizer=optax.adam(1e-2),
            num_training_steps=2, batch_size=4, batch_sise=4,
        )
