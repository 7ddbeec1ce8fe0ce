"""Lazy windows (`TrajectorySubStacker`) and minibatch samplers against brute force.

- `TrajectorySubStacker`: windows equal the slices `data[i, k:k+W]` in trajectory-major
  order, without storing W copies of the data.
- `PermutationMixer` (trainax semantics): one fresh permutation per epoch, the last
  batch of an epoch may be smaller.
- The static-shape stream (`epoch_permutations`, `stream_batch`, `StreamPlan`): every
  batch has exactly `batch_size` entries and the concatenated batches run through each
  epoch's permutation exactly once.
"""

import collections
import functools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainax_fm as tx
import trainax_fm.data._mixer as mixer_module
import trainax_fm.data._windows as windows_module
from trainax_fm.data._mixer import StreamPlan, _shuffle_plan, epoch_permutations, stream_batch

# Every example has new shapes (and eager JAX compiles per shape), so keep them few;
# derandomized so that the suite is reproducible.
PROPERTY_SETTINGS = settings(
    max_examples=6, deadline=None, database=None, derandomize=True
)


def trajectories(S, T, C=2, N=3, offset=0.0):
    """`(S, T, C, N)` float32 data whose entries are all distinct (slices are traceable)."""
    return jnp.asarray(
        np.arange(S * T * C * N, dtype=np.float32).reshape(S, T, C, N) + offset
    )


def brute_force(data, W, *, do_sub_stacking=True, only_store_ic=False):
    """All windows by slicing, trajectory-major: window i*K + k is data[i, k:k+W]."""
    data = np.asarray(data)
    S, T = data.shape[:2]
    K = T - W + 1 if do_sub_stacking else 1
    length = 1 if only_store_ic else W
    return np.stack([data[i, k : k + length] for i in range(S) for k in range(K)])


# --- TrajectorySubStacker -----------------------------------------------------------


@pytest.mark.parametrize("flat_gather", [True, False], ids=["flat", "nd-slices"])
@pytest.mark.parametrize("W", [1, 4, 6])
def test_windows_equal_brute_force_slicing(W, flat_gather, monkeypatch):
    if not flat_gather:  # the path of arrays too large for int32 flat offsets
        monkeypatch.setattr(windows_module, "MAX_FLAT_GATHER_SIZE", 0)
    S, T = 3, 6
    data = trajectories(S, T)
    stacker = tx.TrajectorySubStacker(data, W)
    expected = brute_force(data, W)
    assert stacker.num_total_samples == S * (T - W + 1) == expected.shape[0]
    n = stacker.num_total_samples
    np.testing.assert_array_equal(stacker(jnp.arange(n)), expected)
    np.testing.assert_array_equal(stacker.data_sub_trajectories, expected)
    # Trajectory-major: window i*K + k starts at time k of trajectory i.
    K = T - W + 1
    windows = np.asarray(stacker(jnp.arange(n)))
    for index in range(n):
        i, k = divmod(index, K)
        np.testing.assert_array_equal(windows[index], np.asarray(data)[i, k : k + W])
    np.testing.assert_array_equal(
        stacker(jnp.array([n - 1]))[0], np.asarray(data)[S - 1, T - W :]
    )
    # Arbitrary index sets (arrays, Python lists, repeated entries, slices).
    order = np.random.default_rng(W).permutation(n)
    np.testing.assert_array_equal(stacker(jnp.asarray(order)), expected[order])
    np.testing.assert_array_equal(stacker([0, n - 1, 0]), expected[[0, n - 1, 0]])
    np.testing.assert_array_equal(stacker(slice(1, None, 2)), expected[1::2])


def test_windows_without_sub_stacking():
    data = trajectories(4, 7)
    stacker = tx.TrajectorySubStacker(data, 3, do_sub_stacking=False)
    assert stacker.num_total_samples == 4
    np.testing.assert_array_equal(stacker(jnp.arange(4)), np.asarray(data)[:, :3])
    np.testing.assert_array_equal(
        stacker(jnp.arange(4)), brute_force(data, 3, do_sub_stacking=False)
    )


