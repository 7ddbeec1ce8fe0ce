"""Few-step flow maps: Lagrangian self-distillation, MeanFlow and shortcut models.

The registry (`tests/registry.py`) checks every configuration's loss and gradient
against a hand-written reference and runs the trainer contracts. Here: the exact
average velocity of flows known in closed form gives zero loss and a perturbed one
does not; no gradient reaches a target (stop-gradient placement, teacher, EMA); the
samplers spend exactly the stated network evaluations at the stated times; the time
pair sampler; the EMA update; error paths.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from registry import average_velocity_mlp, ema_velocity, ode_windows, velocity_mlp

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm.configuration import (
    LagrangianSelfDistillation,
    MeanFlow,
    ShortcutModel,
    TimePairSampler,
)

C = 3  # channels of the ODE states


class StraightAverageVelocity(eqx.Module):
    """The exact average velocity of data `x1 = gain * y` (a deterministic next state).

    Every noise sample then moves on a straight line to `gain * y`, so the velocity
    `v(x, t) = (gain y - x) / (1 - t)` (linear in `x`) has the flow map
    `X_(t,t+d)(x) = x + d (gain y - x) / (1 - t)`: its average velocity does not depend
    on `d`. `perturbation` adds `perturbation * d * x`, which is wrong for every `d > 0`.
    Input layout `[x, y, t, d]` (a `ConditionalVelocity` with `step_size_input=True`).
    """

    gain: float = eqx.field(static=True)
    perturbation: float = eqx.field(static=True)

    def __call__(self, inputs):
        x, y, t, d = inputs[:C], inputs[C : 2 * C], inputs[2 * C], inputs[2 * C + 1]
        return (self.gain * y - x) / (1.0 - t) + self.perturbation * d * x


class LinearVelocity(eqx.Module):
    """The linear field `v(x, t) = rate * x` (input `[x, y, t]`)."""

    rate: float = eqx.field(static=True)

    def __call__(self, inputs):
        return self.rate * inputs[:C]


class ExponentialAverageVelocity(eqx.Module):
    """The average velocity of `v = rate * x`: `X_(t,t+d)(x) = exp(rate d) x`, so
    `u = expm1(rate d) / d * x` (`rate * x` at `d = 0`); plus `perturbation * d * x`."""

    rate: float = eqx.field(static=True)
    perturbation: float = eqx.field(static=True)

    def __call__(self, inputs):
        x, d = inputs[:C], inputs[2 * C + 1]
        safe = jnp.where(d == 0, 1.0, d)
        factor = jnp.where(d == 0, self.rate, jnp.expm1(self.rate * safe) / safe)
        return factor * x + self.perturbation * d * x


def deterministic_windows(gain=0.7, batch=16, seed=0):
    y = jnp.asarray(np.random.default_rng(seed).standard_normal((batch, C)), jnp.float32)
    return jnp.stack([y, gain * y], axis=1)  # (B, 2, C)


def straight(perturbation):
    return flow.ConditionalVelocity(
        StraightAverageVelocity(0.7, perturbation), step_size_input=True
    )


CLOSED_FORM = {
    "LagrangianSelfDistillation": lambda: LagrangianSelfDistillation(
        time_sampler=TimePairSampler(equal_share=0.5)
    ),
    "MeanFlow": lambda: MeanFlow(adaptive_weight_power=1.0),
    "MeanFlow-uniform": lambda: MeanFlow(time_sampler=TimePairSampler(equal_share=0.25)),
    "ShortcutModel": lambda: ShortcutModel(max_level=4, bootstrap_share=0.5),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_exact_average_velocity_of_a_straight_flow_has_zero_loss(name, key):
    configuration = CLOSED_FORM[name]()
    data = deterministic_windows()
    exact = float(jax.jit(lambda d: configuration(straight(0.0), d, key=key))(data))
    perturbed = float(jax.jit(lambda d: configuration(straight(0.5), d, key=key))(data))
    assert exact < 1e-8, exact
    assert perturbed > 1e-3, perturbed


def test_exact_flow_map_of_a_linear_field_has_zero_lagrangian_loss(key):
    """Distillation of the linear field `v = 0.8 x`: the exact exponential map
    satisfies the Lagrangian condition and matches the teacher on the diagonal."""
    teacher = flow.ConditionalVelocity(LinearVelocity(0.8))
    configuration = LagrangianSelfDistillation(teacher=teacher)
    data = ode_windows(3, batch=16)

    def loss(perturbation):
        model = flow.ConditionalVelocity(
            ExponentialAverageVelocity(0.8, perturbation), step_size_input=True
        )
        return float(configuration(model, data, key=key))

    assert loss(0.0) < 1e-10
    assert loss(0.3) > 1e-3


# --- stop-gradient placement --------------------------------------------------------


def _without_stop_gradient(function):
    """`function` run with the references' stop-gradient replaced by the identity."""

    def run(*args, **kwargs):
        saved, references.sg = references.sg, lambda x: x
        try:
            return function(*args, **kwargs)
        finally:
            references.sg = saved

    return run


