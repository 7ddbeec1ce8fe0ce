"""End-to-end tests of the flow-matching and distillation trainers (tiny and fast)."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import (
    FixedStepTimeSampler,
    FlowMatching,
    SemigroupDistillation,
)

KEY = jax.random.key(0)


def mlp(num_channels=3, num_input_steps=1, seed=0, width=16):
    in_features = flow.velocity_input_channels(num_channels, num_input_steps)
    return eqx.nn.MLP(
        in_features, num_channels, width, 2, activation=jax.nn.silu, key=jax.random.key(seed)
    )


def arrays(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


@pytest.fixture(scope="module")
def lorenz():
    return tx.sample_data.lorenz_rk4(
        num_samples=4, temporal_horizon=12, num_warmup_steps=20, key=jax.random.key(1)
    ) / 10.0


@pytest.fixture(scope="module")
def advection():
    return tx.sample_data.advection_1d_periodic(
        num_points=16, num_samples=3, temporal_horizon=6, key=jax.random.key(2)
    )


@pytest.fixture(scope="module")
def gaussian():
    """Two-snapshot trajectories: y ~ N(0, 1), x1 | y ~ N(a y, s^2)."""
    a, s = 0.8, 0.5
    k1, k2 = jax.random.split(jax.random.key(3))
    y = jax.random.normal(k1, (512, 1))
    x1 = a * y + s * jax.random.normal(k2, (512, 1))
    return jnp.stack([y, x1], axis=1), a, s


class ExactGaussianVelocity(eqx.Module):
    a: float
    s: float

    def __call__(self, z):
        x, y, t = z[0], z[1], z[2]
        mean = self.a * y
        variance = t**2 * self.s**2 + (1 - t) ** 2
        return (mean + (t * self.s**2 - (1 - t)) * (x - t * mean) / variance)[None]


# --- flow matching ------------------------------------------------------------------


def test_fm_trainer_lorenz_mlp_with_history(lorenz):
    velocity = flow.ConditionalVelocity(mlp(3, num_input_steps=2))
    stepper = flow.FlowMatchingStepper(velocity, 2, "heun", num_input_steps=2)
    trainer = tx.trainer.FlowMatchingTrainer(
        lorenz, optimizer=optax.adam(1e-3), num_training_steps=20, batch_size=8,
        num_input_steps=2, steps_per_dispatch=1,
    )
    assert isinstance(trainer, tx.GeneralTrainer)
    assert trainer.trajectory_sub_stacker.window_length == 3
    trained, losses = trainer(stepper, KEY, spawn_tqdm=False)
    assert isinstance(trained, flow.FlowMatchingStepper) and trained.num_steps == 2
    assert losses.shape == (20,) and np.all(np.isfinite(losses))
    trajectory = tx.rollout(trained, lorenz[0, :2], 5, key=KEY, num_input_steps=2)
    assert trajectory.shape == (5, 3) and np.all(np.isfinite(trajectory))


def test_fm_trainer_conv_1d(advection):
    network = eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR", key=KEY)
    trainer = tx.trainer.FlowMatchingTrainer(
        advection, optimizer=optax.adam(1e-2), num_training_steps=60, batch_size=6,
        steps_per_dispatch=1,
        time_level_loss=tx.loss.SobolevLoss(alpha=1.0, beta=lambda t: 0.1 * t),
    )
    trained, losses = trainer(flow.ConditionalVelocity(network), KEY, spawn_tqdm=False)
    assert np.all(np.isfinite(losses))
    assert losses[-10:].mean() < losses[:10].mean()
    stepper = flow.FlowMatchingStepper(trained, 2)
    assert tx.rollout(stepper, advection[0, 0], 3, key=KEY).shape == (3, 1, 16)


def test_fm_trainer_approaches_exact_velocity(gaussian):
    data, a, s = gaussian
    stepper = flow.FlowMatchingStepper(flow.ConditionalVelocity(mlp(1, width=32)), 10, "heun")
    trainer = tx.trainer.FlowMatchingTrainer(
        data, optimizer=optax.adam(3e-3), num_training_steps=500, batch_size=128,
        steps_per_dispatch=250,
    )
    trained, losses = trainer(stepper, KEY, spawn_tqdm=False)
    assert losses[-50:].mean() < 0.6 * losses[:10].mean()
    # the FM loss of the trained velocity is close to that of the exact velocity
    key = jax.random.key(11)
    exact = flow.ConditionalVelocity(ExactGaussianVelocity(a, s))
    configuration = FlowMatching()
    exact_loss = float(configuration(exact, data, key=key))
    trained_loss = float(configuration(trained, data, key=key))
    assert trained_loss < 1.1 * exact_loss
    # and its samples match the conditional law
    y = jnp.ones((2000, 1))
    samples = jax.jit(jax.vmap(lambda yi, k: trained(yi, key=k)))(y, jax.random.split(key, 2000))
    assert abs(float(samples.mean()) - a) < 0.1
    assert abs(float(samples.std()) - s) < 0.1


# --- semigroup distillation ---------------------------------------------------------


def test_sg_trainer_trains_only_the_correction(lorenz):
    flow_map = flow.FlowMap(flow.ConditionalVelocity(mlp(3, seed=4)))
    trainer = tx.trainer.SemigroupDistillationTrainer(
        lorenz, optimizer=optax.adamw(3e-3, weight_decay=0.1), num_training_steps=60,
        batch_size=16, velocity_space=True, steps_per_dispatch=1,
    )
    trained, losses = trainer(flow.FlowMapStepper(flow_map, 2), KEY, spawn_tqdm=False)
    assert isinstance(trained, flow.FlowMapStepper) and np.all(np.isfinite(losses))
    for before, after in zip(arrays(flow_map.velocity), arrays(trained.flow_map.velocity)):
        np.testing.assert_array_equal(before, after)
    # the semigroup defect decreases (measured with fixed random draws)
    configuration = SemigroupDistillation(velocity_space=True)
    windows = jnp.concatenate([lorenz[:, :2], lorenz[:, 5:7]])
    defect = eqx.filter_jit(lambda m: configuration(m, windows, key=jax.random.key(5)))
    assert float(defect(trained.flow_map)) < float(defect(flow_map))
    assert np.all(np.isfinite(tx.rollout(trained, lorenz[0, 0], 3, key=KEY)))


def test_sg_trainer_with_ema(lorenz):
    flow_map = flow.FlowMap(flow.ConditionalVelocity(mlp(3, seed=4)))
    pair = flow.EMAFlowMap(flow_map, decay=0.5)
    trainer = tx.trainer.SemigroupDistillationTrainer(
        lorenz, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=16,
        steps_per_dispatch=1,
    )
    trained, losses = trainer(pair, KEY, spawn_tqdm=False)
    assert isinstance(trained, flow.EMAFlowMap) and np.all(np.isfinite(losses))
    online, ema, start = (arrays(m.correction) for m in (trained.flow_map, trained.ema, flow_map))
    assert all(not np.array_equal(e, s) for e, s in zip(ema, start))
    assert all(not np.array_equal(e, o) for e, o in zip(ema, online))
    for tree in (trained.flow_map.velocity, trained.ema.velocity):
        for a, b in zip(arrays(flow_map.velocity), arrays(tree)):
            np.testing.assert_array_equal(a, b)


# --- progressive distillation -------------------------------------------------------


def test_pd_trainer_multistage(lorenz, tmp_path):
    teacher = flow.ConditionalVelocity(mlp(3, seed=6))
    student = flow.FlowMatchingStepper(flow.with_step_size_input(teacher), 4)
    trainer = tx.trainer.ProgressiveDistillationTrainer(
        lorenz, teacher=teacher, optimizer=optax.adam(3e-3), num_training_steps=40,
        batch_size=16, num_teacher_steps=4, num_stages=2, teacher_method="midpoint",
        checkpoint_path=tmp_path, steps_per_dispatch=1,
    )
    assert [trainer.student_num_steps(s) for s in range(2)] == [2, 1]
    results = trainer.train(student, KEY, spawn_tqdm=False)
    assert len(results) == 2
    assert [r.stepper.num_steps for r in results] == [2, 1]
    # one student file per stage (student only), and the resumable train state
    files = sorted(os.listdir(tmp_path))
    assert files == ["student_stage_0.eqx", "student_stage_1.eqx", "train_state.eqx"]
    loaded = eqx.tree_deserialise_leaves(tmp_path / "student_stage_1.eqx", student)
    for a, b in zip(arrays(loaded), arrays(results[-1].stepper)):
        np.testing.assert_array_equal(a, b)
    # the teacher is untouched and every stage lowered its own loss
    for a, b in zip(arrays(trainer.teacher), arrays(teacher)):
        np.testing.assert_array_equal(a, b)
    windows = lorenz[:, :2]
    stage_teachers = [teacher, results[0].stepper.velocity]
    stage_students = [student, results[0].stepper]
    for stage in range(2):
        configuration = trainer.stage_configuration(stage, stage_teachers[stage])
        key = jax.random.key(stage)
        before = float(configuration(stage_students[stage], windows, key=key))
        after = float(configuration(results[stage].stepper, windows, key=key))
        assert after < before
    assert [r.loss_history.shape for r in results] == [(40,), (40,)]


# The default run interrupts in stage 1 (after a stage change, the most state to
# restore); `-m slow` also interrupts in stage 0 and at its end.
@pytest.mark.parametrize(
    "interrupt_at",
    [pytest.param(25, marks=pytest.mark.slow), pytest.param(40, marks=pytest.mark.slow), 55],
)
def test_pd_trainer_resumes_mid_stage_exactly(lorenz, tmp_path, interrupt_at):
    """A run interrupted in stage 0, at its end or in stage 1 resumes bit-identically."""
    teacher = flow.ConditionalVelocity(mlp(3, seed=6))
    student = flow.FlowMatchingStepper(flow.with_step_size_input(teacher), 4)

    def make(path, **options):
        return tx.trainer.ProgressiveDistillationTrainer(
            lorenz, teacher=teacher, optimizer=optax.adam(3e-3), num_training_steps=40,
            batch_size=16, num_teacher_steps=4, num_stages=2, checkpoint_path=path,
            **options,
        )

    full = make(tmp_path / "full").train(student, KEY, spawn_tqdm=False)

    class Interrupt(tx.hook.AbstractHook):
        def after_updates(self, loop, chunk):
            if loop.stage * 40 + loop.step >= interrupt_at:
                raise KeyboardInterrupt

    trainer = make(tmp_path / "cut", checkpoint_every=5)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(student, KEY, spawn_tqdm=False, hooks=[Interrupt()])
    state = tx.load_train_state(trainer.train_state_file(), student, trainer.stage_optimizer())
    # the interrupt came before the checkpoint of its own step
    assert state.stage * 40 + state.step == 5 * ((interrupt_at - 1) // 5)
    resumed = trainer.train(resume_from=state, spawn_tqdm=False)
    assert resumed[-1].stepper.num_steps == full[-1].stepper.num_steps == 1
    for a, b in zip(arrays(resumed[-1].stepper), arrays(full[-1].stepper)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        resumed[-1].train_state.loss_history, full[-1].train_state.loss_history
    )


def test_pd_trainer_cosine_cycle_per_stage(lorenz):
    trainer = tx.trainer.ProgressiveDistillationTrainer(
        lorenz, teacher=flow.ConditionalVelocity(mlp(3)), optimizer=optax.sgd(1.0),
        num_training_steps=10, batch_size=4, num_teacher_steps=2,
    )
    optimizer = trainer.stage_optimizer()
    params = {"w": jnp.zeros(())}
    state = optimizer.init(params)
    sizes = []
    for _ in range(10):
        updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
        sizes.append(-float(updates["w"]))
    expected = [0.5 * (1 + np.cos(np.pi * k / 10)) for k in range(10)]
    np.testing.assert_allclose(sizes, expected, rtol=1e-5, atol=1e-7)


def test_pd_trainer_flow_map_student_and_sampler(lorenz):
    teacher = flow.ConditionalVelocity(mlp(3, seed=6))
    trainer = tx.trainer.ProgressiveDistillationTrainer(
        lorenz, teacher=teacher, optimizer=optax.adam(1e-3), num_training_steps=3,
        batch_size=4, num_teacher_steps=2, step_sampler=FixedStepTimeSampler(0.5, 0.5),
        steps_per_dispatch=1,
    )
    student = flow.FlowMapStepper(flow.FlowMap(teacher), 2)
    trained, losses = trainer(student, KEY, spawn_tqdm=False, record_loss_every=2)
    assert trained.num_steps == 1 and losses.shape == (2,) and np.all(np.isfinite(losses))
    for a, b in zip(arrays(teacher), arrays(trained.flow_map.velocity)):
        np.testing.assert_array_equal(a, b)


def test_pd_trainer_errors(lorenz):
    teacher = flow.ConditionalVelocity(mlp(3))
    with pytest.raises(ValueError, match="divisible"):
        tx.trainer.ProgressiveDistillationTrainer(
            lorenz, teacher=teacher, optimizer=optax.adam(1e-3), num_training_steps=1,
            batch_size=4, num_teacher_steps=6, num_stages=2,
        )
    with pytest.raises(TypeError, match="teacher"):
        tx.trainer.ProgressiveDistillationTrainer(
            lorenz, teacher=mlp(3), optimizer=optax.adam(1e-3), num_training_steps=1,
            batch_size=4, num_teacher_steps=2,
        )