@pytest.mark.parametrize("do_sub_stacking", [True, False])
def test_windows_only_store_ic(do_sub_stacking):
    S, T, W = 3, 6, 4
    data = trajectories(S, T)
    stacker = tx.TrajectorySubStacker(
        data, W, do_sub_stacking=do_sub_stacking, only_store_ic=True
    )
    expected = brute_force(data, W, do_sub_stacking=do_sub_stacking, only_store_ic=True)
    assert stacker.num_total_samples == (S * (T - W + 1) if do_sub_stacking else S)
    windows = stacker(jnp.arange(stacker.num_total_samples))
    assert windows.shape == (stacker.num_total_samples, 1, 2, 3)
    np.testing.assert_array_equal(windows, expected)


def test_windows_of_a_tuple():
    S, T, W = 2, 5, 3
    data = (trajectories(S, T), trajectories(S, T, C=1, N=4, offset=1000.0))
    stacker = tx.TrajectorySubStacker(data, W)
    windows = stacker(jnp.arange(stacker.num_total_samples))
    assert isinstance(windows, tuple) and len(windows) == 2
    for leaf, original in zip(windows, data):
        np.testing.assert_array_equal(leaf, brute_force(original, W))


def test_windows_of_a_dict_with_only_ic():
    S, T, W = 3, 4, 2
    data = {"u": trajectories(S, T), "v": trajectories(S, T, C=3, N=2, offset=-500.0)}
    stacker = tx.TrajectorySubStacker(data, W, only_store_ic=True)
    windows = stacker(jnp.arange(stacker.num_total_samples))
    assert set(windows) == {"u", "v"}
    for name, original in data.items():
        np.testing.assert_array_equal(
            windows[name], brute_force(original, W, only_store_ic=True)
        )


def test_windows_jitted_call():
    data = (trajectories(3, 6), {"w": trajectories(3, 6, C=1, offset=7.0)})
    stacker = tx.TrajectorySubStacker(data, 3)
    indices = jnp.array([5, 0, 11, 7])

    @eqx.filter_jit
    def gather(stacker, indices):
        return stacker(indices)

    windows = gather(stacker, indices)
    np.testing.assert_array_equal(
        windows[0], brute_force(data[0], 3)[np.asarray(indices)]
    )
    np.testing.assert_array_equal(
        windows[1]["w"], brute_force(data[1]["w"], 3)[np.asarray(indices)]
    )
    # Also with the stacker closed over and traced indices (as in a training step).
    closed = jax.jit(lambda idx: stacker(idx)[0])
    np.testing.assert_array_equal(
        closed(indices[::-1]), brute_force(data[0], 3)[np.asarray(indices[::-1])]
    )


def test_windows_do_not_store_copies():
    """The stacker keeps the trajectories once (the same object) and a small index table."""
    data = trajectories(2, 40, C=2, N=16)
    W = 20
    stacker = tx.TrajectorySubStacker(data, W)
    assert stacker.data_trajectories is data
    big = [
        leaf
        for leaf in jtu.tree_leaves(stacker)
        if eqx.is_array(leaf) and leaf.size >= data.size
    ]
    assert len(big) == 1 and big[0] is data
    others = sum(
        leaf.nbytes
        for leaf in jtu.tree_leaves(stacker)
        if eqx.is_array(leaf) and leaf is not data
    )
    materialised = brute_force(data, W).nbytes
    assert materialised > 10 * data.nbytes  # what trainax would have stored
    assert others < data.nbytes / 4


def test_tree_windows_do_not_store_copies():
    data = {"a": trajectories(2, 30), "b": trajectories(2, 30, C=1, N=5)}
    stacker = tx.TrajectorySubStacker(data, 10)
    for name, original in data.items():
        assert stacker.data_trajectories[name] is original


def test_windows_of_numpy_data():
    """NumPy trajectories (as trainax accepts them), eagerly and under jit."""
    data = (
        np.asarray(trajectories(2, 5)),
        np.asarray(trajectories(2, 5, C=1, offset=50.0)),
    )
    stacker = tx.TrajectorySubStacker(data, 3)
    indices = jnp.arange(stacker.num_total_samples)
    for leaf, original in zip(stacker(indices), data):
        np.testing.assert_array_equal(leaf, brute_force(original, 3))
    jitted = eqx.filter_jit(lambda st, idx: st(idx))(stacker, indices[::-1])
    np.testing.assert_array_equal(jitted[0], brute_force(data[0], 3)[::-1])


