"""The CLI's file source with constants per trajectory (`constant_scalars`,
`constant_fields` in the `.npz`): a conditioned emulator is trained and evaluated."""

import jax
import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm.experiment import ConfigError
from trainax_fm.experiment._files import load_constants


def _write(path, num=6, horizon=8, num_points=16, **constants):
    data = tx.sample_data.advection_1d_varying_speed(
        num_points, num, highest_init_mode=3, temporal_horizon=horizon, key=jax.random.key(0)
    )
    arrays = {"trajectories": np.asarray(data.trajectories),
              "constant_scalars": np.asarray(data.constant_scalars), **constants}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return data


def test_loader_reads_and_checks_constants(tmp_path):
    path = tmp_path / "data.npz"
    data = _write(path, constant_fields=np.ones((6, 1, 16), np.float32))
    scalars, fields = load_constants(path, data.trajectories.shape)
    np.testing.assert_array_equal(scalars, data.constant_scalars)
    assert fields.shape == (6, 1, 16)
    _write(path, constant_scalars=np.ones((5, 1)))
    with pytest.raises(ConfigError, match=r"`constant_scalars` shaped \(6, P\)"):
        load_constants(path, data.trajectories.shape)
    _write(path, constant_fields=np.ones((6, 1, 15)))
    with pytest.raises(ConfigError, match=r"`constant_fields` shaped \(6, F, 16\)"):
        load_constants(path, data.trajectories.shape)
    _write(path, constant_scalars=np.full((6, 1), np.nan))
    with pytest.raises(ConfigError, match="finite numbers"):
        load_constants(path, data.trajectories.shape)


def test_run_and_evaluate_a_conditioned_emulator(tmp_path):
    path = tmp_path / "speeds.npz"
    data = _write(path)
    config = {
        "name": "speeds",
        "data": {"source": f"file:{path}", "num_test_samples": 2},
        "network": {"spec": "Conv;4;2;relu"},
        "training": {"method": "sup;2", "num_training_steps": 10, "batch_size": 4},
        "evaluation": {"num_rollout_steps": 4, "nrmse_aggregate_steps": 4},
        "validation": {"num_samples": 1, "every": 5, "metrics": "loss;nrmse@2",
                       "evaluate": "final"},
    }
    tx.experiment.run_experiment(config, tmp_path / "runs", quiet=True, printer=lambda _: None)
    run_dir = tmp_path / "runs" / "speeds"
    config_used = tx.experiment.load_config(run_dir / "config.toml")
    dataset, _ = tx.experiment.load_data(config_used)
    assert dataset.num_constant_channels == 1
    held_out = dataset.hold_out(1)
    np.testing.assert_array_equal(
        held_out.validation_data.constant_scalars, data.constant_scalars[3:4]
    )
    assert held_out.training_data.constant_scalars.shape == (3, 1)
    [stepper] = tx.experiment.load_networks(run_dir, config_used, (1, 16), 1)
    assert isinstance(stepper, tx.ConditionedNetwork)
    # The evaluation rolls the last two trajectories out with their own speeds.
    metrics = tx.experiment.evaluate(run_dir)
    prediction = tx.rollout(
        stepper, data.trajectories[4:, 0], 4, batched=True,
        constant_scalars=data.constant_scalars[4:],
    )
    expected = tx.metrics.nrmse(prediction, data.trajectories[4:, 1:5], batched=True)
    np.testing.assert_allclose(metrics["nrmse"], expected, rtol=1e-4)
