"""3D fields `(C, N, N, N)` end to end, driven by the registry's `CONFIGURATIONS_3D`.

One case per configuration family (rollout, diverted and mix chains with a reference
stepper, residuum, teacher forcing, flow matching and the flow-map families) on a
4x4x4 grid: loss and gradient under `eqx.filter_jit` equal the hand-written reference,
and `ConfigurationTrainer` trains it for two updates on 3D trajectories.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_value_and_grad_close, value_and_grad
from registry import CONFIGURATIONS_3D, FIELDS_3D

import trainax_fm as tx


@pytest.mark.parametrize("case", CONFIGURATIONS_3D, ids=repr)
def test_3d_configuration_matches_reference_and_trains(case, key):
    configuration = case.make()
    stepper, data = case.stepper(1), case.data()
    assert data.ndim == 6  # (batch, window, C, N, N, N)

    def loss(s):
        return configuration(s, data, key=key, **case.call_kwargs)

    jitted = value_and_grad(loss, stepper, jit=True)
    expected = value_and_grad(lambda s: case.reference(s, data, key), stepper, jit=True)
    assert jnp.shape(jitted[0]) == () and np.isfinite(float(jitted[0]))
    assert any(float(jnp.max(jnp.abs(g))) > 0.0 for g in jitted[1]), "zero gradient"
    assert_value_and_grad_close(jitted, expected, label="3D")

    trainer = tx.trainer.ConfigurationTrainer(
        FIELDS_3D,
        configuration,
        optimizer=optax.adam(1e-2),
        num_training_steps=2,
        batch_size=2,
        steps_per_dispatch=1,
        **case.call_kwargs,
    )
    result = trainer.train(stepper, key, spawn_tqdm=False)
    assert result.loss_history.shape == (2,)
    assert np.all(np.isfinite(result.loss_history))
    trained = jax.tree_util.tree_leaves(eqx.filter(result.stepper, eqx.is_array))
    initial = jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array))
    assert any(not np.array_equal(a, b) for a, b in zip(trained, initial))
