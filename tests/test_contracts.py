"""Contracts every exported configuration and trainer must meet, driven by the registry.

`tests/registry.py` lists every exported configuration and trainer with a tiny setup.
Each configuration: loss and gradient equal a hand-written reference; the loss is a
finite scalar and the same under `eqx.filter_jit`; `eqx.filter_vmap` over the steppers
of two seeds gives the per-seed losses. Each trainer: trains, returns trainax-style
values, runs under `eqx.filter_vmap` over seeds and with `num_seeds` like separate runs,
agrees across dispatch modes and `record_loss_every`, resumes bit for bit from a
saved train state, and trains from a file on disk exactly as from memory. A newly
exported class that is missing from the registry fails
`test_registry_is_complete`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_value_and_grad_close, value_and_grad
from registry import (
    ALL_CONFIGURATIONS,
    CONFIGURATIONS,
    NON_FACTORY_CONFIGURATIONS,
    NOT_CONFIGURATIONS,
    TRAINERS,
    WRAPPED_STEPPER_CONFIGURATIONS,
    engine_path_params,
    exported_classes,
    stack_trees,
    unstack_tree,
)

import trainax_fm as tx
from trainax_fm.configuration import BaseConfiguration

NUM_UPDATES = 4


def arrays(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


# --- completeness -------------------------------------------------------------------


def test_registry_is_complete():
    """Every exported configuration and trainer class has a registry entry."""
    configurations = exported_classes(tx.configuration) - NOT_CONFIGURATIONS
    registered = {case.cls.__name__ for case in CONFIGURATIONS}
    assert configurations - registered == set(), "configurations missing in registry.py"
    assert registered <= configurations
    for name in configurations:
        cls = getattr(tx.configuration, name)
        assert issubclass(cls, BaseConfiguration), f"{name} is not a configuration"
    # The rollout configurations also have a factory of the rollout length.
    rollout = configurations - NON_FACTORY_CONFIGURATIONS - WRAPPED_STEPPER_CONFIGURATIONS
    assert {f.name for f in ALL_CONFIGURATIONS} == rollout

    trainers = exported_classes(tx.trainer)
    assert trainers == {case.cls.__name__ for case in TRAINERS}, (
        "trainers missing in (or unknown to) registry.py"
    )
    assert len({case.name for case in CONFIGURATIONS + TRAINERS}) == len(
        CONFIGURATIONS + TRAINERS
    )


# --- configurations -----------------------------------------------------------------


def _loss_fn(case, configuration, data, key):
    def loss(stepper):
        return configuration(stepper, data, key=key, **case.call_kwargs)

    return loss


@pytest.mark.parametrize("case", CONFIGURATIONS, ids=repr)
def test_configuration_matches_reference(case, key):
    """Loss and gradient under `eqx.filter_jit` equal the hand-written reference; the
    loss is a finite scalar and the gradient is not zero. (The eager path of every mode
    is checked against the same references in tests/test_configuration.py.)"""
    configuration = case.make()
    assert isinstance(configuration, case.cls)
    stepper, data = case.stepper(1), case.data()
    loss = _loss_fn(case, configuration, data, key)
    expected = value_and_grad(lambda s: case.reference(s, data, key), stepper, jit=True)
    jitted = value_and_grad(loss, stepper, jit=True)
    assert jnp.shape(jitted[0]) == () and np.isfinite(float(jitted[0]))
    assert any(float(jnp.max(jnp.abs(g))) > 0.0 for g in jitted[1]), "zero gradient"
    assert_value_and_grad_close(jitted, expected, label="jit")


@pytest.mark.parametrize("case", CONFIGURATIONS, ids=repr)
def test_configuration_vmaps_over_seeds(case, key):
    """`eqx.filter_vmap` over the steppers of two seeds gives each seed's loss."""
    configuration = case.make()
    data = case.data()
    steppers = [case.stepper(seed) for seed in (2, 3)]
    loss = eqx.filter_jit(
        lambda s: configuration(s, data, key=key, **case.call_kwargs)
    )
    separate = [loss(s) for s in steppers]
    assert not np.isclose(float(separate[0]), float(separate[1])), "seeds coincide"
    vmapped = eqx.filter_jit(eqx.filter_vmap(loss))(stack_trees(steppers))
    assert vmapped.shape == (2,)
    np.testing.assert_allclose(vmapped, separate, rtol=1e-5, atol=1e-7)


