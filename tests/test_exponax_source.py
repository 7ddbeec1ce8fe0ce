"""The CLI's `exponax:<Stepper>` source: any exponax stepper, parameters from TOML."""

import jax
import numpy as np
import pytest

import trainax_fm as tx
from trainax_fm.experiment import ConfigError, validate_config

exponax = pytest.importorskip("exponax", reason="pip install 'trainax_fm[pde]'")

SIZES = {"num_train_samples": 2, "num_test_samples": 1, "temporal_horizon": 4}


def _config(**data):
    return validate_config({"data": {**SIZES, **data}, "evaluation": {"num_rollout_steps": 3}})


def test_any_stepper_with_parameters_from_the_table():
    """The data are the exponax stepper's rollouts with the configured parameters, and
    it is the reference stepper."""
    config = _config(source="exponax:KuramotoSivashinskyConservative", num_points=32,
                     dt=0.5, domain_extent=30.0, convection_scale=0.5,
                     fourth_order_scale=2.0)
    assert config["data"]["convection_scale"] == 0.5
    assert config["data"]["second_order_scale"] == 1.0  # exponax's default
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 4, 1, 32)
    expected = exponax.stepper.KuramotoSivashinskyConservative(
        1, 30.0, 32, 0.5, convection_scale=0.5, fourth_order_scale=2.0
    )
    with jax.numpy_rank_promotion("allow"):  # exponax broadcasts implicitly
        np.testing.assert_allclose(
            jax.vmap(expected)(dataset.train[:, 0]), dataset.train[:, 1], atol=1e-5
        )
        np.testing.assert_allclose(
            jax.vmap(dataset.ref_stepper)(dataset.train[:, 2]), dataset.train[:, 3],
            atol=1e-5,
        )


def test_multichannel_2d_and_list_parameters():
    config = _config(source="exponax:GrayScott", num_points=16, num_spatial_dims=2, dt=1.0,
                     feed_rate=0.03)
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 4, 2, 16, 16)
    config = _config(source="exponax:GeneralLinearStepper", num_points=16,
                     linear_coefficients=[0.0, -0.5, 0.01])
    assert config["data"]["linear_coefficients"] == (0.0, -0.5, 0.01)
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 4, 1, 16)


@pytest.mark.parametrize(
    "data, field, words",
    [
        ({"source": "exponax:KuramotoSivashinskyConservativ"}, "data.source",
         'did you mean "exponax:KuramotoSivashinskyConservative"'),
        ({"source": "exponax:Burgers", "viscosity": 0.1}, "data.viscosity", "diffusivity"),
        ({"source": "exponax:Burgers", "diffusivity": "a"}, "data.diffusivity", "a number"),
        ({"source": "exponax:GeneralLinearStepper", "linear_coefficients": [1, True]},
         "data.linear_coefficients", "set linear_coefficients = [0.0, -0.1, 0.01]"),
        ({"source": "exponax:Wave", "num_spatial_dims": 4}, "data.num_spatial_dims", "[1, 3]"),
    ],
)
def test_errors_name_the_field(data, field, words):
    with pytest.raises(ConfigError) as error:
        validate_config({"data": data})
    assert error.value.args[0].startswith(f"`{field}`") or field in str(error.value)
    assert words in str(error.value)


def test_run_experiment_on_a_generic_stepper(tmp_path):
    config = {
        "name": "wave",
        "data": {"source": "exponax:Advection", "velocity": 0.5, "num_points": 16,
                 "num_train_samples": 4, "num_test_samples": 2, "temporal_horizon": 8,
                 "dt": 0.05},
        "network": {"spec": "Conv;4;2;relu"},
        "training": {"method": "sup;2", "num_training_steps": 10, "batch_size": 4},
        "evaluation": {"num_rollout_steps": 4, "nrmse_aggregate_steps": 4},
    }
    summary = tx.experiment.run_experiment(config, tmp_path, quiet=True, printer=lambda _: None)
    written = (tmp_path / "wave" / "config.toml").read_text()
    assert 'source = "exponax:Advection"' in written and "velocity = 0.5" in written
    assert summary is not None
