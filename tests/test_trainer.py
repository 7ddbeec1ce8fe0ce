"""The training engine and the one-line trainers."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from trainax_fm.configuration import Composite, Supervised, TemporalConsistency
from trainax_fm.trainer import (
    ConfigurationTrainer,
    DivertedChainBranchOneTrainer,
    DivertedChainTrainer,
    MixChainPostPhysicsTrainer,
    ResiduumTrainer,
    SupervisedTrainer,
    TeacherForcingTrainer,
)

KEY = jax.random.PRNGKey(0)


def conv(key=jax.random.PRNGKey(1), channels_in=1):
    return eqx.nn.Conv1d(channels_in, 1, 3, padding=1, padding_mode="CIRCULAR", key=key)


def shift(u):
    return jnp.roll(u, 1, axis=-1)


def residuum(u_next, u_prev):
    return u_next - jnp.roll(u_prev, 1, axis=-1)


@pytest.fixture(scope="module")
def data():
    return jax.random.normal(KEY, (3, 10, 1, 8))


COMMON = dict(optimizer=optax.adam(1e-2), num_training_steps=12, batch_size=4)

TRAINERS = {
    "supervised": lambda d, **kw: SupervisedTrainer(d, num_rollout_steps=2, **kw),
    "branch_one": lambda d, **kw: DivertedChainBranchOneTrainer(
        d, ref_stepper=shift, num_rollout_steps=2, **kw
    ),
    "diverted": lambda d, **kw: DivertedChainTrainer(
        d, ref_stepper=shift, num_rollout_steps=3, num_branch_steps=2, **kw
    ),
    "residuum": lambda d, **kw: ResiduumTrainer(
        d, residuum_fn=residuum, num_rollout_steps=2, **kw
    ),
    "mix_chain": lambda d, **kw: MixChainPostPhysicsTrainer(
        d, ref_stepper=shift, num_rollout_steps=2, num_post_physics_steps=1, **kw
    ),
    "teacher_forcing": lambda d, **kw: TeacherForcingTrainer(
        d, num_rollout_steps=3, teacher_forcing_probability="6:1.0,12:0.5", **kw
    ),
    "composite": lambda d, **kw: ConfigurationTrainer(
        d, Composite([Supervised(2), TemporalConsistency(2)], [1.0, 0.5]), **kw
    ),
}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_trainer_trains_and_lowers_the_loss(data, name):
    trainer = TRAINERS[name](data, **{**COMMON, "num_training_steps": 40})
    result = trainer.train(conv(), KEY, spawn_tqdm=False)
    assert result.loss_history.shape == (40,)
    assert np.all(np.isfinite(result.loss_history))
    assert result.loss_history[-5:].mean() < result.loss_history[:5].mean()
    assert result.train_state.step == 40


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_dispatch_modes_agree(data, name):
    steppers = []
    for mode in (1, 5, "auto"):
        trainer = TRAINERS[name](data, **COMMON, steps_per_dispatch=mode)
        stepper, losses = trainer(conv(), KEY, spawn_tqdm=False)
        steppers.append((stepper.weight, losses))
    for weight, losses in steppers[1:]:
        np.testing.assert_allclose(weight, steppers[0][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses, steppers[0][1], rtol=1e-5, atol=1e-6)


def test_trainax_return_conventions(data):
    trainer = SupervisedTrainer(data, **COMMON)
    stepper, losses = trainer(conv(), KEY, spawn_tqdm=False)
    assert isinstance(stepper, eqx.nn.Conv1d) and losses.shape == (12,)
    stepper_only = trainer(conv(), KEY, return_loss_history=False, spawn_tqdm=False)
    assert isinstance(stepper_only, eqx.nn.Conv1d)
    _, every_third = trainer(conv(), KEY, record_loss_every=3, spawn_tqdm=False)
    np.testing.assert_allclose(every_third, losses[::3], rtol=1e-6)

    with_callback = SupervisedTrainer(
        data, **COMMON, callback_fn=tx.callback.GetNetwork(5)
    )
    stepper, losses, aux = with_callback(conv(), KEY, spawn_tqdm=False)
    assert len(aux) == 12
    assert [a["network"] is not None for a in aux] == [i % 5 == 0 for i in range(12)]
    stepper, aux = with_callback(conv(), KEY, return_loss_history=False, spawn_tqdm=False)
    assert len(aux) == 12


def test_callback_sees_stepper_before_update_and_minibatch(data):
    seen = []

    def spy(update_i, stepper, batch):
        seen.append((update_i, stepper.weight, batch.shape))
        return {"i": update_i}

    trainer = SupervisedTrainer(data, **COMMON, callback_fn=spy)
    stepper, losses, aux = trainer(conv(), KEY, spawn_tqdm=False)
    assert [a["i"] for a in aux] == list(range(12))
    np.testing.assert_array_equal(seen[0][1], conv().weight)
    assert seen[0][2] == (4, 2, 1, 8)
    # The callback at update i sees the stepper produced by update i - 1.
    replay = SupervisedTrainer(data, **{**COMMON, "num_training_steps": 5})
    after_five, _ = replay(conv(), KEY, spawn_tqdm=False)
    np.testing.assert_allclose(seen[5][1], after_five.weight, rtol=1e-6)


def test_loss_history_is_loss_before_each_update(data):
    # Full-batch training: every minibatch holds all windows, so the first recorded
    # loss equals the configuration on the whole dataset at the initial parameters.
    with pytest.warns(UserWarning, match="full-batch"):
        trainer = SupervisedTrainer(
            data, optimizer=optax.sgd(0.1), num_training_steps=3, batch_size=1000
        )
    stepper = conv()
    _, losses = trainer(stepper, KEY, spawn_tqdm=False)
    np.testing.assert_allclose(losses[0], trainer.full_loss(stepper), rtol=1e-6)
    updated, _, loss = trainer.step_fn(
        stepper, optax.sgd(0.1).init(eqx.filter(stepper, eqx.is_array)),
        trainer.trajectory_sub_stacker.data_sub_trajectories,
    )
    np.testing.assert_allclose(loss, losses[0], rtol=1e-6)
    np.testing.assert_allclose(losses[1], trainer.full_loss(updated), rtol=1e-5)


def test_seed_parallel_vmap_matches_separate_calls(data):
    trainer = SupervisedTrainer(data, **COMMON, num_rollout_steps=2)
    init_keys = jax.random.split(jax.random.PRNGKey(3), 3)
    run_keys = jax.random.split(jax.random.PRNGKey(4), 3)
    steppers = eqx.filter_vmap(conv)(init_keys)
    vmapped, vmapped_losses = eqx.filter_vmap(
        lambda s, k: trainer(s, k, spawn_tqdm=False)
    )(steppers, run_keys)
    for i in range(3):
        single, single_losses = trainer(conv(init_keys[i]), run_keys[i], spawn_tqdm=False)
        np.testing.assert_allclose(vmapped.weight[i], single.weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(vmapped_losses[i], single_losses, rtol=1e-5, atol=1e-6)


def test_seed_parallel_with_callbacks_like_apebench(data):
    callback = tx.callback.CompositeCallback(
        [lambda i, s, d: {"norm": jnp.sum(s.weight**2)}]
    )
    trainer = SupervisedTrainer(data, **COMMON, callback_fn=callback)
    steppers = eqx.filter_vmap(conv)(jax.random.split(KEY, 2))
    out = eqx.filter_vmap(
        lambda s, k: trainer(s, k, record_loss_every=4)
    )(steppers, jax.random.split(KEY, 2))
    stepper, losses, aux = out
    assert losses.shape == (2, 3)
    assert len(aux) == 12 and aux[0]["norm"].shape == (2,)


@pytest.mark.parametrize("container", ["tuple", "dict"])
def test_pytree_data_trains(container):
    u = jax.random.normal(KEY, (3, 8, 1, 8))
    v = jax.random.normal(jax.random.PRNGKey(9), (3, 8, 2, 8))
    data = (u, v) if container == "tuple" else {"u": u, "v": v}

    class TwoFieldStepper(eqx.Module):
        mix: eqx.nn.Conv1d

        def __call__(self, state):
            leaves, treedef = jax.tree_util.tree_flatten(state)
            stacked = jnp.concatenate(leaves, axis=0)
            out = self.mix(stacked)
            return jax.tree_util.tree_unflatten(treedef, [out[:1], out[1:]])

    stepper = TwoFieldStepper(conv(channels_in=1).__class__(
        3, 3, 3, padding=1, padding_mode="CIRCULAR", key=KEY
    ))
    trainer = SupervisedTrainer(data, **{**COMMON, "num_training_steps": 30}, num_rollout_steps=2)
    result = trainer.train(stepper, KEY, spawn_tqdm=False)
    assert result.loss_history[-5:].mean() < result.loss_history[:5].mean()


def test_resume_continues_exactly(data):
    trainer = SupervisedTrainer(
        data, **{**COMMON, "num_training_steps": 20}, steps_per_dispatch=1
    )
    full = trainer.train(conv(), KEY, spawn_tqdm=False)
    first = trainer.train(conv(), KEY, num_steps=10, spawn_tqdm=False)
    assert first.train_state.step == 10
    second = trainer.train(resume_from=first.train_state, spawn_tqdm=False)
    np.testing.assert_array_equal(second.stepper.weight, full.stepper.weight)
    np.testing.assert_array_equal(second.loss_history, full.loss_history)


def test_non_finite_loss_stops_with_the_step(data):
    class Exploding(eqx.Module):
        weight: jax.Array

        def __call__(self, u):
            return u * self.weight

    poisoned = data.at[:, 5:].set(1e30)
    trainer = SupervisedTrainer(
        poisoned, optimizer=optax.sgd(1e10), num_training_steps=30, batch_size=2
    )
    with pytest.raises(tx.NonFiniteLossError, match="at update"):
        trainer(Exploding(jnp.ones(())), KEY, spawn_tqdm=False)


def test_progress_bar_runs(data, capsys):
    trainer = SupervisedTrainer(data, **COMMON)
    trainer(conv(), KEY, spawn_tqdm=True)
    assert "12/12" in capsys.readouterr().err


@pytest.mark.parametrize(
    "build, error, match",
    [
        (
            lambda d: SupervisedTrainer(d, **{**COMMON, "num_training_steps": -3}),
            ValueError,
            r"`num_training_steps` must be an integer >= 1, got -3",
        ),
        (lambda d: SupervisedTrainer(d, **{**COMMON, "batch_size": -1}), ValueError, "batch_size"),
        (
            lambda d: SupervisedTrainer(d, **COMMON, num_rollout_steps=10),
            ValueError, "sub_trajectory_len",
        ),
        (lambda d: SupervisedTrainer(d[0, 0], **COMMON), ValueError, "data_trajectories"),
        (lambda d: SupervisedTrainer(d, **{**COMMON, "optimizer": "adam"}), TypeError, "optimizer"),
        (lambda d: DivertedChainBranchOneTrainer(d, **COMMON), ValueError, "ref_stepper"),
        (lambda d: ResiduumTrainer(d, **COMMON), ValueError, "residuum_fn"),
        (lambda d: SupervisedTrainer((d, d[:, :5]), **COMMON), ValueError, "leading"),
        (
            lambda d: SupervisedTrainer(d, **COMMON, steps_per_dispatch=0),
            ValueError, "steps_per_dispatch",
        ),
        (
            lambda d: tx.GeneralTrainer(
                d, Supervised(), optimizer=optax.sgd(1.0), num_minibatches=1, batch_size=1
            ),
            TypeError, "trajectory_sub_stacker",
        ),
    ],
)
def test_bad_input_is_a_clear_error(data, build, error, match):
    with pytest.raises(error, match=match):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build(data)


def test_bad_key_is_a_clear_error(data):
    trainer = SupervisedTrainer(data, **COMMON)
    with pytest.raises(TypeError, match="key"):
        trainer(conv(), 0, spawn_tqdm=False)


@pytest.mark.parametrize(
    "network, trajectories, words",
    [
        # a network built for 2 channels on 1-channel data
        (lambda: eqx.nn.Conv1d(2, 2, 3, padding=1, key=KEY), lambda d: d,
         ["states have shape (1, 8)", "Conv1d", "2 channel(s)", "data has 1 channel(s)",
          "build the network with 1 input channel(s)"]),
        # an MLP (for ODE states) given a field
        (lambda: eqx.nn.MLP(3, 3, 8, 1, key=KEY), lambda d: d,
         ["states have shape (1, 8)", "MLP", "vectors of 3 entries", "convolutional network"]),
        # a 1D field stored without its channel axis: (S, T, N)
        (lambda: conv(), lambda d: d[:, :, 0],
         ["of shape (3, 10, 8)", "states have shape (8,)", "no channel axis",
          "data[:, :, None]"]),
    ],
    ids=["channels", "mlp_on_field", "no_channel_axis"],
)
def test_network_that_does_not_fit_the_data_is_named_before_training(
    data, network, trajectories, words
):
    trainer = SupervisedTrainer(trajectories(data), **COMMON)
    with pytest.raises(ValueError, match="`stepper` does not fit `data_trajectories`") as info:
        trainer(network(), KEY, spawn_tqdm=False)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert "conv_general_dilated" not in message.split("(", 1)[0]  # not a bare JAX error


def test_wrong_network_output_is_a_clear_error(data):
    trainer = SupervisedTrainer(data, **COMMON)
    wrong = eqx.nn.Conv1d(1, 2, 3, padding=1, key=KEY)
    with pytest.raises(ValueError, match="stepper"):
        trainer(wrong, KEY, spawn_tqdm=False)