def _grad(function, model):
    return jax.tree_util.tree_leaves(eqx.filter_grad(function)(model))


SAMPLER = TimePairSampler(equal_share=0.5)
STOP_GRADIENT_CASES = {
    "LagrangianSelfDistillation": (
        lambda: LagrangianSelfDistillation(time_sampler=SAMPLER),
        lambda m, d, k: references.ref_lagrangian_self_distillation(m, d, k, sampler=SAMPLER),
    ),
    "MeanFlow": (
        lambda: MeanFlow(time_sampler=SAMPLER),
        lambda m, d, k: references.ref_mean_flow(m, d, k, sampler=SAMPLER),
    ),
    "ShortcutModel": (
        lambda: ShortcutModel(max_level=3, bootstrap_share=0.5),
        lambda m, d, k: references.ref_shortcut_model(
            m, d, k, max_level=3, bootstrap_share=0.5
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(STOP_GRADIENT_CASES))
def test_no_gradient_flows_through_the_target(name, key):
    """The gradient equals that of the reference with its targets frozen and differs
    from the one that also differentiates the target."""
    make, reference = STOP_GRADIENT_CASES[name]
    configuration, model, data = make(), average_velocity_mlp(3), ode_windows(5, batch=8)
    grads = _grad(lambda m: configuration(m, data, key=key), model)
    frozen = _grad(lambda m: reference(m, data, key), model)
    through = _grad(_without_stop_gradient(lambda m: reference(m, data, key)), model)
    for g, f in zip(grads, frozen):
        np.testing.assert_allclose(g, f, rtol=2e-4, atol=1e-6)
    assert any(not np.allclose(g, t, rtol=1e-3, atol=1e-5) for g, t in zip(grads, through))


def test_no_gradient_reaches_the_teacher_or_the_average(key):
    data = ode_windows(6, batch=8)
    configuration = LagrangianSelfDistillation(teacher=velocity_mlp(9))
    model = average_velocity_mlp(1)
    teacher_grads = eqx.filter_grad(lambda c: c(model, data, key=key))(configuration)
    leaves = jax.tree_util.tree_leaves(teacher_grads.teacher)
    assert leaves and all(float(jnp.max(jnp.abs(g))) == 0.0 for g in leaves)

    ema = flow.EMAVelocity(average_velocity_mlp(1), ema=average_velocity_mlp(2))
    grads = eqx.filter_grad(
        lambda m: ShortcutModel(max_level=3, bootstrap_share=0.5)(m, data, key=key)
    )(ema)
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(grads.ema))
    assert any(float(jnp.max(jnp.abs(g))) > 0.0 for g in jax.tree_util.tree_leaves(grads.velocity))


# --- samplers: network evaluations and times -----------------------------------------


class CountingNetwork(eqx.Module):
    """Records the `(t, d)` of every evaluation (eager calls only) and returns zeros."""

    calls: list = eqx.field(static=True)

    def __call__(self, inputs):
        self.calls.append((float(inputs[2 * C]), float(inputs[2 * C + 1])))
        return jnp.zeros(C)


@pytest.mark.parametrize("num_steps", [1, 2, 4])
@pytest.mark.parametrize("wrapped_in_ema", [False, True])
def test_few_step_samplers_count_network_evaluations(num_steps, wrapped_in_ema, key):
    """Every new family samples with `FlowMatchingStepper(u, n)`: `n` evaluations at
    `t = k/n` with step-size input `d = 1/n`, as `num_function_evaluations` states."""
    calls = []
    model = flow.ConditionalVelocity(CountingNetwork(calls), step_size_input=True)
    if wrapped_in_ema:  # a shortcut model trained with EMA targets samples its average
        model = flow.EMAVelocity(model).ema
    stepper = flow.FlowMatchingStepper(model, num_steps, unroll=True)
    sample = stepper(jnp.ones(C), key=key)
    assert sample.shape == (C,)
    assert len(calls) == stepper.num_function_evaluations == num_steps
    assert flow.num_function_evaluations(model, num_steps) == num_steps
    np.testing.assert_allclose([c[0] for c in calls], np.arange(num_steps) / num_steps)
    np.testing.assert_allclose([c[1] for c in calls], np.full(num_steps, 1 / num_steps))


def test_trained_shortcut_model_samples_with_its_average(key):
    model = flow.EMAVelocity(average_velocity_mlp(0), decay=0.5)
    trainer = tx.trainer.ShortcutModelTrainer(
        ode_windows(7, window=3, batch=4), optimizer=optax.sgd(0.1),
        num_training_steps=3, batch_size=4, max_level=2,
    )
    trained = trainer(model, key, return_loss_history=False, spawn_tqdm=False)
    stepper = flow.FlowMatchingStepper(trained.ema, 2)
    samples = tx.rollout(stepper, jnp.ones(C), 3, key=key)
    assert samples.shape == (3, C) and bool(jnp.all(jnp.isfinite(samples)))
    assert stepper.num_function_evaluations == 2


def test_ema_flow_matching_stepper_trains_online_and_samples_the_average(key):
    """The stepper of `shortcut;K;ema=DECAY`: ShortcutModel sees the same loss and
    gradient as with the bare EMAVelocity; sampling is `FlowMatchingStepper(ema, n)`;
    configurations that would train the average reject it."""
    model = ema_velocity(0)
    stepper = flow.EMAFlowMatchingStepper(model, 2)
    assert stepper.num_function_evaluations == 2
    np.testing.assert_array_equal(
        stepper(jnp.ones(C), key=key), flow.FlowMatchingStepper(model.ema, 2)(jnp.ones(C), key=key))
    assert not np.allclose(stepper(jnp.ones(C), key=key),
                           flow.FlowMatchingStepper(model.velocity, 2)(jnp.ones(C), key=key))
    data = ode_windows(3, window=2, batch=6)
    configuration = ShortcutModel(max_level=2)
    loss_bare, grad_bare = eqx.filter_value_and_grad(
        lambda m: configuration(m, data, key=key))(model)
    loss_wrapped, grad_wrapped = eqx.filter_value_and_grad(
        lambda s: configuration(s, data, key=key))(stepper)
    np.testing.assert_allclose(loss_wrapped, loss_bare, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grad_wrapped.model),
                    jax.tree_util.tree_leaves(grad_bare)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match=r"stepper.model.ema"):
        MeanFlow()(stepper, data, key=key)
    with pytest.raises(TypeError, match="EMAVelocity"):
        flow.EMAFlowMatchingStepper(model.velocity, 2)
    with pytest.raises(ValueError, match="num_input_steps"):
        ShortcutModel(num_input_steps=2)(stepper, ode_windows(3, window=3, batch=6), key=key)


