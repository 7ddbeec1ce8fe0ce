"""The logging hook: JSON lines, CSV and TensorBoard files that read back the values."""

import csv
import json
import struct

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx

KEY = jax.random.PRNGKey(0)
SCHEDULE = optax.linear_schedule(1e-2, 1e-3, 60)


@pytest.fixture(scope="module")
def data():
    x = jnp.linspace(0, 2 * jnp.pi, 16, endpoint=False)
    shifts = jnp.arange(7)[:, None, None, None] * 0.4
    times = jnp.arange(8)[None, :, None, None] * 0.3
    trajectories = jnp.sin(x[None, None, None, :] - times - shifts)
    return trajectories[:5], trajectories[5:]


def conv():
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=KEY)


def make_trainer(data, **options):
    train, validation = data
    return tx.trainer.SupervisedTrainer(
        train, optimizer=optax.adam(SCHEDULE), num_training_steps=60, batch_size=8,
        validation_data=validation, validate_every=20,
        validation_metrics=("loss", "nrmse@2"), **options,
    )


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_tensorboard_scalars(log_dir):
    """Every scalar of the event files, as `{tag: {step: value}}` (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        blob = path.read_bytes()
        offset = 0
        while offset < len(blob):
            (length,) = struct.unpack("<Q", blob[offset : offset + 8])
            record = blob[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_logs_read_back_with_the_logged_values(data, tmp_path):
    logger = tx.hook.Logger(
        tmp_path, every=15, formats=("jsonl", "csv", "tensorboard"), learning_rate=SCHEDULE
    )
    result = make_trainer(data).train(conv(), KEY, spawn_tqdm=False, hooks=[logger])
    records = read_jsonl(tmp_path / "log.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    validation = [r for r in records if r["kind"] == "validation"]
    assert [r["step"] for r in train] == [15, 30, 45, 60]
    assert [r["step"] for r in validation] == [20, 40, 60]
    losses = np.asarray(result.loss_history)
    for i, record in enumerate(train):
        assert record["loss"] == pytest.approx(
            float(np.mean(losses[15 * i : 15 * (i + 1)])), rel=1e-6
        )
        assert record["learning_rate"] == pytest.approx(float(SCHEDULE(record["step"])))
        assert record["grad_norm"] > 0 and record["updates_per_second"] > 0
    for i, record in enumerate(validation):
        for name in ("loss", "nrmse@2"):
            assert record[name] == pytest.approx(float(result.validation.values[name][i]))
    with open(tmp_path / "validation.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["step"]) for row in rows] == [20, 40, 60]
    assert float(rows[1]["nrmse@2"]) == pytest.approx(validation[1]["nrmse@2"])
    scalars = read_tensorboard_scalars(tmp_path)
    assert scalars["validation/loss"] == pytest.approx(
        {r["step"]: r["loss"] for r in validation}
    )
    assert scalars["train/learning_rate"] == pytest.approx(
        {r["step"]: r["learning_rate"] for r in train}
    )


def test_gradient_norm_is_that_of_the_next_update(data, tmp_path):
    trainer = make_trainer(data)
    logger = tx.hook.Logger(tmp_path, every=30, formats=("jsonl",))
    result = trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[logger], num_steps=30)
    record = [r for r in read_jsonl(tmp_path / "log.jsonl") if r["kind"] == "train"][0]
    # The update after step 30 with this gradient: recompute it by hand.
    state = result.train_state
    from trainax_fm._loop._loop import Loop
    from trainax_fm.hook._logging import global_norm

    problem = trainer.make_problem()
    loop = Loop(problem, state.stepper, state.opt_state, state.key, start=30, stop=60,
                past_losses=state.loss_history, num_seeds=None, traced=False, dispatch=1)
    grads = eqx.filter_grad(problem.loss)(
        state.stepper, loop.batch(), jax.random.fold_in(loop.update_key, 30), 30
    )
    assert record["grad_norm"] == pytest.approx(float(global_norm(grads)), rel=1e-5)


def test_updates_per_second_is_the_wall_time_rate_between_records(data, tmp_path):
    """The intervals of the rate add up to (at most) the wall time of the run and
    include each record's own work (here a slow `scalars` function)."""
    import time

    pause = 0.25

    def slow_scalars(loop):
        time.sleep(pause)
        return {}

    logger = tx.hook.Logger(tmp_path, every=10, formats=("jsonl",), grad_norm=False,
                            scalars=slow_scalars)
    trainer = tx.trainer.SupervisedTrainer(
        data[0], optimizer=optax.adam(1e-3), num_training_steps=40, batch_size=8,
        steps_per_dispatch=10,
    )
    begin = time.perf_counter()
    trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[logger])
    wall = time.perf_counter() - begin
    records = read_jsonl(tmp_path / "log.jsonl")
    intervals = [10 / r["updates_per_second"] for r in records]
    assert len(intervals) == 4 and sum(intervals) <= wall
    # Every interval after the first holds the previous record's pause.
    assert all(interval >= pause for interval in intervals[1:]), intervals


