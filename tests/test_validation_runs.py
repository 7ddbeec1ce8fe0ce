"""Validation during training: values, best model, early stopping, resume, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def data():
    x = jnp.linspace(0, 2 * jnp.pi, 16, endpoint=False)
    shifts = jnp.arange(8)[:, None, None, None] * 0.4
    times = jnp.arange(10)[None, :, None, None] * 0.3
    trajectories = jnp.sin(x[None, None, None, :] - times - shifts)
    return trajectories[:5], trajectories[5:]


def conv(key=KEY):
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=key)


def trainer(train, validation, **options):
    settings = dict(
        optimizer=optax.adam(1e-2), num_training_steps=40, batch_size=8,
        num_rollout_steps=2, validation_data=validation, validate_every=10,
        validation_metrics=("loss", "nrmse@1", "nrmse@3"),
    )
    return tx.trainer.SupervisedTrainer(train, **{**settings, **options})


def hand_loss(stepper, validation):
    """Supervised rollout of 2 steps, MSE per step averaged, mean over all windows."""
    losses = []
    for trajectory in np.asarray(validation):
        for start in range(trajectory.shape[0] - 2):
            state = trajectory[start]
            window_loss = 0.0
            for t in (1, 2):
                state = stepper(state)
                window_loss += np.mean((np.asarray(state) - trajectory[start + t]) ** 2)
            losses.append(window_loss)
    return np.mean(losses)


def hand_nrmse(stepper, validation, horizon):
    values = []
    for trajectory in np.asarray(validation):
        state = trajectory[0]
        for _ in range(horizon):
            state = stepper(state)
        error = np.linalg.norm(np.asarray(state) - trajectory[horizon])
        values.append(error / np.linalg.norm(trajectory[horizon]))
    return np.mean(values)


def test_values_equal_a_hand_computation(data):
    train, validation = data
    result = trainer(train, validation).train(conv(), KEY, spawn_tqdm=False)
    history = result.validation
    np.testing.assert_array_equal(history.steps, [10, 20, 30, 40])
    final = {name: float(values[-1]) for name, values in history.values.items()}
    assert final["loss"] == pytest.approx(hand_loss(result.stepper, validation), rel=1e-5)
    for horizon in (1, 3):
        expected = hand_nrmse(result.stepper, validation, horizon)
        assert final[f"nrmse@{horizon}"] == pytest.approx(expected, rel=1e-5)
    # An earlier validation used the stepper of its step.
    partial = trainer(train, validation).train(conv(), KEY, spawn_tqdm=False, num_steps=20)
    assert float(history.values["loss"][1]) == pytest.approx(
        hand_loss(partial.stepper, validation), rel=1e-5
    )


def test_best_model_is_the_stepper_at_the_best_step(data, tmp_path):
    train, validation = data
    best_path = tmp_path / "best.eqx"
    result = trainer(
        train, validation, num_training_steps=60, monitor="nrmse@3", best_path=best_path
    ).train(conv(), KEY, spawn_tqdm=False)
    history = result.validation
    values = np.asarray(history.values["nrmse@3"])
    best_index = int(np.argmin(values))
    assert int(history.best_step) == int(history.steps[best_index])
    assert float(history.best_value) == values[best_index]
    at_best = trainer(train, validation, num_training_steps=60).train(
        conv(), KEY, spawn_tqdm=False, num_steps=int(history.best_step)
    )
    for got, want in zip(jax.tree_util.tree_leaves(result.best_stepper),
                         jax.tree_util.tree_leaves(at_best.stepper)):
        np.testing.assert_array_equal(got, want)
    saved = tx.load_stepper(best_path, conv())
    for got, want in zip(jax.tree_util.tree_leaves(saved),
                         jax.tree_util.tree_leaves(result.best_stepper)):
        np.testing.assert_array_equal(got, want)


def scripted_metric(values):
    """A metric that reports `values` one validation after the other, then 1.0."""
    calls = iter(values)

    def score(stepper, data):
        return {"score": next(calls, 1.0)}

    return score


SCORES = [5.0, 4.0, 4.5, 3.9, 3.86, 3.87, 3.0, 1.0]


@pytest.mark.parametrize(
    "patience, stop_step, best_step",
    # min_delta 0.05: improvements at validations 1, 2, 4, 7 and 8 (steps 5, 10, 20,
    # 35, 40); 4.5, 3.86 and 3.87 are not better than the best by more than 0.05.
    # Patience 2 runs out at validation 6 (two without improvement after step 20);
    # patience 3 survives it and runs out at validation 11 (after step 40).
    [(2, 30, 20), (3, 55, 40)],
)
def test_early_stopping_follows_the_patience_rule(data, patience, stop_step, best_step):
    train, validation = data
    result = trainer(
        train, validation, num_training_steps=200, validate_every=5,
        validation_metrics=(scripted_metric(SCORES),), patience=patience, min_delta=0.05,
    ).train(conv(), KEY, spawn_tqdm=False)
    assert result.train_state.step == stop_step
    np.testing.assert_array_equal(result.validation.steps, np.arange(5, stop_step + 1, 5))
    assert int(result.validation.best_step) == best_step
    assert int(result.validation.since_improvement) == patience
    assert result.stop_reason.startswith("early stopping")
    assert result.loss_history.shape == (stop_step,)


@pytest.mark.parametrize("interrupt_at", [17, 20, 70])
def test_resume_reproduces_validation_best_model_and_stop(data, tmp_path, interrupt_at):
    train, validation = data
    options = dict(num_training_steps=100, patience=2, min_delta=0.05, monitor="nrmse@3")
    full = trainer(train, validation, **options).train(conv(), KEY, spawn_tqdm=False)
    assert full.train_state.step == 80  # the rule stops this run early

    path = tmp_path / "state.eqx"
    first = trainer(train, validation, **options)
    first.train(conv(), KEY, spawn_tqdm=False, num_steps=interrupt_at, checkpoint_path=path)
    tx.clear_caches()
    state = tx.load_train_state(path, conv(), optax.adam(1e-2))
    resumed = trainer(train, validation, **options).train(
        resume_from=state, spawn_tqdm=False
    )
    assert resumed.stop_reason == full.stop_reason
    assert resumed.train_state.step == full.train_state.step
    for got, want in zip(
        jax.tree_util.tree_leaves((resumed.validation, resumed.stepper)),
        jax.tree_util.tree_leaves((full.validation, full.stepper)),
    ):
        np.testing.assert_array_equal(got, want)
    # Resuming a run that stopped early stops at once.
    again = trainer(train, validation, **options).train(
        resume_from=resumed.train_state, spawn_tqdm=False
    )
    assert again.train_state.step == resumed.train_state.step
    assert again.stop_reason == resumed.stop_reason


def test_seeds_keep_their_own_best(data):
    train, validation = data
    result = trainer(train, validation).train_seeds(conv, KEY, 2, spawn_tqdm=False)
    history = result.validation
    assert history.values["loss"].shape == (2, 4)
    for seed in range(2):
        values = np.asarray(history.values["loss"][seed])
        assert int(history.best_step[seed]) == int(history.steps[np.argmin(values)])
        for got, want in zip(
            jax.tree_util.tree_leaves(history.best_stepper),
            jax.tree_util.tree_leaves(result.stepper),
        ):
            if int(history.best_step[seed]) == 40:
                np.testing.assert_array_equal(got[seed], want[seed])


def test_stochastic_flow_stepper_is_validated_with_keys(data):
    train, validation = data
    velocity = tx.flow.ConditionalVelocity(eqx.nn.Conv1d(3, 1, 3, padding=1, key=KEY))
    stepper = tx.flow.FlowMatchingStepper(velocity, num_steps=2)
    result = tx.trainer.FlowMatchingTrainer(
        train, optimizer=optax.adam(1e-3), num_training_steps=10, batch_size=8,
        validation_data=validation, validate_every=5, validation_metrics=("loss", "nrmse@2"),
    ).train(stepper, KEY, spawn_tqdm=False)
    assert result.validation.values["nrmse@2"].shape == (2,)
    assert np.all(np.isfinite(result.validation.values["loss"]))


def test_no_validation_means_no_best_stepper(data):
    train, _ = data
    result = tx.trainer.SupervisedTrainer(
        train, optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=4
    ).train(conv(), KEY, spawn_tqdm=False)
    assert result.validation is None
    with pytest.raises(ValueError, match="validation_data"):
        result.best_stepper


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(validation_data=jnp.zeros((2, 10, 2, 16))), r"\(C, \*spatial\) = \(1, 16\)"),
        (dict(validation_data=jnp.zeros((2, 2, 1, 16))), "validation_data` trajectories have 2"),
        (dict(monitor="nrmse@5"), "`monitor='nrmse@5'` is not a validation metric"),
        (dict(validation_metrics=("loss", "rmse")), "unknown validation metric 'rmse'"),
        (dict(validation_data=None, validate_every=10), "needs held-out trajectories"),
        (dict(patience=0), "`patience` must be an integer >= 1"),
        (dict(monitor_mode="lowest"), "`monitor_mode` must be 'min' or 'max'"),
        (dict(min_delta=-1.0), "`min_delta` must be a number >= 0"),
    ],
)
def test_bad_validation_input_fails_at_construction(data, options, match):
    train, validation = data
    with pytest.raises((ValueError, TypeError), match=match):
        trainer(train, validation, **options)


def test_a_user_metric_must_return_scalars(data):
    train, validation = data
    bad = trainer(train, validation, validation_metrics=(lambda s, d: {"x": jnp.ones(3)},))
    with pytest.raises(ValueError, match="must be a scalar"):
        bad.train(conv(), KEY, spawn_tqdm=False)
