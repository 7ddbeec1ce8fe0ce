"""Normalisation: `Normalizer` statistics, `NormalizedStepper`, training in normalised
units (equal to training the bare network on normalised data, for every trainer of the
registry), statistics that are never trained, and stepper files that carry them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import TupleStepper, conv_stepper
from registry import TRAINERS

import trainax_fm as tx
from trainax_fm._stepper._protocol import needs_key

NUM_UPDATES = 3


def arrays(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


def field_data(seed=0, shape=(3, 6, 2, 8)):
    rng = np.random.default_rng(seed)
    scale = np.array([3.0, 0.5]).reshape(1, 1, 2, 1)
    return jnp.asarray(rng.standard_normal(shape) * scale + 2.0, jnp.float32)


# --- statistics ---------------------------------------------------------------------


def test_fit_matches_numpy_per_channel():
    data = field_data()
    normalizer = tx.Normalizer.fit(data, increments=True)
    x = np.asarray(data, np.float64)
    increments = np.diff(x, axis=1)
    for statistic, expected in (
        (normalizer.mean, x.mean(axis=(0, 1, 3))),
        (normalizer.std, x.std(axis=(0, 1, 3))),
        (normalizer.increment_mean, increments.mean(axis=(0, 1, 3))),
        (normalizer.increment_std, increments.std(axis=(0, 1, 3))),
    ):
        assert statistic.shape == (2, 1)
        np.testing.assert_allclose(statistic[:, 0], expected, rtol=1e-5)
    z = normalizer.normalize(data)
    np.testing.assert_allclose(np.mean(z, axis=(0, 1, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.std(z, axis=(0, 1, 3)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalizer.denormalize(z), data, rtol=1e-6, atol=1e-6)


def test_constant_channel_gets_std_one_and_normalises_to_zero():
    data = field_data().at[:, :, 1].set(0.1)  # 0.1: its float32 mean is not exact
    normalizer = tx.Normalizer.fit(data, increments=True)
    assert float(normalizer.std[1, 0]) == 1.0
    assert float(normalizer.increment_std[1, 0]) == 1.0
    z = normalizer.normalize(data)
    assert np.all(np.isfinite(z)) and np.all(z[:, :, 1] == 0.0)
    np.testing.assert_array_equal(normalizer.denormalize(z)[:, :, 1], data[:, :, 1])


def test_pytree_data_gets_per_leaf_statistics():
    a, b = field_data(1)[:, :, :1], field_data(2, (3, 6, 2, 8)) * 10.0
    normalizer = tx.Normalizer.fit({"u": a, "v": b})
    assert normalizer.num_channels == {"u": 1, "v": 2}
    np.testing.assert_allclose(
        normalizer.std["v"], 10.0 * tx.Normalizer.fit(b / 10.0).std, rtol=1e-5
    )
    z = normalizer.normalize({"u": a, "v": b})
    np.testing.assert_allclose(z["u"], tx.Normalizer.fit(a).normalize(a), rtol=1e-6)
    # A tuple state through a NormalizedStepper keeps its structure.
    stepper = tx.NormalizedStepper(TupleStepper(0), tx.Normalizer.fit((a, b)))
    out = stepper((a[0, 0], b[0, 0]))
    assert out[0].shape == (1, 8) and out[1].shape == (2, 8)


def test_fit_rejects_bad_data():
    with pytest.raises(ValueError, match=r"\(S, T, C, \*spatial\).*shape \(3, 6\)"):
        tx.Normalizer.fit(jnp.zeros((3, 6)))
    with pytest.raises(ValueError, match="at least 2"):
        tx.Normalizer.fit(jnp.zeros((3, 1, 1, 4)), increments=True)
    with pytest.raises(TypeError, match="floating-point"):
        tx.Normalizer.fit(jnp.zeros((3, 2, 1, 4), jnp.int32))
    with pytest.raises(ValueError, match="positive"):
        tx.Normalizer(jnp.zeros((1, 1)), jnp.zeros((1, 1)))


# --- the stepper --------------------------------------------------------------------


def test_normalized_stepper_works_in_physical_units():
    data = field_data()
    normalizer = tx.Normalizer.fit(data, increments=True)
    network = conv_stepper(3, 2, 2)
    m, s = normalizer.mean, normalizer.std
    mi, si = normalizer.increment_mean, normalizer.increment_std
    u = data[0, 0]
    np.testing.assert_allclose(
        tx.NormalizedStepper(network, normalizer)(u), network((u - m) / s) * s + m, rtol=1e-6
    )
    np.testing.assert_allclose(
        tx.NormalizedStepper(network, normalizer, residual=True)(u),
        u + network((u - m) / s) * si + mi,
        rtol=1e-6,
    )


def test_wrong_channel_count_fails_at_construction_and_at_call():
    normalizer = tx.Normalizer.fit(field_data())  # 2 channels
    with pytest.raises(ValueError, match="2 channels.*3 input and gives 3 output"):
        tx.NormalizedStepper(conv_stepper(0, 3, 3), normalizer)
    with pytest.raises(ValueError, match="increments=True"):
        tx.NormalizedStepper(conv_stepper(0, 2, 2), normalizer, residual=True)
    # A network whose channels are not declared is checked at its first call.
    stepper = tx.NormalizedStepper(lambda z: z, normalizer)
    with pytest.raises(ValueError, match=r"shape \(3, 8\).*2 channels"):
        stepper(jnp.zeros((3, 8)))
    trainer = tx.trainer.SupervisedTrainer(
        field_data()[:, :, :1], optimizer=optax.sgd(0.1), num_training_steps=1, batch_size=2
    )
    with pytest.raises(ValueError, match="2 channels"):
        trainer.train(stepper, jax.random.key(0), spawn_tqdm=False)


# --- training in normalised units ---------------------------------------------------


class _HandResidual(eqx.Module):
    """The residual update in normalised units, written out by hand (the statistics
    are constants: zero gradients, so adam leaves them alone)."""

    network: eqx.Module
    mean: jax.Array
    std: jax.Array
    increment_mean: jax.Array
    increment_std: jax.Array

    @property
    def needs_key(self) -> bool:  # a stochastic network (CRPS ensembles) stays one
        return needs_key(self.network)

    def __call__(self, z, **kwargs):
        m, s, mi, si = jax.lax.stop_gradient(
            (self.mean, self.std, self.increment_mean, self.increment_std)
        )
        return z[-m.shape[0]:] + (self.network(z, **kwargs) * si + mi) / s


def _manual_counterpart(case, physical_trainer, normalizer, residual):
    """`case`'s trainer on hand-normalised data, with reference and residuum written in
    normalised units by hand."""
    m, s = normalizer.mean, normalizer.std
    lead = lambda a, x: a.reshape((1,) * (x.ndim - a.ndim) + a.shape)  # noqa: E731
    keywords = {}
    ref, residuum = physical_trainer.ref_stepper, physical_trainer.residuum_fn
    if ref is not None:
        keywords["ref_stepper"] = lambda z: (ref(z * s + m) - m) / s  # one state
    if residuum is not None:
        keywords["residuum_fn"] = lambda zn, zp: residuum(
            zn * lead(s, zn) + lead(m, zn), zp * lead(s, zp) + lead(m, zp)
        ) / lead(s, zn)  # batched states
    data = (case.data - lead(m, case.data)) / lead(s, case.data)
    return case.make(NUM_UPDATES, data=data, steps_per_dispatch=1, **keywords)


# Progressive distillation takes the student's flow model apart (stage teachers are
# built from it), so it trains bare networks only: normalise its data by hand.
# (Learned loss weights wrap the NormalizedStepper: tests/test_loss_weights.py.)
_SINGLE_STAGE = [
    case for case in TRAINERS
    if not case.multistage and not isinstance(case.stepper(0), tx.WithLossWeights)
]
_RESIDUAL = [case for case in _SINGLE_STAGE if case.data.ndim == 4]  # state steppers


@pytest.mark.parametrize(
    "case, residual",
    [(case, False) for case in _SINGLE_STAGE] + [(case, True) for case in _RESIDUAL],
    ids=lambda x: repr(x) if not isinstance(x, bool) else ("residual" if x else "state"),
)
def test_normalized_training_equals_manual_normalization(case, residual, key):
    """Training `NormalizedStepper(network)` on physical data gives the weights of
    training the bare network on `(data - mean) / std`. Checked to float tolerance:
    the two are different XLA programs (the windows are normalised inside the
    compiled update, not before it), which may fuse differently; on this CPU 14 of
    the 16 cases came out bit-identical, TemporalConsistency and FlowMatching
    differed in the last bits."""
    normalizer = tx.Normalizer.fit(case.data, increments=residual)
    network = case.stepper(0)
    physical = case.make(NUM_UPDATES, steps_per_dispatch=1)
    trained = physical.train(
        tx.NormalizedStepper(network, normalizer, residual=residual), key, spawn_tqdm=False
    ).stepper
    manual_network = network
    if residual:
        manual_network = _HandResidual(
            network, normalizer.mean, normalizer.std,
            normalizer.increment_mean, normalizer.increment_std,
        )
    manual = _manual_counterpart(case, physical, normalizer, residual)
    expected = manual.train(manual_network, key, spawn_tqdm=False).stepper
    if residual:
        expected = expected.network
    assert isinstance(trained, tx.NormalizedStepper)
    for a, b in zip(arrays(trained.network), arrays(expected)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert any(not np.array_equal(a, b) for a, b in zip(arrays(trained.network), arrays(network)))
    # The statistics come back untouched.
    for a, b in zip(arrays(trained.normalizer), arrays(normalizer)):
        np.testing.assert_array_equal(a, b)


def test_statistics_are_never_trained_even_by_adamw(key):
    """Weight decay and gradients reach the network, never the statistics; the
    optimizer state has no entry for them."""
    data = field_data()[:, :, :1]
    normalizer = tx.Normalizer.fit(data, increments=True)
    stepper = tx.NormalizedStepper(conv_stepper(0), normalizer, residual=True)
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adamw(1e-2, weight_decay=0.5), num_training_steps=5,
        batch_size=2, num_rollout_steps=2,
    )
    result = trainer.train(stepper, key, spawn_tqdm=False)
    for a, b in zip(arrays(result.stepper.normalizer), arrays(normalizer)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(result.stepper.network.weight, stepper.network.weight)
    trainable = tx.trainable_arrays(stepper)
    assert arrays(trainable.normalizer) == []
    assert len(arrays(trainable)) == 2  # weight and bias
    num_moments = len(arrays(optax.adamw(1e-2).init(trainable)))
    assert len(arrays(result.opt_state)) == num_moments
    # The one gradient rule (used by the update and the logging hook's gradient norm).
    windows = trainer.trajectory_sub_stacker.data_sub_trajectories
    _, grads = trainer.make_problem().value_and_grad(stepper, windows, None, 0)
    assert arrays(grads.normalizer) == [] and len(arrays(grads)) == 2


def test_full_loss_is_in_normalized_units():
    data = field_data()[:, :, :1]
    normalizer = tx.Normalizer.fit(data)
    network = conv_stepper(1)
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.sgd(0.1), num_training_steps=1, batch_size=2, num_rollout_steps=2
    )
    manual = tx.trainer.SupervisedTrainer(
        normalizer.normalize(data), optimizer=optax.sgd(0.1), num_training_steps=1,
        batch_size=2, num_rollout_steps=2,
    )
    np.testing.assert_allclose(
        trainer.full_loss(tx.NormalizedStepper(network, normalizer)),
        manual.full_loss(network),
        rtol=1e-6,
    )


# --- files --------------------------------------------------------------------------


def test_save_load_round_trip_and_mismatch_errors(tmp_path):
    data = field_data()
    normalizer = tx.Normalizer.fit(data, increments=True)
    stepper = tx.NormalizedStepper(conv_stepper(5, 2, 2), normalizer, residual=True)
    path = tx.save_stepper(tmp_path / "net.eqx", stepper)
    like = tx.NormalizedStepper(
        conv_stepper(6, 2, 2),
        tx.Normalizer.fit(data * 0 + jnp.arange(6.0)[None, :, None, None], increments=True),
        residual=True,
    )
    loaded = tx.load_stepper(path, like)
    for a, b in zip(arrays(loaded), arrays(stepper)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded(data[0, 0]), stepper(data[0, 0]))

    with pytest.raises(
        ValueError,
        match="normalised stepper.*has no normalisation statistics.*NormalizedStepper",
    ):
        tx.load_stepper(path, conv_stepper(6, 2, 2))
    bare = tx.save_stepper(tmp_path / "bare.eqx", conv_stepper(5, 2, 2))
    with pytest.raises(ValueError, match="without normalisation statistics.*bare network"):
        tx.load_stepper(bare, like)
    wrong = tx.NormalizedStepper(
        conv_stepper(6, 1, 1), tx.Normalizer.fit(data[:, :, :1], increments=True), residual=True
    )
    with pytest.raises(ValueError, match="statistics_shapes"):
        tx.load_stepper(path, wrong)
    (tmp_path / "junk.eqx").write_bytes(b"junk\n")
    with pytest.raises(ValueError, match="not a trainax_fm stepper file"):
        tx.load_stepper(tmp_path / "junk.eqx", like)


def test_checkpoint_of_a_normalized_run_needs_the_statistics(tmp_path, key):
    data = field_data()[:, :, :1]
    normalizer = tx.Normalizer.fit(data)
    stepper = tx.NormalizedStepper(conv_stepper(0), normalizer)
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=2
    )
    full = trainer.train(stepper, key, spawn_tqdm=False)
    first = trainer.train(stepper, key, num_steps=2, spawn_tqdm=False)
    path = tx.save_train_state(tmp_path / "state.eqx", first.train_state)
    with pytest.raises(ValueError, match="`stepper_like` has no normalisation statistics"):
        tx.load_train_state(path, conv_stepper(0), trainer.optimizer)
    resumed = trainer.train(
        resume_from=tx.load_train_state(path, stepper, trainer.optimizer), spawn_tqdm=False
    )
    for a, b in zip(arrays(resumed.stepper), arrays(full.stepper)):
        np.testing.assert_array_equal(a, b)


def test_experiment_normalizes_seed_stacked_networks_with_one_set_of_statistics():
    from trainax_fm.experiment._setup import with_normalization

    data = field_data()[:, :, :1]
    networks = eqx.filter_vmap(lambda k: conv_stepper(0))(jax.random.split(jax.random.key(0), 2))
    config = {"network": {"normalize": "residual"}}
    stacked = with_normalization(config, networks, data, 2)
    expected = tx.Normalizer.fit(data, increments=True)
    for a, b in zip(arrays(stacked.normalizer), arrays(expected)):
        np.testing.assert_array_equal(a, jnp.stack([b, b]))
    assert stacked.residual
    assert with_normalization({"network": {"normalize": "none"}}, networks, data, 2) is networks