def test_learning_rate_from_injected_hyperparameters(data, tmp_path):
    optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=SCHEDULE)
    logger = tx.hook.Logger(tmp_path, every=20, formats=("jsonl",), grad_norm=False)
    trainer = tx.trainer.SupervisedTrainer(
        data[0], optimizer=optimizer, num_training_steps=40, batch_size=8
    )
    trainer.train(conv(), KEY, spawn_tqdm=False, hooks=[logger])
    records = read_jsonl(tmp_path / "log.jsonl")
    # The injected state holds the rate used by the last update (step - 1).
    assert [r["learning_rate"] for r in records] == pytest.approx(
        [float(SCHEDULE(19)), float(SCHEDULE(39))]
    )
    assert "grad_norm" not in records[0]


def test_resumed_log_reads_like_the_uninterrupted_one(data, tmp_path):
    full_dir, split_dir = tmp_path / "full", tmp_path / "split"
    make_trainer(data).train(
        conv(), KEY, spawn_tqdm=False, hooks=[tx.hook.Logger(full_dir, every=10)]
    )
    checkpoint = tmp_path / "state.eqx"
    first = make_trainer(data)
    first.train(conv(), KEY, spawn_tqdm=False, num_steps=30, checkpoint_path=checkpoint,
                hooks=[tx.hook.Logger(split_dir, every=10)])
    state = tx.load_train_state(checkpoint, conv(), optax.adam(SCHEDULE))
    # A run that went on past the checkpoint (to 50) and was lost ...
    first.train(resume_from=state, spawn_tqdm=False, num_steps=20,
                hooks=[tx.hook.Logger(split_dir, every=10)])
    # ... is resumed from the checkpoint at 30.
    make_trainer(data).train(resume_from=state, spawn_tqdm=False,
                             hooks=[tx.hook.Logger(split_dir, every=10)])
    full, split = read_jsonl(full_dir / "log.jsonl"), read_jsonl(split_dir / "log.jsonl")
    assert [(r["step"], r["kind"]) for r in split] == [(r["step"], r["kind"]) for r in full]
    for got, want in zip(split, full):
        for name in set(want) - {"step", "kind", "updates_per_second"}:
            assert got[name] == pytest.approx(want[name], rel=1e-6), (want["step"], name)
    full_rows = (full_dir / "validation.csv").read_text()
    assert (split_dir / "validation.csv").read_text() == full_rows


def test_rollout_pictures(data, tmp_path):
    pytest.importorskip("matplotlib")
    logger = tx.hook.Logger(tmp_path, every=60, formats=("jsonl",), rollout_plot_every=2)
    make_trainer(data).train(conv(), KEY, spawn_tqdm=False, hooks=[logger])
    pictures = sorted(p.name for p in (tmp_path / "rollouts").iterdir())
    assert pictures == ["step_0000040.png"]
    assert (tmp_path / "rollouts" / pictures[0]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(formats=("jsonl", "xml")), "`formats` must name at least one of"),
        (dict(every=0), "`every` must be an integer >= 1"),
        (dict(scalars=3), "`scalars` must be a function"),
    ],
)
def test_bad_logger_input(tmp_path, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tx.hook.Logger(tmp_path, **kwargs)
