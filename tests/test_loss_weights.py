"""Learned loss weights: `UncertaintyWeighted` with a `WithLossWeights` stepper.

Loss and gradient against the hand-written reference, vmap, dispatch modes and exact
resume are the registry's contracts (`tests/test_contracts.py`, cases
"UncertaintyWeighted" and "ConfigurationTrainer-UncertaintyWeighted"). Here: the
weights are trained, are read by name, combine with normalisation, and the errors.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import conv_stepper, random_windows

import trainax_fm as tx
from trainax_fm.configuration import Supervised, TemporalConsistency, UncertaintyWeighted

NAMES = ("supervised", "consistency")


def _configuration():
    return UncertaintyWeighted([Supervised(2), TemporalConsistency(2)], NAMES)


def _trainer(data, num_training_steps, batch_size=3, **engine):
    return tx.trainer.ConfigurationTrainer(
        data, _configuration(), optimizer=optax.adam(5e-2),
        num_training_steps=num_training_steps, batch_size=batch_size, **engine,
    )


def test_weights_are_trained_by_the_trainers_optimizer(key):
    """The gradient of `exp(-s_i) L_i + s_i` in `s_i` is `1 - exp(-s_i) L_i`, so
    adam's first step moves `s_i` by `lr * sign(L_i - 1)` from 0 (written out here);
    the weights are then read by name."""
    data = random_windows(0, 8, batch=4) * 3.0
    configuration = _configuration()
    stepper = configuration.wrap(conv_stepper(0))
    np.testing.assert_array_equal(stepper.log_variances, jnp.zeros(2))
    windows = tx.TrajectorySubStacker(data, 3).data_sub_trajectories
    trainer = _trainer(data, num_training_steps=1, batch_size=len(windows))
    result = trainer.train(stepper, key, spawn_tqdm=False)
    members = np.array([float(c(stepper.stepper, windows)) for c in configuration.configurations])
    np.testing.assert_allclose(
        result.stepper.log_variances, 5e-2 * np.sign(members - 1.0), rtol=1e-4
    )
    weights = tx.loss_weights(result.stepper)
    assert list(weights) == list(NAMES)
    np.testing.assert_allclose(
        [float(weights[n]) for n in NAMES], np.exp(-np.asarray(result.stepper.log_variances))
    )
    # Rollouts see the wrapped stepper.
    trained = result.stepper.stepper
    np.testing.assert_array_equal(result.stepper(data[0, 0]), trained(data[0, 0]))


def test_seed_stacked_weights_have_one_value_per_seed(key):
    configuration = _configuration()
    steppers = eqx.filter_vmap(lambda k: configuration.wrap(conv_stepper(0)))(
        jax.random.split(key, 2)
    )
    assert tx.loss_weights(steppers)["supervised"].shape == (2,)


def test_with_normalization_inside(key, tmp_path):
    """`WithLossWeights(NormalizedStepper(...))` trains in normalised units, keeps
    the statistics, and saves and loads with both wrappers recorded."""
    data = random_windows(1, 8, batch=4) * 5.0 + 2.0
    normalizer = tx.Normalizer.fit(data, increments=True)
    configuration = _configuration()
    stepper = configuration.wrap(tx.NormalizedStepper(conv_stepper(0), normalizer, residual=True))
    result = _trainer(data, 4, steps_per_dispatch=1).train(stepper, key, spawn_tqdm=False)
    np.testing.assert_array_equal(result.stepper.stepper.normalizer.std, normalizer.std)
    manual = tx.trainer.ConfigurationTrainer(
        normalizer.normalize(data), configuration, optimizer=optax.adam(5e-2),
        num_training_steps=4, batch_size=3, steps_per_dispatch=1,
    )
    bare = tx.WithLossWeights(
        tx.NormalizedStepper(conv_stepper(0), normalizer, residual=True).normalized_space(),
        NAMES,
    )
    expected = manual.train(bare, key, spawn_tqdm=False).stepper
    np.testing.assert_allclose(result.stepper.log_variances, expected.log_variances, rtol=1e-5)
    path = tx.save_stepper(tmp_path / "net.eqx", result.stepper)
    loaded = tx.load_stepper(path, stepper)
    np.testing.assert_array_equal(loaded.log_variances, result.stepper.log_variances)
    with pytest.raises(ValueError, match="loss_weight_names"):
        tx.load_stepper(path, tx.WithLossWeights(stepper.stepper, ("a", "b")))


def test_errors_name_the_fix():
    data = random_windows(2, 3)
    with pytest.raises(TypeError, match=r"configuration.wrap\(stepper\)"):
        _configuration()(conv_stepper(0), data)
    with pytest.raises(ValueError, match="names"):
        _configuration()(tx.WithLossWeights(conv_stepper(0), ("a", "b")), data)
    with pytest.raises(ValueError, match="one entry per configuration"):
        UncertaintyWeighted([Supervised(1)], NAMES)
    with pytest.raises(ValueError, match="distinct"):
        UncertaintyWeighted([Supervised(1), Supervised(2)], ("a", "a"))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tx.WithLossWeights(conv_stepper(0), NAMES, jnp.zeros(3))
    with pytest.raises(TypeError, match="WithLossWeights"):
        tx.loss_weights(conv_stepper(0))
    with pytest.raises(TypeError, match="wrap the bare network"):
        tx.NormalizedStepper(
            tx.WithLossWeights(conv_stepper(0), NAMES),
            tx.Normalizer.fit(random_windows(3, 4)),
        )


def test_the_logger_records_the_learned_weights(key, tmp_path):
    import json

    data = random_windows(0, 8, batch=4) * 3.0
    stepper = _configuration().wrap(conv_stepper(0))
    logger = tx.hook.Logger(tmp_path, every=5, formats=("jsonl",), grad_norm=False)
    result = _trainer(data, num_training_steps=10).train(
        stepper, key, spawn_tqdm=False, hooks=[logger]
    )
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10]
    final = tx.loss_weights(result.stepper)
    for name in NAMES:
        assert records[-1][f"loss_weight/{name}"] == pytest.approx(float(final[name]))
    assert records[0]["loss_weight/supervised"] != records[-1]["loss_weight/supervised"]
