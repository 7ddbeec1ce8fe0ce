"""`trainax_fm.data.SystemMixture`: trajectories of many systems mixed by weight.

Row counts against hand-computed largest-remainder rounding; the systems of the windows
that training actually draws (the engine's stream, and the minibatches a trainer's
callback sees) against the weights with a chi-square test; the same key gives the same
mixture; in memory equals on disk (rows of a `DiskTrajectories`), also for training; on
a `jax.make_mesh` mesh of 4 virtual devices in a subprocess; the errors.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from trainax_fm.data import DiskTrajectories, SystemMixture
from trainax_fm.data._mixer import epoch_permutations, stream_batch

ROOT = Path(__file__).resolve().parents[1]
# Chi-square quantiles at 0.999 by degrees of freedom: a correct sampler fails 1 in 1000.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266}


def labelled_data(counts=(3, 2, 1), num_time_steps=6, seed=0):
    """ODE trajectories `(S, T, 2)`; channel 1 holds the system's number (constant), so
    a window says which system it comes from. Systems `"s0"`, `"s1"`, ... with
    `counts[i]` trajectories each, interleaved in the file."""
    labels = [f"s{i}" for i, n in enumerate(counts) for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(labels))
    labels = [labels[i] for i in order]
    data = np.random.default_rng(seed + 1).standard_normal(
        (len(labels), num_time_steps, 2)
    ).astype(np.float32)
    data[:, :, 1] = np.asarray([int(label[1:]) for label in labels], np.float32)[:, None]
    return data, labels


def chi_square(counts, shares):
    counts = np.asarray(counts, float)
    expected = counts.sum() * np.asarray(shares, float)
    return float(np.sum((counts - expected) ** 2 / expected))


def test_rows_follow_the_weights_by_largest_remainder():
    data, labels = labelled_data()
    mixture = SystemMixture(
        data, labels, {"s0": 1.0, "s1": 2.0, "s2": 1.0}, key=jax.random.key(0),
        num_trajectories=10,
    )
    assert mixture.systems == ("s0", "s1", "s2")
    np.testing.assert_allclose(mixture.weights, (0.25, 0.5, 0.25))
    # Quotas 2.5, 5, 2.5: floors 2, 5, 2; the one row left goes to the first tie (s0).
    assert mixture.row_counts == (3, 5, 2)
    assert mixture.shape == (10, 6, 2)
    rows = np.asarray(mixture.rows)
    row_labels = [labels[r] for r in rows]
    assert tuple(row_labels) == mixture.row_systems
    assert row_labels == ["s0"] * 3 + ["s1"] * 5 + ["s2"] * 2
    np.testing.assert_array_equal(mixture.trajectories, data[rows])
    # s0 has 3 trajectories for 3 rows: each once; s1 2 for 5: each twice plus one.
    members = {s: [i for i, label in enumerate(labels) if label == s] for s in ("s0", "s1")}
    assert sorted(rows[:3].tolist()) == members["s0"]
    uses = [int(np.sum(rows == i)) for i in members["s1"]]
    assert sorted(uses) == [2, 3]
    # Default: equal weight per system, not per trajectory; S rows.
    equal = SystemMixture(data, labels, key=jax.random.key(0))
    assert equal.row_counts == (2, 2, 2)
    # A system left out of `weights` gets none.
    only = SystemMixture(data, labels, {"s2": 3.0}, key=jax.random.key(0))
    assert only.row_counts == (0, 0, 6) and set(only.row_systems) == {"s2"}


def test_the_same_key_gives_the_same_mixture():
    data, labels = labelled_data(counts=(20, 20, 20))
    weights = {"s0": 1.0, "s1": 1.0, "s2": 1.0}

    def draw(seed):
        return SystemMixture(data, labels, weights, key=jax.random.key(seed), num_trajectories=30)

    assert draw(1).rows == draw(1).rows
    np.testing.assert_array_equal(draw(1).trajectories, draw(1).trajectories)
    assert draw(1).rows != draw(2).rows
    assert len(set(draw(1).rows)) == 30  # fewer rows than trajectories: no repeats


def test_windows_of_the_engine_stream_follow_the_weights():
    """Through the engine's sampler (epoch permutations, consecutive slices) over the
    mixture's windows: the system counts of 2000 windows (less than an epoch) pass a
    chi-square test against the weights; the data in memory without a mixture do not."""
    data, labels = labelled_data(counts=(30, 5, 15), num_time_steps=8)
    weights = {"s0": 1.0, "s1": 3.0, "s2": 2.0}
    shares = np.asarray([1.0, 3.0, 2.0]) / 6.0
    mixture = SystemMixture(data, labels, weights, key=jax.random.key(4), num_trajectories=1200)
    stacker = tx.TrajectorySubStacker(mixture, 3)
    num_samples = stacker.num_total_samples
    assert num_samples == 1200 * 6
    permutations = epoch_permutations(jax.random.key(5), jnp.asarray(0), 1, num_samples)
    indices = np.concatenate(
        [np.asarray(stream_batch(permutations, 0, step, 20)) for step in range(100)]
    )
    systems = np.asarray(stacker(indices)[:, 0, 1]).astype(int)
    counts = np.bincount(systems, minlength=3)
    assert chi_square(counts, shares) < CHI2_999[2], counts
    plain = np.asarray(tx.TrajectorySubStacker(data, 3)(indices % (50 * 6))[:, 0, 1]).astype(int)
    assert chi_square(np.bincount(plain, minlength=3), shares) > CHI2_999[2]


def _record_system(update_i, stepper, data):
    return {"systems": None if data is None else data[:, 0, 1]}


def _trainer(source, **options):
    return tx.trainer.SupervisedTrainer(
        source, optimizer=optax.adam(1e-2), num_training_steps=60, batch_size=25,
        num_rollout_steps=1, steps_per_dispatch=1, callback_fn=_record_system, **options,
    )


def test_training_in_memory_and_on_disk_sees_the_weights(tmp_path):
    """A trainer over the mixture in memory and from disk: the same minibatches and
    weights; the systems of its 1500 windows pass the chi-square test."""
    data, labels = labelled_data(counts=(10, 4, 6), num_time_steps=6)
    path = tmp_path / "catalogue.npy"
    np.save(path, data)
    weights = {"s0": 2.0, "s1": 1.0, "s2": 1.0}
    key = jax.random.key(7)
    in_memory = SystemMixture(data, labels, weights, key=key, num_trajectories=400)
    on_disk = SystemMixture(DiskTrajectories(path), labels, weights, key=key, num_trajectories=400)
    assert on_disk.rows == in_memory.rows
    assert isinstance(on_disk.trajectories, DiskTrajectories)
    np.testing.assert_array_equal(on_disk.trajectories.read(), in_memory.trajectories)
    indices = np.array([0, 5, 999, 1999, 1234])
    np.testing.assert_array_equal(
        tx.TrajectorySubStacker(on_disk, 2)(indices),
        tx.TrajectorySubStacker(in_memory, 2)(indices),
    )
    stepper = eqx.nn.Linear(2, 2, key=jax.random.key(0))
    memory = _trainer(in_memory).train(stepper, jax.random.key(1), spawn_tqdm=False)
    disk = _trainer(on_disk).train(stepper, jax.random.key(1), spawn_tqdm=False)
    np.testing.assert_array_equal(disk.loss_history, memory.loss_history)
    np.testing.assert_array_equal(disk.stepper.weight, memory.stepper.weight)
    seen = np.concatenate([np.asarray(a["systems"]) for a in memory.aux_history]).astype(int)
    seen_disk = np.concatenate([np.asarray(a["systems"]) for a in disk.aux_history]).astype(int)
    np.testing.assert_array_equal(seen, seen_disk)
    assert len(seen) == 60 * 25
    counts = np.bincount(seen, minlength=3)
    assert chi_square(counts, [0.5, 0.25, 0.25]) < CHI2_999[2], counts


def test_disk_rows_select_read_and_find_nonfinite(tmp_path):
    """`DiskTrajectories(rows=...)`: reads, views and NaN search in its row order."""
    data = np.random.default_rng(3).standard_normal((6, 5, 2)).astype(np.float32)
    data[4, 3, 1] = np.nan
    path = tmp_path / "data.npy"
    np.save(path, data)
    source = DiskTrajectories(path, trajectories=(1, 6), rows=[4, 0, 0, 2])  # file 5, 1, 1, 3
    assert source.shape == (4, 5, 2) and source.rows == (5, 1, 1, 3)
    np.testing.assert_array_equal(source.read(), data[[5, 1, 1, 3]])
    assert source.find_nonfinite() is None
    view = source.select((1, 3), 4)
    np.testing.assert_array_equal(view.read(), data[[1, 1], :4])
    again = source.select_rows([3, 3, 0])
    np.testing.assert_array_equal(again.read(), data[[3, 3, 5]])
    assert DiskTrajectories(path, rows=[0, 4, 4]).find_nonfinite() == (4, 3)
    np.testing.assert_array_equal(
        tx.TrajectorySubStacker(source, 2)(np.arange(16)),
        tx.TrajectorySubStacker(data[[5, 1, 1, 3]], 2)(np.arange(16)),
    )
    with pytest.raises(ValueError, match="rows"):
        DiskTrajectories(path, trajectories=(1, 6), rows=[5])
    with pytest.raises(ValueError, match="at least one"):
        DiskTrajectories(path, rows=[])
    with pytest.raises(TypeError, match="rows"):
        DiskTrajectories(path, rows=[0.5])
    with pytest.raises(ValueError, match="rows"):
        source.select_rows([4])


def test_errors():
    data, labels = labelled_data()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"'s9'.*\['s0', 's1', 's2'\]|'s9'.*s0"):
        SystemMixture(data, labels, {"s9": 1.0}, key=key)
    with pytest.raises(ValueError, match="s1.*>= 0"):
        SystemMixture(data, labels, {"s1": -1.0}, key=key)
    with pytest.raises(ValueError, match="s1.*finite"):
        SystemMixture(data, labels, {"s1": float("nan")}, key=key)
    with pytest.raises(ValueError, match="positive weight"):
        SystemMixture(data, labels, {"s0": 0.0, "s1": 0}, key=key)
    with pytest.raises(TypeError, match="weights"):
        SystemMixture(data, labels, [1.0, 2.0, 3.0], key=key)
    with pytest.raises(ValueError, match="6 trajectories.*got 5 labels"):
        SystemMixture(data, labels[:5], key=key)
    with pytest.raises(TypeError, match="systems"):
        SystemMixture(data, "s0s1", key=key)
    with pytest.raises(TypeError, match="strings"):
        SystemMixture(data, [0, 1, 2, 3, 4, 5], key=key)
    with pytest.raises(ValueError, match="num_trajectories"):
        SystemMixture(data, labels, key=key, num_trajectories=0)
    with pytest.raises(TypeError, match="key"):
        SystemMixture(data, labels, key=3)
    with pytest.raises(ValueError, match=r"\(S, T, C"):
        SystemMixture(data[:, :, 0], labels, key=key)
    with pytest.raises(TypeError, match="trajectories"):
        SystemMixture([[1.0]], labels, key=key)
    with pytest.warns(UserWarning, match=r"\['s2'\].*num_trajectories"):
        SystemMixture(data, labels, {"s0": 10.0, "s1": 10.0, "s2": 1.0}, key=key,
                      num_trajectories=4)


MESH_SCRIPT = textwrap.dedent(
    """
    import sys
    import equinox as eqx, jax, numpy as np, optax
    import trainax_fm as tx

    assert jax.device_count() == 4, jax.devices()
    data = np.random.default_rng(0).standard_normal((6, 6, 2)).astype(np.float32)
    labels = ["a", "a", "b", "b", "b", "c"]
    np.save(sys.argv[1], data)
    weights = {"a": 1.0, "b": 1.0, "c": 2.0}
    mixtures = {
        where: tx.data.SystemMixture(
            source, labels, weights, key=jax.random.key(3), num_trajectories=16
        )
        for where, source in (("memory", data), ("disk", tx.data.DiskTrajectories(sys.argv[1])))
    }
    net = eqx.nn.Linear(2, 2, key=jax.random.key(1))
    runs = {}
    for where, mixture in mixtures.items():
        for name, mesh in (("one device", None), ("make_mesh", jax.make_mesh((4,), ("batch",)))):
            trainer = tx.trainer.SupervisedTrainer(
                mixture, optimizer=optax.adam(1e-2), num_training_steps=5, batch_size=8,
                num_rollout_steps=2, mesh=mesh,
            )
            runs[where, name] = trainer.train(net, jax.random.key(2), spawn_tqdm=False)
    reference = runs["memory", "one device"]
    for label, run in runs.items():
        np.testing.assert_allclose(run.loss_history, reference.loss_history, rtol=1e-5,
                                   err_msg=str(label))
        np.testing.assert_allclose(run.stepper.weight, reference.stepper.weight, rtol=1e-5,
                                   atol=1e-6, err_msg=str(label))
    print("OK")
    """
)


def test_a_mixture_trains_on_a_make_mesh_mesh_like_on_one_device(tmp_path):
    """In memory and on disk, on a 4-device `jax.make_mesh` mesh: the one-device run."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "PYTHONPATH": str(ROOT),
    }
    completed = subprocess.run(
        [sys.executable, "-c", MESH_SCRIPT, str(tmp_path / "data.npy")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "OK" in completed.stdout
