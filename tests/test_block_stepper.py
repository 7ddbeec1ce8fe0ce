"""Multi-step outputs: a `BlockStepper` predicts `k` states per call."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import apply_each, conv_stepper, mse, random_windows

import trainax_fm as tx

K, R, S = 3, 2, 2


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("include_init", [False, True])
def test_block_rollout_equals_chained_single_steps(batched, include_init):
    stepper = conv_stepper(0)
    block = tx.BlockStepper.from_one_step(stepper, K)
    ic = random_windows(1, 1, batch=S)[:, 0]
    ic = ic if batched else ic[0]
    options = {"batched": batched, "include_init": include_init}
    blocks = tx.rollout(block, ic, 4, **options)
    singles = tx.rollout(stepper, ic, 4 * K, **options)
    assert blocks.shape == singles.shape
    np.testing.assert_allclose(blocks, singles, rtol=1e-6, atol=1e-6)


def test_block_rollout_with_history_uses_the_latest_states():
    """A network over the latest 2 states: the rollout feeds it the last 2 states of
    each block, starting from the given history."""
    network = conv_stepper(2, in_channels=2, out_channels=K)
    block = tx.BlockStepper(network, K, num_input_steps=2)
    history = random_windows(3, 2)[0]  # (2, 1, N)
    trajectory = tx.rollout(block, history, 2, num_input_steps=2)
    first = network(history.reshape(2, -1))
    np.testing.assert_allclose(trajectory[:K, 0], first, rtol=1e-6)
    second = network(first[-2:])
    np.testing.assert_allclose(trajectory[K:, 0], second, rtol=1e-5, atol=1e-6)


def _reference(stepper, data, use_truth: bool):
    """Blocks of K states after the first block, compared block by block: the block
    loss is the mean of its K per-state MSEs."""
    state = data[:, K - 1]
    total = 0.0
    for b in range(R):
        if use_truth:
            state = data[:, (b + 1) * K - 1]
        errors = []
        for i in range(K):
            state = apply_each(stepper, state)
            errors.append(mse(state, data[:, (b + 1) * K + i]))
        total = total + sum(errors) / K
    return total


@pytest.mark.parametrize(
    "trainer_cls, extra, use_truth",
    [
        (tx.trainer.SupervisedTrainer, {}, False),
        (tx.trainer.TeacherForcingTrainer, {"teacher_forcing_probability": 1.0}, True),
    ],
)
def test_block_training_loss_matches_reference(trainer_cls, extra, use_truth):
    stepper = conv_stepper(4)
    data = random_windows(5, (R + 1) * K + 2, batch=S)
    trainer = trainer_cls(
        data,
        optimizer=optax.adam(1e-2),
        num_training_steps=2,
        batch_size=S,
        num_rollout_steps=R,
        num_output_steps=K,
        do_sub_stacking=False,
        **extra,
    )
    assert trainer.trajectory_sub_stacker.window_length == R + 1
    block = tx.BlockStepper.from_one_step(stepper, K)
    np.testing.assert_allclose(
        trainer.full_loss(block), _reference(stepper, data, use_truth), rtol=1e-5
    )


def test_learned_block_stepper_trains_and_rolls_out(key):
    data = random_windows(6, 12, batch=S)
    trainer = tx.trainer.TeacherForcingTrainer(
        data,
        optimizer=optax.adam(1e-2),
        num_training_steps=5,
        batch_size=3,
        num_rollout_steps=2,
        teacher_forcing_probability=0.5,
        num_output_steps=K,
    )
    # Windows start at every snapshot: 12 - 3 * 3 + 1 per trajectory.
    assert trainer.trajectory_sub_stacker.num_total_samples == S * 4
    block = tx.BlockStepper(conv_stepper(7, out_channels=K), K)
    result = trainer.train(block, key, spawn_tqdm=False)
    assert np.all(np.isfinite(result.loss_history))
    assert result.loss_history[-1] < result.loss_history[0]
    trajectory = tx.rollout(result.stepper, data[:, 0], 3, batched=True)
    assert trajectory.shape == (S, 3 * K, 1, data.shape[-1])


def test_windows_as_blocks():
    data = random_windows(8, 7, batch=1)
    stacker = tx.TrajectorySubStacker(data, 6, num_output_steps=3)
    windows = stacker(jnp.arange(stacker.num_total_samples))
    assert windows.shape == (2, 2, 3, data.shape[-1])
    np.testing.assert_array_equal(windows[1, 1], data[0, 4:7, 0])


def test_block_errors():
    with pytest.raises(ValueError, match="must not exceed"):
        tx.BlockStepper(conv_stepper(0), 2, num_input_steps=3)
    with pytest.raises(ValueError, match="multiple of `num_output_steps`"):
        tx.TrajectorySubStacker(random_windows(0, 7, batch=1), 5, num_output_steps=2)
    block = tx.BlockStepper.from_one_step(conv_stepper(0), 2)
    with pytest.raises(ValueError, match="num_input_steps=1"):
        tx.rollout(block, jnp.zeros((2, 1, 8)), 2, num_input_steps=2)
    with pytest.raises(ValueError, match="blocks of 2\\*C channels"):
        block(jnp.zeros((3, 8)))
    with pytest.raises(ValueError, match="num_output_steps"):
        tx.trainer.SupervisedTrainer(
            random_windows(0, 7, batch=1), optimizer=optax.adam(1e-2),
            num_training_steps=1, batch_size=1, num_output_steps=0,
        )



def test_validation_of_a_block_stepper(key):
    """Validation windows are cut into blocks like the training ones, and 'nrmse@K'
    counts single states."""
    train, held_out = random_windows(9, 10, batch=S), random_windows(10, 10, batch=S)
    settings = dict(optimizer=optax.sgd(0.0), batch_size=2, num_rollout_steps=R,
                    num_output_steps=K)
    trainer = tx.trainer.SupervisedTrainer(
        train, num_training_steps=2, validation_data=held_out, validate_every=2,
        validation_metrics=("loss", "nrmse@4"), **settings,
    )
    stepper = conv_stepper(11)
    block = tx.BlockStepper.from_one_step(stepper, K)
    result = trainer.train(block, key, spawn_tqdm=False)
    final = {name: float(values[-1]) for name, values in result.validation.values.items()}
    reference = tx.trainer.SupervisedTrainer(held_out, num_training_steps=1, **settings)
    assert final["loss"] == pytest.approx(float(reference.full_loss(block)), rel=1e-5)
    prediction = tx.rollout(stepper, held_out[:, 0], 4, batched=True)
    nrmse = tx.metrics.nrmse(prediction, held_out[:, 1:5], batched=True)
    assert final["nrmse@4"] == pytest.approx(float(nrmse[3]), rel=1e-5)
    with pytest.raises(ValueError, match="rolls out a trainax_fm.BlockStepper"):
        trainer.train(conv_stepper(0, in_channels=K, out_channels=K), key, spawn_tqdm=False)


@pytest.mark.parametrize("num_input_steps", [2, 3])
@pytest.mark.parametrize("batched", [False, True])
def test_block_rollout_with_several_history_blocks_slides_the_context(
    num_input_steps, batched
):
    """`num_input_blocks=2`: the network sees the latest `k + num_input_steps` states;
    each call's block enters the context and the oldest `k` states leave it."""
    num_states = K + num_input_steps
    weights = np.random.default_rng(0).normal(size=(K * 2, num_states * 2)) * 0.3

    def network(x):
        return (jnp.asarray(weights, x.dtype) @ x.reshape(-1)).reshape(K * 2)

    block = tx.BlockStepper(network, K, num_input_steps=num_input_steps, num_input_blocks=2)
    assert block.num_context_steps == num_states
    sliding = tx.BlockStepper.sliding(network, K, num_states)
    assert (sliding.num_input_steps, sliding.num_input_blocks) == (num_input_steps, 2)
    rng = np.random.default_rng(1)
    ics = rng.normal(size=(2, num_states, 2)).astype(np.float32)
    ic = ics if batched else ics[0]
    out = tx.rollout(block, ic, 3, num_input_steps=num_states, batched=batched)
    for b in range(2 if batched else 1):
        context = list(ics[b])
        expected = []
        for _ in range(3):
            new = (weights @ np.concatenate(context[-num_states:])).reshape(K, 2)
            expected.extend(new)
            context.extend(new)
        got = out[b] if batched else out
        np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-5)
    # As trainers call it: a history of 2 blocks, (2*K*C,).
    history = jnp.asarray(rng.normal(size=(2 * K * 2,)), jnp.float32)
    np.testing.assert_allclose(
        block(history), network(history[(K - num_input_steps) * 2 :]), rtol=1e-6
    )
    with pytest.raises(ValueError, match=f"num_input_steps={num_states}"):
        tx.rollout(block, ic, 2, num_input_steps=K, batched=batched)
    with pytest.raises(ValueError, match="histories of 2 blocks"):
        block(jnp.zeros((K * 2 + 2,)))