def test_windows_negative_and_numpy_indices():
    data = trajectories(2, 5)
    stacker = tx.TrajectorySubStacker(data, 2)
    expected = brute_force(data, 2)
    np.testing.assert_array_equal(stacker(jnp.array([-1, 0])), expected[[-1, 0]])
    np.testing.assert_array_equal(
        stacker(np.array([3, 1], dtype=np.int64)), expected[[3, 1]]
    )


def test_windows_scalar_index():
    data = trajectories(2, 5)
    stacker = tx.TrajectorySubStacker(data, 2)
    np.testing.assert_array_equal(stacker(3), brute_force(data, 2)[3])


def test_window_longer_than_trajectories():
    with pytest.raises(ValueError, match="sub_trajectory_len"):
        tx.TrajectorySubStacker(trajectories(2, 5), 6)


@pytest.mark.parametrize(
    "W, exception",
    [(0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError)],
)
def test_non_positive_or_non_integer_window_length(W, exception):
    with pytest.raises(exception, match="sub_trajectory_len"):
        tx.TrajectorySubStacker(trajectories(2, 5), W)


def test_data_of_rank_below_two():
    with pytest.raises(ValueError, match=r"\(S, T"):
        tx.TrajectorySubStacker(jnp.arange(5.0), 1)


def test_mismatched_leaves():
    data = (trajectories(2, 5), trajectories(2, 4))
    with pytest.raises(ValueError, match="share"):
        tx.TrajectorySubStacker(data, 2)
    data = {"u": trajectories(2, 5), "v": trajectories(3, 5)}
    with pytest.raises(ValueError, match="share"):
        tx.TrajectorySubStacker(data, 2)


def test_non_array_leaf():
    with pytest.raises(TypeError, match="data_trajectories"):
        tx.TrajectorySubStacker((trajectories(2, 5), "not an array"), 2)


