"""Tests of the flow-matching and distillation configurations and the time samplers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import ref_flow_matching, ref_progressive_distillation

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import (
    BetaTimeSampler,
    DyadicTimeSampler,
    FixedStepTimeSampler,
    FlowMatching,
    ProgressiveDistillation,
    SemigroupDistillation,
    UniformTimeSampler,
)

KEY = jax.random.key(0)


def mlp(num_channels=3, num_input_steps=1, seed=0, step_size_input=False):
    in_features = flow.velocity_input_channels(
        num_channels, num_input_steps, step_size_input=step_size_input
    )
    return eqx.nn.MLP(in_features, num_channels, 8, 2, key=jax.random.key(seed))


def velocity(seed=0, num_input_steps=1):
    return flow.ConditionalVelocity(mlp(3, num_input_steps, seed))


def ode_windows(batch=6, window=2, seed=1):
    return jax.random.normal(jax.random.key(seed), (batch, window, 3))


def field_windows(batch=4, window=2, seed=1):
    return jax.random.normal(jax.random.key(seed), (batch, window, 1, 8))


class ExactGaussianVelocity(eqx.Module):
    a: float
    s: float
    shift: float = 0.0

    def __call__(self, z):
        x, y, t = z[0], z[1], z[2]
        mean = self.a * y
        variance = t**2 * self.s**2 + (1 - t) ** 2
        v = mean + (t * self.s**2 - (1 - t)) * (x - t * mean) / variance
        return (v + self.shift)[None]


# --- every configuration: the shared contract ----------------------------------------


def all_configurations():
    """(name, configuration, trainable stepper) for every flow configuration."""
    teacher = velocity(seed=1)
    return [
        ("fm", FlowMatching(), velocity()),
        ("fm_stepper", FlowMatching(), flow.FlowMatchingStepper(velocity(), 2)),
        ("pd", ProgressiveDistillation(teacher), velocity()),
        (
            "pd_step_size_student",
            ProgressiveDistillation(teacher, num_fine_steps=3, teacher_method="heun"),
            flow.with_step_size_input(teacher),
        ),
        ("pd_flow_map_student", ProgressiveDistillation(teacher), flow.FlowMap(teacher)),
        ("sg", SemigroupDistillation(), flow.FlowMap(teacher)),
        (
            "sg_teacher_velocity_space",
            SemigroupDistillation(teacher=flow.FlowMap(teacher), velocity_space=True),
            flow.FlowMapStepper(flow.FlowMap(teacher), 2),
        ),
    ]


CONFIG_NAMES = [c[0] for c in all_configurations()]


def _get(name):
    return next(c for c in all_configurations() if c[0] == name)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_contract(name):
    _, configuration, stepper = _get(name)
    assert configuration.needs_key
    assert configuration.required_window_length == 2
    data = ode_windows()
    with pytest.raises(ValueError, match="random key"):
        configuration(stepper, data)
    loss_fn = eqx.filter_jit(lambda s, d, k: configuration(s, d, key=k))
    loss = loss_fn(stepper, data, KEY)
    assert loss.shape == () and np.isfinite(float(loss))
    # deterministic given the key, different for another key
    np.testing.assert_array_equal(loss, loss_fn(stepper, data, KEY))
    assert float(loss) != float(loss_fn(stepper, data, jax.random.key(1)))
    with pytest.raises(ValueError, match="snapshots"):
        configuration(stepper, data[:, :1], key=KEY)
    with pytest.raises(TypeError, match="one array"):
        configuration(stepper, (data, data), key=KEY)


@pytest.mark.parametrize("name", ["fm", "pd", "sg"])
def test_wrong_stepper_type_is_clear(name):
    _, configuration, _ = _get(name)
    with pytest.raises(TypeError, match="ConditionalVelocity|FlowMap"):
        configuration(mlp(3), ode_windows(), key=KEY)


def test_sg_rejects_plain_velocity():
    with pytest.raises(TypeError, match="FlowMap"):
        SemigroupDistillation()(velocity(), ode_windows(), key=KEY)


def test_positive_steps_required():
    with pytest.raises(ValueError, match="d > 0"):
        ProgressiveDistillation(velocity(), step_sampler=UniformTimeSampler())
    with pytest.raises(ValueError, match="d > 0"):
        SemigroupDistillation(step_sampler=UniformTimeSampler(0.0, 1.0))


# --- flow matching ------------------------------------------------------------------


@pytest.mark.parametrize("num_input_steps", [1, 2])
def test_fm_matches_reference(num_input_steps):
    v = velocity(num_input_steps=num_input_steps)
    data = ode_windows(window=num_input_steps + 1)
    loss = FlowMatching(num_input_steps=num_input_steps)(v, data, key=KEY)
    np.testing.assert_allclose(loss, ref_flow_matching(v, data, KEY, num_input_steps), rtol=1e-5)


def test_fm_on_fields_with_conv():
    net = eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR", key=KEY)
    v = flow.ConditionalVelocity(net)
    data = field_windows()
    loss = FlowMatching()(v, data, key=KEY)
    np.testing.assert_allclose(loss, ref_flow_matching(v, data, KEY), rtol=1e-5)


def test_fm_minimised_by_exact_velocity():
    a, s = 0.8, 0.5
    k1, k2 = jax.random.split(jax.random.key(5))
    y = jax.random.normal(k1, (20000, 1))
    x1 = a * y + s * jax.random.normal(k2, (20000, 1))
    data = jnp.stack([y, x1], axis=1)
    configuration = FlowMatching()

    def loss(shift, scale=1.0):
        exact = ExactGaussianVelocity(a * scale, s, shift)
        return float(configuration(flow.ConditionalVelocity(exact), data, key=KEY))

    best = loss(0.0)
    for shift in (-0.1, 0.1):
        assert best < loss(shift)
    for scale in (0.9, 1.1):
        assert best < loss(0.0, scale)


class TimeLoss(tx.loss.BaseLoss):
    """Returns the flow time it is given, to check that configurations pass it."""

    def single_batch(self, prediction, target=None):
        raise AssertionError("the flow configurations must pass `time=`")

    def single_batch_at_time(self, prediction, target, time):
        return time


def test_configurations_pass_time_to_loss():
    data = ode_windows()
    key_time = jax.random.split(KEY)[1]
    sampler = UniformTimeSampler(0.2, 0.2)
    loss = FlowMatching(time_level_loss=TimeLoss(), time_sampler=sampler)(
        velocity(), data, key=KEY
    )
    expected = sampler.sample(key_time, 6)[0].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    sampler = DyadicTimeSampler(3)
    for configuration, stepper in [
        (
            ProgressiveDistillation(
                velocity(), step_sampler=sampler, time_level_loss=TimeLoss()
            ),
            velocity(),
        ),
        (
            SemigroupDistillation(step_sampler=sampler, time_level_loss=TimeLoss()),
            flow.FlowMap(velocity()),
        ),
    ]:
        loss = configuration(stepper, data, key=KEY)
        np.testing.assert_allclose(loss, sampler.sample(key_time, 6)[0].mean(), rtol=1e-5)


def test_fm_with_time_dependent_sobolev_loss():
    loss_fn = tx.loss.SobolevLoss(alpha=lambda t: 1.0 + t, beta=lambda t: t**2)
    net = eqx.nn.Conv1d(3, 1, 3, padding=1, padding_mode="CIRCULAR", key=KEY)
    loss = FlowMatching(time_level_loss=loss_fn)(
        flow.ConditionalVelocity(net), field_windows(), key=KEY
    )
    assert np.isfinite(float(loss))


def test_fm_step_size_velocity_is_trained_at_zero_step():
    v = velocity()
    student = flow.with_step_size_input(v)
    data = ode_windows()
    np.testing.assert_allclose(
        FlowMatching()(student, data, key=KEY), FlowMatching()(v, data, key=KEY), rtol=1e-6
    )


# --- progressive distillation -------------------------------------------------------


def test_pd_student_equal_to_teacher_one_fine_step_has_zero_loss():
    teacher = velocity(seed=3)
    configuration = ProgressiveDistillation(teacher, num_fine_steps=1, teacher_method="heun",
                                            student_method="heun")
    assert float(configuration(teacher, ode_windows(), key=KEY)) == 0.0


def test_pd_matches_reference():
    teacher, student = velocity(seed=3), velocity(seed=4)
    data = ode_windows()
    sampler = UniformTimeSampler(0.1, 1.0)
    configuration = ProgressiveDistillation(
        teacher, num_fine_steps=2, teacher_method="midpoint", step_sampler=sampler
    )
    expected = ref_progressive_distillation(
        student, data, KEY, teacher=teacher, sampler=sampler, num_fine_steps=2
    )
    np.testing.assert_allclose(configuration(student, data, key=KEY), expected, rtol=1e-5)
    # velocity space: the same error divided by d^2
    vs = ProgressiveDistillation(teacher, teacher_method="midpoint", step_sampler=sampler,
                                 velocity_space=True)
    expected_vs = ref_progressive_distillation(
        student, data, KEY, teacher=teacher, sampler=sampler, num_fine_steps=2,
        velocity_space=True,
    )
    np.testing.assert_allclose(vs(student, data, key=KEY), expected_vs, rtol=1e-5)


def test_pd_no_gradient_reaches_teacher():
    data = ode_windows()

    def loss_of_teacher(teacher):
        configuration = ProgressiveDistillation(teacher, num_fine_steps=2)
        return configuration(velocity(seed=7), data, key=KEY)

    grads = eqx.filter_grad(loss_of_teacher)(velocity(seed=3))
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(float(jnp.abs(g).max()) == 0.0 for g in leaves)
    # ... while the student does get a gradient
    configuration = ProgressiveDistillation(velocity(seed=3))
    student_grads = eqx.filter_grad(lambda s: configuration(s, data, key=KEY))(velocity(seed=7))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(student_grads))


def test_pd_errors():
    step_velocity = flow.with_step_size_input(velocity())
    with pytest.raises(ValueError, match="euler"):
        ProgressiveDistillation(step_velocity, teacher_method="heun")
    with pytest.raises(ValueError, match="euler"):
        ProgressiveDistillation(velocity(), student_method="heun")(
            step_velocity, ode_windows(), key=KEY
        )
    with pytest.raises(TypeError, match="teacher"):
        ProgressiveDistillation(mlp(3))


# --- semigroup distillation ---------------------------------------------------------


def test_sg_gradient_equals_gradient_with_constant_target():
    flow_map = flow.FlowMap(velocity(seed=2))
    flow_map = eqx.tree_at(lambda m: m.correction.network.layers[-1].bias, flow_map,
                           replace_fn=lambda b: b + 0.3)
    data = ode_windows()
    configuration = SemigroupDistillation(step_sampler=UniformTimeSampler(0.05, 1.0))
    y, x1 = data[:, 0], data[:, 1]
    x0, t, d = configuration.draw(KEY, x1)
    x_t = t[:, None] * x1 + (1 - t[:, None]) * x0
    constant_target = configuration.target(flow_map, x_t, y, t, d)

    def with_constant(m):
        prediction = jax.vmap(m)(x_t, y, t, d)
        return jnp.mean(jnp.mean((prediction - constant_target) ** 2, axis=1))

    loss, grads = eqx.filter_value_and_grad(lambda m: configuration(m, data, key=KEY))(flow_map)
    ref_loss, ref_grads = eqx.filter_value_and_grad(with_constant)(flow_map)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    for g, r in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-8)
    # the target is two half map steps
    half = 0.5 * d
    middle = jax.vmap(flow_map)(x_t, y, t, half)
    np.testing.assert_allclose(
        constant_target, jax.vmap(flow_map)(middle, y, t + half, half), rtol=1e-6
    )


def test_sg_no_gradient_reaches_teacher():
    data = ode_windows()

    def loss_of_teacher(teacher):
        return SemigroupDistillation(teacher=teacher)(flow.FlowMap(velocity(1)), data, key=KEY)

    grads = eqx.filter_grad(loss_of_teacher)(flow.FlowMap(velocity(2)))
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads))


def test_sg_zero_loss_for_constant_velocity():
    # v = constant: one Euler step is the exact flow, so F_d composes exactly.
    linear = eqx.nn.Linear(7, 3, key=KEY)
    linear = eqx.tree_at(lambda lin: lin.weight, linear, jnp.zeros_like(linear.weight))
    flow_map = flow.FlowMap(flow.ConditionalVelocity(linear))
    loss = SemigroupDistillation()(flow_map, ode_windows(), key=KEY)
    assert float(loss) < 1e-12


def test_sg_with_ema_flow_map_uses_the_average_as_target():
    data = ode_windows()
    student = flow.FlowMap(velocity(1))
    ema = flow.FlowMap(velocity(1))
    ema = eqx.tree_at(lambda m: m.correction.network.layers[-1].bias, ema,
                      replace_fn=lambda b: b + 0.5)
    pair = flow.EMAFlowMap(student, decay=0.9, ema=ema)
    loss = SemigroupDistillation()(pair, data, key=KEY)
    np.testing.assert_allclose(
        loss, SemigroupDistillation(teacher=ema)(student, data, key=KEY), rtol=1e-6
    )
    grads = eqx.filter_grad(lambda p: SemigroupDistillation()(p, data, key=KEY))(pair)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads.ema))
    with pytest.raises(ValueError, match="EMA"):
        SemigroupDistillation(teacher=ema)(pair, data, key=KEY)


def test_sg_teacher_changes_target():
    data = ode_windows()
    student = flow.FlowMap(velocity(1))
    self_loss = SemigroupDistillation()(student, data, key=KEY)
    teacher_loss = SemigroupDistillation(teacher=flow.FlowMap(velocity(2)))(student, data, key=KEY)
    assert not np.isclose(float(self_loss), float(teacher_loss))


# --- time samplers ------------------------------------------------------------------


SAMPLERS = [
    UniformTimeSampler(),
    UniformTimeSampler(0.1, 0.5),
    BetaTimeSampler(3.0, 1.0, min_step=0.25, max_step=0.25),
    DyadicTimeSampler(4),
    DyadicTimeSampler(3, min_level=2),
    FixedStepTimeSampler(0.3),
    FixedStepTimeSampler(0.25, jitter=1.0),
]


@eqx.filter_jit
def draw(sampler, key, batch_size):
    return sampler.sample(key, batch_size)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: repr(s).replace("\n", ""))
def test_sampler_ranges(sampler):
    t, d = draw(sampler, KEY, 2000)
    assert t.shape == d.shape == (2000,)
    assert np.all(d >= 0) and np.all(d <= 1)
    assert np.all(t >= 0) and np.all(t <= 1 - d + 1e-6)
    with pytest.raises(ValueError, match="random key"):
        sampler.sample(None, 3)


def test_uniform_sampler_default_is_fm_time():
    t, d = draw(UniformTimeSampler(), KEY, 2000)
    assert np.all(d == 0)
    assert abs(float(t.mean()) - 0.5) < 0.02 and float(t.max()) > 0.98


def test_beta_sampler_mean():
    # t = (1 - d) * Beta(3, 1) with d = 0.25: mean 0.75 * 3/4
    t, d = draw(BetaTimeSampler(3.0, 1.0, min_step=0.25, max_step=0.25), KEY, 2000)
    np.testing.assert_array_equal(d, 0.25)
    assert abs(float(t.mean()) - 0.5625) < 0.02


def test_dyadic_sampler_grid():
    t, d = draw(DyadicTimeSampler(4, min_level=1), KEY, 2000)
    levels = -np.log2(np.asarray(d))
    np.testing.assert_allclose(levels, np.round(levels))
    assert set(np.round(levels).astype(int)) == {1, 2, 3, 4}
    multiples = np.asarray(t / d)
    np.testing.assert_allclose(multiples, np.round(multiples), atol=1e-5)


def test_fixed_step_sampler_grid_and_jitter():
    t, d = draw(FixedStepTimeSampler(0.25), KEY, 2000)
    np.testing.assert_array_equal(d, 0.25)
    assert set(np.round(np.asarray(t), 6)) == {0.0, 0.25, 0.5, 0.75}
    t, _ = draw(FixedStepTimeSampler(0.25, jitter=0.5), KEY, 2000)
    assert len(set(np.round(np.asarray(t), 6))) > 10
    assert FixedStepTimeSampler(0.3).num_grid_points == 3


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="min_step"):
        UniformTimeSampler(0.5, 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        UniformTimeSampler(0.0, 1.5)
    with pytest.raises(ValueError, match="> 0"):
        BetaTimeSampler(0.0, 1.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        FixedStepTimeSampler(0.0)
    with pytest.raises(ValueError, match="min_level"):
        DyadicTimeSampler(2, min_level=3)
    with pytest.raises(TypeError, match="sampler"):
        FlowMatching(time_sampler="uniform")


def test_history_mismatch_is_clear():
    stepper = flow.FlowMatchingStepper(velocity(num_input_steps=2), 2, num_input_steps=2)
    with pytest.raises(ValueError, match="num_input_steps"):
        FlowMatching()(stepper, ode_windows(window=3), key=KEY)