def test_validation_of_a_block_stepper_over_a_sliding_context(key):
    """Trained on histories of 2 blocks, validated by a rollout from the first
    `num_context_steps` states of each held-out trajectory."""
    num_channels = 2
    context = 2 * K
    weights = np.random.default_rng(2).normal(size=(K * num_channels, context * num_channels))

    class Linear(eqx.Module):
        weight: jax.Array

        def __call__(self, x):
            return self.weight @ x

    stepper = tx.BlockStepper.sliding(Linear(jnp.asarray(weights * 0.1, jnp.float32)), K, context)
    rng = np.random.default_rng(3)
    train = jnp.asarray(rng.normal(size=(S, 12, num_channels)), jnp.float32)
    held_out = jnp.asarray(rng.normal(size=(S, 12, num_channels)), jnp.float32)
    trainer = tx.trainer.SupervisedTrainer(
        train, optimizer=optax.sgd(0.0), num_training_steps=2, batch_size=2,
        num_input_steps=2, num_output_steps=K, validation_data=held_out,
        validate_every=2, validation_metrics=("loss", "nrmse@5"),
    )
    result = trainer.train(stepper, key, spawn_tqdm=False)
    final = {name: float(values[-1]) for name, values in result.validation.values.items()}
    prediction = tx.rollout(stepper, held_out[:, :context], 2, num_input_steps=context,
                            batched=True)
    nrmse = tx.metrics.nrmse(prediction[:, :5], held_out[:, context : context + 5],
                             batched=True)
    assert final["nrmse@5"] == pytest.approx(float(nrmse[4]), rel=1e-5)
