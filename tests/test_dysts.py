"""The dysts catalogue behind the optional extra (skipped without dysts)."""

import jax
import numpy as np
import pytest

import trainax_fm as tx

dysts = pytest.importorskip("dysts", reason="optional extra: pip install 'trainax_fm[dysts]'")


def test_catalogue_and_trajectories(key):
    systems = tx.sample_data.dysts_systems()
    assert len(systems) > 100 and "Lorenz" in systems
    data = tx.sample_data.dysts_trajectories(
        "Lorenz", 2, temporal_horizon=30, num_warmup_steps=5, key=key
    )
    assert data.shape == (2, 30, 3) and data.dtype == np.float32
    assert np.all(np.isfinite(data))
    assert not np.allclose(data[0], data[1])
    again = tx.sample_data.dysts_trajectories(
        "Lorenz", 2, temporal_horizon=30, num_warmup_steps=5, key=key
    )
    np.testing.assert_array_equal(data, again)
    other = tx.sample_data.dysts_trajectories(
        "Lorenz", 2, temporal_horizon=30, num_warmup_steps=5, key=jax.random.key(9)
    )
    assert not np.allclose(data, other)


def test_unknown_system_names_the_close_ones(key):
    with pytest.raises(ValueError, match="Did you mean Lorenz"):
        tx.sample_data.dysts_trajectories("Lorenx", key=key)