def test_bad_flags():
    with pytest.raises(TypeError, match="do_sub_stacking"):
        tx.TrajectorySubStacker(trajectories(2, 5), 2, do_sub_stacking="yes")
    with pytest.raises(TypeError, match="only_store_ic"):
        tx.TrajectorySubStacker(trajectories(2, 5), 2, only_store_ic=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_names_trajectory_and_time(bad):
    data = np.asarray(trajectories(3, 6)).copy()
    data[1, 4, 0, 2] = bad
    data[2, 1, 1, 0] = bad  # a later trajectory: the first occurrence is reported
    with pytest.raises(ValueError, match=r"trajectory 1.*time index 4"):
        tx.TrajectorySubStacker(jnp.asarray(data), 2)


def test_non_finite_data_in_a_tree_names_the_leaf():
    v = np.asarray(trajectories(2, 5, C=1)).copy()
    v[0, 3, 0, 1] = np.nan
    data = {"u": trajectories(2, 5), "v": jnp.asarray(v)}
    with pytest.raises(ValueError, match=r"'v'.*trajectory 0.*time index 3"):
        tx.TrajectorySubStacker(data, 2)


@PROPERTY_SETTINGS
@given(
    S=st.integers(1, 4),
    T=st.integers(1, 8),
    data_w=st.data(),
    do_sub_stacking=st.booleans(),
    only_store_ic=st.booleans(),
)
def test_windows_property(S, T, data_w, do_sub_stacking, only_store_ic):
    W = data_w.draw(st.integers(1, T), label="W")
    data = trajectories(S, T, C=1, N=2)
    stacker = tx.TrajectorySubStacker(
        data, W, do_sub_stacking=do_sub_stacking, only_store_ic=only_store_ic
    )
    expected = brute_force(
        data, W, do_sub_stacking=do_sub_stacking, only_store_ic=only_store_ic
    )
    assert stacker.num_total_samples == expected.shape[0]
    np.testing.assert_array_equal(
        stacker(jnp.arange(stacker.num_total_samples)), expected
    )


# --- PermutationMixer ---------------------------------------------------------------


def _mixer_batches(mixer):
    return [np.asarray(mixer(i)) for i in range(mixer.num_minibatches)]


def _check_mixer(num_samples, batch_size, num_minibatches, seed):
    mixer = tx.PermutationMixer(
        num_samples, num_minibatches, batch_size, jax.random.key(seed)
    )
    per_epoch = -(-num_samples // batch_size)
    assert mixer.num_minibatches_per_epoch == per_epoch
    epochs = {}
    for i in range(num_minibatches):
        batch, info = mixer(i, return_info=True)
        batch = np.asarray(batch)
        assert tuple(int(x) for x in info) == divmod(i, per_epoch)
        epochs.setdefault(i // per_epoch, []).append(batch)
        expected_size = (
            num_samples - (per_epoch - 1) * batch_size
            if i % per_epoch == per_epoch - 1
            else batch_size
        )
        assert batch.shape == (expected_size,)
        assert batch.dtype.kind == "i"
    for parts in epochs.values():
        seen = np.concatenate(parts)
        assert len(set(seen.tolist())) == len(seen), "a sample repeats within an epoch"
        assert seen.min() >= 0 and seen.max() < num_samples
        if len(parts) == per_epoch:  # a complete epoch covers every sample exactly once
            np.testing.assert_array_equal(np.sort(seen), np.arange(num_samples))
    return mixer, epochs


def test_permutation_mixer_epochs_and_ragged_last_batch():
    mixer, epochs = _check_mixer(10, 3, 9, seed=0)
    assert [len(b) for b in epochs[0]] == [3, 3, 3, 1]
    # A fresh permutation per epoch.
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))
    # Deterministic in the key; another key gives another order.
    again = tx.PermutationMixer(10, 9, 3, jax.random.key(0))
    for i in range(9):
        np.testing.assert_array_equal(mixer(i), again(i))
    other = tx.PermutationMixer(10, 9, 3, jax.random.key(1))
    assert any(not np.array_equal(mixer(i), other(i)) for i in range(9))


def test_permutation_mixer_indices_feed_the_stacker():
    stacker = tx.TrajectorySubStacker(trajectories(2, 6), 3)
    mixer = tx.PermutationMixer(stacker.num_total_samples, 4, 3, jax.random.key(2))
    expected = brute_force(trajectories(2, 6), 3)
    for i in range(4):
        np.testing.assert_array_equal(stacker(mixer(i)), expected[np.asarray(mixer(i))])


@pytest.mark.parametrize("i", [-1, 9, 100])
def test_permutation_mixer_index_out_of_range(i):
    mixer = tx.PermutationMixer(10, 9, 3, jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        mixer(i)


def test_permutation_mixer_full_batch_warning():
    with pytest.warns(UserWarning, match="full-batch"):
        mixer = tx.PermutationMixer(10, 5, 25, jax.random.key(0))
    assert mixer.batch_size == 10 and mixer.num_minibatches_per_epoch == 1
    batches = _mixer_batches(mixer)
    for batch in batches:
        np.testing.assert_array_equal(np.sort(batch), np.arange(10))
    assert any(not np.array_equal(batches[0], b) for b in batches[1:])


def test_permutation_mixer_exact_batch_size_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx.PermutationMixer(10, 3, 10, jax.random.key(0))


@pytest.mark.parametrize(
    "args, name",
    [
        ((0, 5, 2), "num_total_samples"),
        ((10, 0, 2), "num_minibatches"),
        ((10, 5, 0), "batch_size"),
    ],
)
def test_permutation_mixer_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name):
        tx.PermutationMixer(*args, jax.random.key(0))


@settings(PROPERTY_SETTINGS, max_examples=5)
@given(
    data=st.data(), num_samples=st.integers(1, 50), num_minibatches=st.integers(1, 12)
)
def test_permutation_mixer_property(data, num_samples, num_minibatches):
    batch_size = data.draw(st.integers(1, num_samples), label="batch_size")
    _check_mixer(num_samples, batch_size, num_minibatches, seed=num_samples)


# --- the static-shape stream ----------------------------------------------------------


# Compiled once per shape (eager `jax.random` and `vmap` would compile op by op): the
# epoch table of a segment and the batches of its steps, in one program.
@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _segment(key, first_epoch, steps, num_epochs, num_samples, batch_size):
    table = epoch_permutations(key, first_epoch, num_epochs, num_samples)
    batches = jax.vmap(lambda s: stream_batch(table, first_epoch, s, batch_size))(steps)
    return table, batches


def _is_permutation(row, n):
    return np.array_equal(np.sort(np.asarray(row)), np.arange(n))


def test_epoch_permutations_are_permutations_indexed_by_absolute_epoch():
    key = jax.random.key(3)
    table = np.asarray(epoch_permutations(key, 0, 6, 11))
    assert table.shape == (6, 11)
    for row in table:
        assert _is_permutation(row, 11)
    assert len({tuple(row) for row in table}) == 6  # fresh per epoch
    # A table that starts later holds the same permutations for the same epochs.
    later = np.asarray(epoch_permutations(key, 2, 3, 11))
    np.testing.assert_array_equal(later, table[2:5])
    traced = jax.jit(epoch_permutations, static_argnums=(2, 3))(
        key, jnp.asarray(2), 3, 11
    )
    np.testing.assert_array_equal(traced, table[2:5])


@pytest.mark.parametrize("num_samples", [1, 2, 3, 100, 5000])
def test_packed_shuffle_rounds_give_permutations(num_samples):
    index_bits, rounds = _shuffle_plan(num_samples)
    assert 2**index_bits >= num_samples and rounds >= 1
    # Several rounds once the random part of a 32-bit key gets short.
    assert rounds == (2 if num_samples == 5000 else 1)
    table = jax.jit(epoch_permutations, static_argnums=(2, 3))(
        jax.random.key(0), jnp.asarray(0), 4, num_samples
    )
    for row in np.asarray(table):
        assert _is_permutation(row, num_samples)


def test_shuffle_plan_falls_back_to_argsort_for_huge_epochs(monkeypatch):
    assert _shuffle_plan(2**25) == (25, 0)  # 7 random bits left: no packed key
    monkeypatch.setattr(mixer_module, "_shuffle_plan", lambda n: (n.bit_length(), 0))
    table = np.asarray(epoch_permutations(jax.random.key(1), 0, 3, 50))
    for row in table:
        assert _is_permutation(row, 50)
    assert len({tuple(row) for row in table}) == 3


def test_shuffle_is_uniform_over_the_permutations_of_four():
    table = np.asarray(
        jax.jit(epoch_permutations, static_argnums=(2, 3))(
            jax.random.key(2), jnp.asarray(0), 24_000, 4
        )
    )
    counts = collections.Counter(map(tuple, table))
    assert len(counts) == 24
    expected = len(table) / 24
    chi_square = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi_square < 49.7  # 99.9 % quantile of chi^2 with 23 degrees of freedom


def test_stream_plan_tables_cover_about_one_compiled_loop():
    plan = StreamPlan(1960, 32)  # the quickstart: ~61 updates per epoch
    assert 1024 <= plan.steps_per_segment <= 1100
    assert plan.epochs_per_segment == 18  # not 32: a short run shuffles few spare epochs
    # Tiny datasets stay capped by max_epochs, huge ones by the table size.
    assert StreamPlan(10, 5).epochs_per_segment == 32
    assert StreamPlan(2**19, 32).epochs_per_segment == 2


def _stream_by_segments(
    key, num_samples, batch_size, first_step, num_steps, **plan_kwargs
):
    """Run the stream the way a training loop does: one table per segment of steps.

    Returns the plan, the batches and the permutation of every epoch seen in a table
    (by absolute epoch; tables of different segments must agree on shared epochs).
    """
    plan = StreamPlan(num_samples, batch_size, **plan_kwargs)
    batches, epochs = [], {}
    step = first_step
    while step < first_step + num_steps:
        segment = range(
            step, min(step + plan.steps_per_segment, first_step + num_steps)
        )
        first_epoch = plan.first_epoch(step)
        # The table must hold every epoch the segment touches: JAX would silently clamp
        # an out-of-range gather instead of failing.
        last_position = (segment[-1] + 1) * batch_size - 1
        assert last_position // num_samples - first_epoch < plan.epochs_per_segment
        # Always a full segment of steps (one shape to compile), then keep what is needed.
        table, out = _segment(
            key,
            jnp.asarray(first_epoch),
            jnp.arange(step, step + plan.steps_per_segment),
            plan.epochs_per_segment,
            num_samples,
            batch_size,
        )
        batches.extend(np.asarray(out)[: len(segment)])
        for e, row in enumerate(np.asarray(table)):
            if first_epoch + e in epochs:
                np.testing.assert_array_equal(epochs[first_epoch + e], row)
            epochs[first_epoch + e] = row
        step = segment[-1] + 1
    return plan, batches, epochs


def _check_stream(num_samples, batch_size, batches, epochs, first_step=0):
    for batch in batches:
        assert batch.shape == (batch_size,)
    for row in epochs.values():
        assert _is_permutation(row, num_samples)
    flat = np.concatenate(batches)
    start = first_step * batch_size
    first_epoch = start // num_samples
    last_epoch = (start + len(flat) - 1) // num_samples
    reference = np.concatenate([epochs[e] for e in range(first_epoch, last_epoch + 1)])
    offset = start - first_epoch * num_samples
    # The stream is the epoch permutations laid end to end.
    np.testing.assert_array_equal(flat, reference[offset : offset + len(flat)])
    # Every complete epoch block of N positions is a permutation.
    for block_start in range(
        -offset % num_samples, len(flat) - num_samples + 1, num_samples
    ):
        assert _is_permutation(
            flat[block_start : block_start + num_samples], num_samples
        )


def test_stream_per_step_tables_cover_each_epoch_once():
    """A fresh table per step, starting at `StreamPlan.first_epoch(step)`."""
    key = jax.random.key(4)
    N, batch_size = 10, 4
    plan = StreamPlan(N, batch_size)
    batches, epochs = [], {}
    for step in range(30):  # 120 positions = 12 epochs, batches straddle epoch ends
        first_epoch = plan.first_epoch(step)
        table, batch = _segment(
            key,
            jnp.asarray(first_epoch),
            jnp.array([step]),
            plan.epochs_per_segment,
            N,
            batch_size,
        )
        batches.append(np.asarray(batch)[0])
        for e, row in enumerate(np.asarray(table)):
            epochs.setdefault(first_epoch + e, row)
            np.testing.assert_array_equal(epochs[first_epoch + e], row)
    _check_stream(N, batch_size, batches, epochs)
    flat = np.concatenate(batches)
    assert flat.shape == (120,)
    for e in range(12):
        assert _is_permutation(flat[e * N : (e + 1) * N], N)
        np.testing.assert_array_equal(flat[e * N : (e + 1) * N], epochs[e])
    # The plain eager calls agree.
    table = epoch_permutations(key, plan.first_epoch(29), plan.epochs_per_segment, N)
    np.testing.assert_array_equal(
        stream_batch(table, plan.first_epoch(29), 29, batch_size), batches[29]
    )


def test_stream_segments():
    key = jax.random.key(5)
    plan, batches, epochs = _stream_by_segments(key, 7, 3, 0, 40, max_epochs=3)
    assert plan.steps_per_segment < 40  # several tables were needed
    _check_stream(7, 3, batches, epochs)


def test_stream_full_batch():
    key = jax.random.key(6)
    _, batches, epochs = _stream_by_segments(key, 5, 5, 0, 6)
    for batch in batches:
        assert _is_permutation(batch, 5)
    _check_stream(5, 5, batches, epochs)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    num_samples=st.integers(1, 50),
    max_epochs=st.integers(2, 5),
    first_step=st.integers(0, 60),
)
def test_stream_property(data, num_samples, max_epochs, first_step):
    batch_size = data.draw(st.integers(1, num_samples), label="batch_size")
    # Enough steps for about four epochs (at least a few steps).
    num_steps = max(3, (4 * num_samples) // batch_size)
    key = jax.random.key(num_samples)
    plan, batches, epochs = _stream_by_segments(
        key, num_samples, batch_size, first_step, num_steps, max_epochs=max_epochs
    )
    assert plan.steps_per_segment >= 1
    assert len(batches) == num_steps
    _check_stream(num_samples, batch_size, batches, epochs, first_step=first_step)