# --- time pairs, EMA ------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["uniform", "logit_normal"])
def test_time_pair_sampler(distribution, key):
    sampler = TimePairSampler(distribution, mean=0.4, std=1.0, equal_share=0.75)
    t, d = sampler(key, 4000)
    num_equal = sampler.num_equal(4000)
    assert num_equal == 3000
    np.testing.assert_array_equal(d[:num_equal], 0.0)
    assert float(jnp.min(d[num_equal:])) > 0.0
    assert float(jnp.min(t)) >= 0.0 and float(jnp.max(t + d)) <= 1.0 + 1e-6
    if distribution == "uniform":
        # the diagonal time is uniform; the ordered pair's start has mean 1/3
        assert abs(float(jnp.mean(t[:num_equal])) - 0.5) < 0.03
        assert abs(float(jnp.mean(t[num_equal:])) - 1 / 3) < 0.03
    else:
        logits = jnp.log(t[:num_equal] / (1 - t[:num_equal]))
        assert abs(float(jnp.mean(logits)) - 0.4) < 0.08
        assert abs(float(jnp.std(logits)) - 1.0) < 0.08


def test_ema_velocity_moves_towards_the_new_weights():
    online = average_velocity_mlp(0)
    model = flow.EMAVelocity(online, decay=0.75, ema=average_velocity_mlp(1))
    optimizer = flow.flow_map_optimizer(optax.sgd(0.1))
    state = optimizer.init(eqx.filter(model, eqx.is_array))
    grads = jax.tree_util.tree_map(jnp.ones_like, eqx.filter(model, eqx.is_array))
    updates, _ = optimizer.update(grads, state, eqx.filter(model, eqx.is_array))
    new = eqx.apply_updates(model, updates)
    for old, moved in zip(jax.tree_util.tree_leaves(eqx.filter(online, eqx.is_array)),
                          jax.tree_util.tree_leaves(eqx.filter(new.velocity, eqx.is_array))):
        np.testing.assert_allclose(moved, old - 0.1, rtol=1e-6, atol=1e-6)
    for ema, fresh, moved in zip(
        jax.tree_util.tree_leaves(eqx.filter(model.ema, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(new.velocity, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(new.ema, eqx.is_array)),
    ):
        np.testing.assert_allclose(moved, 0.75 * ema + 0.25 * fresh, rtol=1e-5, atol=1e-6)


# --- error paths ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [LagrangianSelfDistillation, MeanFlow, ShortcutModel])
def test_plain_velocity_is_rejected(make, key):
    with pytest.raises(ValueError, match="step_size_input=True"):
        make()(velocity_mlp(0), ode_windows(0), key=key)
    with pytest.raises(ValueError, match="random key"):
        make()(average_velocity_mlp(0), ode_windows(0))


def test_construction_errors():
    with pytest.raises(ValueError, match="equal_share=0"):
        LagrangianSelfDistillation(time_sampler=TimePairSampler(equal_share=0.0))
    with pytest.raises(ValueError, match="plain trained velocity"):
        LagrangianSelfDistillation(teacher=average_velocity_mlp(0))
    with pytest.raises(ValueError, match="adaptive_weight_power"):
        MeanFlow(adaptive_weight_power=-1.0)
    with pytest.raises(ValueError, match="adaptive_weight_offset"):
        MeanFlow(adaptive_weight_offset=0.0)
    with pytest.raises(ValueError, match="bootstrap_share"):
        ShortcutModel(bootstrap_share=1.5)
    with pytest.raises(ValueError, match="max_level"):
        ShortcutModel(max_level=0)
    with pytest.raises(ValueError, match="distribution"):
        TimePairSampler("gaussian")
    with pytest.raises(ValueError, match="std"):
        TimePairSampler("logit_normal", std=0.0)
    with pytest.raises(ValueError, match="equal_share"):
        TimePairSampler(equal_share=2.0)
    with pytest.raises(TypeError, match="step_size_input=True"):
        flow.EMAVelocity(velocity_mlp(0))
    with pytest.raises(ValueError, match="decay"):
        flow.EMAVelocity(average_velocity_mlp(0), decay=1.0)
    with pytest.raises(TypeError, match="time sampler"):
        MeanFlow(time_sampler="uniform")


@pytest.mark.parametrize("make", [LagrangianSelfDistillation, MeanFlow, ShortcutModel])
def test_sobolev_loss_receives_the_flow_time(make, key):
    """The per-sample loss is taken at the sample's flow time: a time-dependent weight
    `alpha(t) = t < 1` lowers the loss, a constant callable changes nothing."""
    network = eqx.nn.Conv1d(4, 1, 3, padding=1, padding_mode="CIRCULAR", key=key)
    model = flow.ConditionalVelocity(network, step_size_input=True)
    data = jnp.asarray(np.random.default_rng(1).standard_normal((6, 2, 1, 8)), jnp.float32)

    def loss(alpha):
        configuration = make(time_level_loss=tx.loss.SobolevLoss(alpha=alpha, beta=0.5))
        return float(configuration(model, data, key=key))

    constant = loss(1.0)
    assert loss(lambda t: 1.0 + 0.0 * t) == pytest.approx(constant, rel=1e-6)
    assert loss(lambda t: t) < constant