# --- trainers -----------------------------------------------------------------------


def _final(result):
    """`(stepper, loss history)` of `train`'s result (all stages for a multistage one)."""
    if isinstance(result, list):
        return result[-1].stepper, jnp.concatenate([r.loss_history for r in result])
    return result.stepper, result.loss_history


def _assert_trees_close(a, b, *, exact=False, label=""):
    leaves_a, leaves_b = arrays(a), arrays(b)
    assert len(leaves_a) == len(leaves_b) > 0, label
    for x, y in zip(leaves_a, leaves_b):
        if exact:
            np.testing.assert_array_equal(x, y, err_msg=label)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=label)


@pytest.mark.parametrize("case", TRAINERS, ids=repr)
def test_trainer_trains_and_returns_trainax_values(case, key):
    """`train` records one finite loss per update and changes the stepper;
    `trainer(stepper, key)` returns `(stepper, losses)` of the same run (or the stepper
    alone with `return_loss_history=False`)."""
    trainer = case.make(NUM_UPDATES, steps_per_dispatch=1)
    stepper = case.stepper(0)
    result = trainer.train(stepper, key, spawn_tqdm=False)
    trained, losses = _final(result)
    num_stages = len(result) if case.multistage else 1
    assert losses.shape == (num_stages * NUM_UPDATES,)
    assert np.all(np.isfinite(losses))
    for stage in result if case.multistage else [result]:
        assert stage.train_state.step == NUM_UPDATES
    assert type(trained) is type(stepper)
    assert any(not np.array_equal(a, b) for a, b in zip(arrays(trained), arrays(stepper)))

    out = trainer(stepper, key, spawn_tqdm=False)
    assert isinstance(out, tuple) and len(out) == 2
    _assert_trees_close(out[0], trained, exact=True, label="trainer(stepper, key)")
    np.testing.assert_array_equal(out[1], losses)
    alone = trainer(stepper, key, return_loss_history=False, spawn_tqdm=False)
    assert type(alone) is type(stepper)


@pytest.mark.parametrize("case", engine_path_params(TRAINERS))
def test_trainer_trains_in_mixed_precision(case, key):
    """With `precision=MixedPrecision("bfloat16")` every trainer trains with finite
    losses close to float32's (the networks compute in bfloat16, the losses in float32)
    and returns float32 parameters."""
    stepper = case.stepper(0)
    reference = _final(case.make(2, steps_per_dispatch=1).train(stepper, key, spawn_tqdm=False))
    low = _final(
        case.make(2, steps_per_dispatch=1, precision=tx.MixedPrecision()).train(
            stepper, key, spawn_tqdm=False
        )
    )
    assert np.all(np.isfinite(low[1]))
    np.testing.assert_allclose(low[1][0], reference[1][0], rtol=0.05)
    for leaf in arrays(low[0]):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32


@pytest.mark.parametrize("case", engine_path_params(TRAINERS))
def test_trainer_engine_options_agree(case, key):
    """Dispatching 1 or 3 updates per call trains the same stepper (the automatic
    choice is checked in tests/test_trainer.py); `record_loss_every=k` keeps every k-th
    loss."""
    stepper = case.stepper(0)
    one = _final(case.make(NUM_UPDATES + 2, steps_per_dispatch=1).train(
        stepper, key, spawn_tqdm=False
    ))
    trainer = case.make(NUM_UPDATES + 2, steps_per_dispatch=3)
    three = _final(trainer.train(stepper, key, spawn_tqdm=False))
    _assert_trees_close(three[0], one[0], label="steps_per_dispatch=3")
    np.testing.assert_allclose(three[1], one[1], rtol=1e-5, atol=1e-6)
    every_second = trainer(stepper, key, record_loss_every=2, spawn_tqdm=False)[1]
    if case.multistage:
        expected = one[1].reshape(-1, NUM_UPDATES + 2)[:, ::2].reshape(-1)
    else:
        expected = one[1][::2]
    np.testing.assert_allclose(every_second, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", engine_path_params(TRAINERS))
def test_trainer_vmaps_over_seeds_like_separate_runs(case):
    """apebench pattern: `eqx.filter_vmap(trainer)` over two seeds (here under
    `eqx.filter_jit`), and `train(..., num_seeds=2)`, equal two separate runs."""
    num_updates = 2  # every update is traced anew under the outer vmap
    trainer = case.make(num_updates, steps_per_dispatch=1)
    init = [case.stepper(seed) for seed in (4, 5)]
    keys = jax.random.split(jax.random.key(6), 2)
    separate = [trainer(s, k, spawn_tqdm=False) for s, k in zip(init, keys)]
    # Compiled once as a whole: the un-jitted vmap dispatches every batched operation
    # of the loop on its own (tests/test_trainer.py runs that form once).
    vmapped_stepper, vmapped_losses = eqx.filter_jit(
        eqx.filter_vmap(lambda s, k: trainer(s, k, spawn_tqdm=False))
    )(stack_trees(init), keys)
    for i, (stepper, losses) in enumerate(separate):
        _assert_trees_close(unstack_tree(vmapped_stepper, i), stepper, label=f"seed {i}")
        np.testing.assert_allclose(vmapped_losses[i], losses, rtol=1e-5, atol=1e-6)
    if case.multistage:
        return  # stages take no `num_seeds`
    batched = trainer.train(stack_trees(init), keys, num_seeds=2, spawn_tqdm=False)
    assert batched.loss_history.shape == (2, num_updates)
    for i, (stepper, losses) in enumerate(separate):
        _assert_trees_close(unstack_tree(batched.stepper, i), stepper, label=f"seed {i}")
        np.testing.assert_allclose(batched.loss_history[i], losses, rtol=1e-5, atol=1e-6)


class _StopAt(tx.hook.AbstractHook):
    """Stops training cleanly at update `step` (of the current stage)."""

    def __init__(self, step):
        self.step = step

    def next_boundary(self, loop, step):
        return self.step if step < self.step else None

    def on_boundary(self, loop):
        if loop.step >= self.step:
            loop.request_stop(f"stopped at {loop.step}")


@pytest.mark.parametrize("case", TRAINERS, ids=repr)
def test_trainer_resumes_bit_for_bit(case, key, tmp_path):
    """N updates in one call equal N/2 updates, `save_train_state`/`load_train_state`
    and N/2 more, bit for bit (weights, loss history, optimizer state). A multistage
    trainer is stopped mid-stage and resumes from the train state it checkpoints."""
    half = NUM_UPDATES // 2
    stepper = case.stepper(0)
    if case.multistage:
        trainer = case.make(NUM_UPDATES, steps_per_dispatch=1, checkpoint_path=tmp_path)
        full = trainer.train(stepper, key, spawn_tqdm=False)
        stopped = trainer.train(stepper, key, spawn_tqdm=False, hooks=[_StopAt(half)])
        assert stopped[-1].train_state.step == half
        path = tmp_path / "train_state.eqx"
        state = tx.load_train_state(path, stepper, trainer.stage_optimizer())
        assert state.step == half
        resumed = trainer.train(resume_from=state, spawn_tqdm=False)
        full, resumed = full[-1], resumed[-1]
    else:
        trainer = case.make(NUM_UPDATES, steps_per_dispatch=1)
        full = trainer.train(stepper, key, spawn_tqdm=False)
        first = trainer.train(stepper, key, num_steps=half, spawn_tqdm=False)
        path = tx.save_train_state(tmp_path / "state.eqx", first.train_state)
        state = tx.load_train_state(path, stepper, trainer.optimizer)
        assert state.step == half
        resumed = trainer.train(resume_from=state, spawn_tqdm=False)
    _assert_trees_close(resumed.stepper, full.stepper, exact=True, label="resumed")
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    _assert_trees_close(resumed.opt_state, full.opt_state, exact=True, label="opt_state")


@pytest.mark.parametrize("case", engine_path_params(TRAINERS))
def test_trainer_trains_from_disk_like_in_memory(case, key, tmp_path):
    """Given its trajectories as a `.npy` file on disk (`tx.data.DiskTrajectories`),
    the trainer sees the same minibatches and ends with bit-identical weights."""
    np.save(tmp_path / "data.npy", np.asarray(case.data))
    on_disk = tx.data.open_trajectories(f"npy:{tmp_path / 'data.npy'}")
    stepper = case.stepper(0)
    memory, disk = (
        _final(case.make(NUM_UPDATES, data=data, steps_per_dispatch=1).train(
            stepper, key, spawn_tqdm=False
        ))
        for data in (case.data, on_disk)
    )
    _assert_trees_close(disk[0], memory[0], exact=True, label="from disk")
    np.testing.assert_array_equal(disk[1], memory[1])
