"""Parameter-conditioned emulators: constants per trajectory reach the stepper.

Driven by `tests/registry.py`: for every configuration, the stepper's networks are
wrapped in a `ConditionedNetwork` and the windows carry constants. The loss and
gradient must equal the case's hand-written reference evaluated with the stepper bound
to each sample's constants (all configurations with shared constants; the
deterministic ones also with different constants per sample, against the mean of
per-sample references).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_value_and_grad_close, conv_stepper, random_windows, value_and_grad
from registry import CONFIGURATIONS

import trainax_fm as tx
from trainax_fm.data._conditioned import ConditionedWindows, bind_to_windows
from trainax_fm._stepper._conditioned import SampleConstants, count_conditioned


def affine_combine(x, scalars, fields):
    """A shape-preserving combination, so every registry network accepts it."""
    del fields
    return x * scalars[0] + scalars[1]


def _is_network(node):
    return isinstance(node, (eqx.nn.MLP, eqx.nn.Conv))


def condition(stepper):
    """`stepper` with each of its networks wrapped in a ConditionedNetwork."""
    return jax.tree_util.tree_map(
        lambda n: tx.ConditionedNetwork(n, combine=affine_combine) if _is_network(n) else n,
        stepper,
        is_leaf=_is_network,
    )


def _conditioned_loss(case, configuration, batch, key):
    def loss(stepper):
        kwargs = dict(case.call_kwargs)
        windows, stepper, config, kwargs["ref_stepper"] = bind_to_windows(
            batch, stepper, configuration, kwargs.get("ref_stepper")
        )
        return config(stepper, windows, key=key, **kwargs)

    return loss


def _batch_size(data):
    return jax.tree_util.tree_leaves(data)[0].shape[0]


@pytest.mark.parametrize("case", CONFIGURATIONS, ids=repr)
def test_constants_reach_the_stepper_in_every_configuration(case, key):
    """Shared constants `c`: the conditioned loss and gradient equal the reference with
    the stepper bound to `c`; other constants give another loss."""
    configuration = case.make()
    stepper, data = condition(case.stepper(1)), case.data()
    assert count_conditioned(stepper) > 0
    scalars = jnp.array([0.7, 0.2], jnp.float32)
    batch = ConditionedWindows(
        data, SampleConstants(jnp.tile(scalars, (_batch_size(data), 1)), None)
    )
    # The windows are an argument of the compiled loss, not constants baked into it:
    # the other constants below then reuse this one program instead of a second one.
    conditioned = eqx.filter_jit(eqx.filter_value_and_grad(
        lambda s, windows: _conditioned_loss(case, configuration, windows, key)(s)))
    value, grads = conditioned(stepper, batch)
    actual = (value, jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_array)))
    expected = value_and_grad(
        lambda s: case.reference(tx.bind_constants(s, scalars), data, key), stepper, jit=True
    )
    assert_value_and_grad_close(actual, expected, label=case.name)
    other = ConditionedWindows(data, SampleConstants(batch.constants.scalars + 0.5, None))
    changed, _ = conditioned(stepper, other)
    assert not np.isclose(float(changed), float(value)), "constants have no effect"


# The MMD compares the distribution of a whole minibatch: not a mean over samples.
BATCH_COUPLED = {"InvariantMeasureMMD", "InvariantMeasureSinkhorn"}
DETERMINISTIC = [
    case for case in CONFIGURATIONS
    if not case.make().needs_key and case.name not in BATCH_COUPLED
]


@pytest.mark.parametrize("case", DETERMINISTIC, ids=repr)
def test_each_sample_sees_its_own_constants(case, key):
    """Different constants per sample: the loss and gradient are the mean of the
    per-sample references, each with the stepper bound to that sample's constants."""
    configuration = case.make()
    stepper, data = condition(case.stepper(1)), case.data()
    num = _batch_size(data)
    scalars = jnp.stack([jnp.linspace(0.5, 1.5, num), jnp.linspace(-0.3, 0.3, num)], axis=1)
    batch = ConditionedWindows(data, SampleConstants(scalars, None))
    actual = value_and_grad(_conditioned_loss(case, configuration, batch, key), stepper, jit=True)

    def mean_of_samples(s):
        losses = [
            case.reference(tx.bind_constants(s, scalars[i]), data[i : i + 1], key)
            for i in range(num)
        ]
        return sum(losses) / num

    expected = value_and_grad(mean_of_samples, stepper, jit=True)
    assert_value_and_grad_close(actual, expected, label=case.name)


# --- data, trainers, rollout ----------------------------------------------------------

S, T, N = 3, 6, 8


def _conditioned_data(seed=0):
    trajectories = random_windows(seed, T, batch=S)
    scalars = jnp.asarray([[0.5], [1.0], [2.0]], jnp.float32)
    fields = random_windows(seed + 1, 1, batch=S)[:, 0]  # (S, 1, N)
    return tx.ConditionedTrajectories(trajectories, scalars, fields)


def _conditioned_conv(seed=0):
    # Default combination: [scalar channel, field channel, state].
    return tx.ConditionedNetwork(conv_stepper(seed, in_channels=tx.conditioned_channels(1, 1, 1)))


def test_append_constant_channels():
    state = jnp.arange(8.0).reshape(1, 8)
    out = tx.append_constant_channels(state, jnp.array([2.0, 3.0]), jnp.ones((1, 8)))
    np.testing.assert_array_equal(out[0], 2.0)
    np.testing.assert_array_equal(out[1], 3.0)
    np.testing.assert_array_equal(out[2], 1.0)
    np.testing.assert_array_equal(out[3], state[0])
    ode = tx.append_constant_channels(jnp.array([1.0, 2.0]), jnp.array([5.0]), None)
    np.testing.assert_array_equal(ode, [5.0, 1.0, 2.0])
    assert tx.conditioned_channels(1, 1, 1) == 3


def test_stacker_gathers_constants_of_each_window():
    data = _conditioned_data()
    stacker = tx.TrajectorySubStacker(data, 3)
    windows = stacker(jnp.arange(stacker.num_total_samples))
    trajectory = np.repeat(np.arange(S), T - 3 + 1)
    np.testing.assert_array_equal(windows.constants.scalars, data.constant_scalars[trajectory])
    np.testing.assert_array_equal(windows.constants.fields, data.constant_fields[trajectory])
    np.testing.assert_array_equal(
        windows.windows, tx.TrajectorySubStacker(data.trajectories, 3)(slice(None))
    )


@pytest.mark.parametrize(
    "trainer_cls, extra",
    [
        (tx.trainer.SupervisedTrainer, {"num_rollout_steps": 2}),
        (
            tx.trainer.TeacherForcingTrainer,
            {"num_rollout_steps": 2, "teacher_forcing_probability": 0.5},
        ),
    ],
)
def test_conditioned_training_matches_per_trajectory_binding(trainer_cls, extra, key):
    """A trainer on ConditionedTrajectories trains a conditioned stepper, its full loss
    equals the per-window loss with the stepper bound to each trajectory's constants,
    and the trained stepper rolls out with the constants."""
    data = _conditioned_data()
    trainer = trainer_cls(
        data, optimizer=optax.adam(1e-2), num_training_steps=3, batch_size=2, **extra
    )
    result = trainer.train(_conditioned_conv(), key, spawn_tqdm=False)
    assert np.all(np.isfinite(result.loss_history))
    stepper = result.stepper
    if trainer_cls is tx.trainer.SupervisedTrainer:
        config = trainer.loss_configuration
        windows = tx.TrajectorySubStacker(data.trajectories, 3)(slice(None))
        per_window = [
            config(
                tx.bind_constants(
                    stepper, data.constant_scalars[i // 4], data.constant_fields[i // 4]
                ),
                windows[i : i + 1],
            )
            for i in range(windows.shape[0])
        ]
        np.testing.assert_allclose(trainer.full_loss(stepper), np.mean(per_window), rtol=1e-5)
    trajectory = tx.rollout(
        stepper,
        data.trajectories[:, 0],
        4,
        batched=True,
        constant_scalars=data.constant_scalars,
        constant_fields=data.constant_fields,
    )
    single = tx.rollout(
        tx.bind_constants(stepper, data.constant_scalars[2], data.constant_fields[2]),
        data.trajectories[2, 0],
        4,
    )
    np.testing.assert_allclose(trajectory[2], single, rtol=1e-6, atol=1e-6)


def _conditioned_residuum():
    """`u_next - c u_prev - f` with each sample's scalar `c` and field `f`, bound like a
    stepper: it receives the minibatch's constants, batched like the states."""

    def residuum(inputs, u_prev):
        u_next, scalars, fields = inputs  # (B, 1, N), (B, 1), (B, 1, N)
        return u_next - scalars[:, :, None] * u_prev - fields

    return tx.ConditionedNetwork(residuum, combine=lambda u, scalars, fields: (u, scalars, fields))


@pytest.mark.filterwarnings("ignore:A JAX array is being set as static")
def test_residuum_receives_the_constants_of_each_sample(key):
    data = _conditioned_data()
    configuration = tx.configuration.Residuum(2)
    callback = tx.callback.Loss(1, configuration, residuum_fn=_conditioned_residuum(),
                                name="loss")
    trainer = tx.trainer.ConfigurationTrainer(
        data, configuration, residuum_fn=_conditioned_residuum(), optimizer=optax.sgd(0.0),
        num_training_steps=2, batch_size=2, callback_fn=callback,
    )
    stepper = _conditioned_conv()
    # A residuum needs only initial conditions: every snapshot starts a window.
    initial_states = data.trajectories.reshape(S * T, 1, N)

    def window_loss(i):  # by hand: two bound steps, the residuum with trajectory i // T's c, f
        c, f = data.constant_scalars[i // T], data.constant_fields[i // T]
        bound = tx.bind_constants(stepper, c, f)
        states = [initial_states[i]]
        for _ in range(2):
            states.append(bound(states[-1]))
        return sum(jnp.mean((b - c[0] * a - f) ** 2) for a, b in zip(states, states[1:]))

    expected = np.mean([window_loss(i) for i in range(S * T)])
    np.testing.assert_allclose(trainer.full_loss(stepper), expected, rtol=1e-5)
    result = trainer.train(stepper, key, spawn_tqdm=False)
    recorded = [entry["loss"] for entry in result.aux_history]
    np.testing.assert_allclose(recorded, result.loss_history, rtol=1e-5)
    plain = tx.trainer.ConfigurationTrainer(
        data.trajectories, configuration, residuum_fn=_conditioned_residuum(),
        optimizer=optax.sgd(0.0), num_training_steps=1, batch_size=2,
    )
    with pytest.raises(ValueError, match="not bound to constants"):
        plain.full_loss(conv_stepper(0))


@pytest.mark.filterwarnings("ignore:A JAX array is being set as static")
def test_conditioned_callbacks_bind_the_stepper(key):
    data = _conditioned_data()
    callback = tx.callback.Loss(1, tx.configuration.Supervised(2), name="loss")
    trainer = tx.trainer.SupervisedTrainer(
        data,
        optimizer=optax.sgd(0.0),
        num_training_steps=2,
        batch_size=2,
        num_rollout_steps=2,
        callback_fn=callback,
    )
    result = trainer.train(_conditioned_conv(), key, spawn_tqdm=False)
    recorded = [entry["loss"] for entry in result.aux_history]
    np.testing.assert_allclose(recorded, result.loss_history, rtol=1e-5)


def test_conditioned_data_errors():
    trajectories = random_windows(0, T, batch=S)
    with pytest.raises(ValueError, match="constant_scalars.*must be shaped \\(S, P\\)"):
        tx.ConditionedTrajectories(trajectories, jnp.ones((S,)))
    with pytest.raises(ValueError, match="one row per trajectory"):
        tx.ConditionedTrajectories(trajectories, jnp.ones((S + 1, 1)))
    with pytest.raises(ValueError, match="constant_fields.*spatial shape"):
        tx.ConditionedTrajectories(trajectories, constant_fields=jnp.ones((S, 1, N + 1)))
    with pytest.raises(ValueError, match="needs `constant_scalars`"):
        tx.ConditionedTrajectories(trajectories)
    with pytest.raises(ValueError, match="NaN or Inf, first at trajectory 1"):
        tx.ConditionedTrajectories(trajectories, jnp.asarray([[0.0], [jnp.nan], [1.0]]))
    with pytest.raises(TypeError, match="floating point"):
        tx.ConditionedTrajectories(trajectories, jnp.ones((S, 1), jnp.int32))


def test_conditioned_stepper_errors(key):
    data = _conditioned_data()
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=1, batch_size=2
    )
    with pytest.raises(ValueError, match="holds no trainax_fm.ConditionedNetwork"):
        trainer.train(conv_stepper(0), key, spawn_tqdm=False)
    with pytest.raises(ValueError, match="not bound to constants"):
        tx.rollout(_conditioned_conv(), data.trajectories[0, 0], 2)
    with pytest.raises(ValueError, match="holds no trainax_fm.ConditionedNetwork"):
        tx.rollout(conv_stepper(0), data.trajectories[0, 0], 2, constant_scalars=jnp.ones(1))
    with pytest.raises(ValueError, match=r"`constant_scalars` must be shaped \(B, P\)"):
        tx.rollout(
            _conditioned_conv(), data.trajectories[:, 0], 2, batched=True,
            constant_scalars=jnp.ones((S + 1, 1)),
        )


def test_varying_speed_advection_data(key):
    """Each trajectory is exact advection at its own speed (its constant scalar), and
    a conditioned linear convolution learns the speed-dependent step better than an
    unconditioned one."""
    data = tx.sample_data.advection_1d_varying_speed(
        16, 6, min_cfl=0.2, max_cfl=0.8, highest_init_mode=3, temporal_horizon=5, key=key
    )
    assert data.trajectories.shape == (6, 5, 1, 16)
    assert data.constant_scalars.shape == (6, 1)
    speeds = data.constant_scalars[:, 0]
    assert float(speeds.min()) >= 0.2 and float(speeds.max()) <= 0.8
    for s in (0, 5):
        shift = jnp.fft.irfft(
            jnp.fft.rfft(data.trajectories[s, 0, 0])
            * jnp.exp(-1j * jnp.fft.rfftfreq(16) * 2 * jnp.pi * speeds[s] * 3),
            n=16,
        )
        np.testing.assert_allclose(data.trajectories[s, 3, 0], shift, atol=1e-5)
    with pytest.raises(ValueError, match="must not exceed `max_cfl`"):
        tx.sample_data.advection_1d_varying_speed(min_cfl=1.0, max_cfl=0.5, key=key)

    def fit(stepper, trajectories):
        trainer = tx.trainer.SupervisedTrainer(
            trajectories, optimizer=optax.adam(3e-2), num_training_steps=300, batch_size=8
        )
        result = trainer.train(stepper, key, spawn_tqdm=False)
        return float(trainer.full_loss(result.stepper))

    # Multiplying the state by (1 + speed) channels lets a linear conv mix two shifts.
    bilinear = lambda x, s, f: jnp.concatenate([x, x * s[0]])  # noqa: E731
    conditioned = tx.ConditionedNetwork(conv_stepper(0, in_channels=2), combine=bilinear)
    assert fit(conditioned, data) < 0.5 * fit(conv_stepper(0), data.trajectories)


def test_validation_on_conditioned_data_binds_each_trajectory(key):
    """Validation loss and rollout nRMSE on held-out conditioned trajectories equal a
    hand computation with the stepper bound to each trajectory's constants."""
    train, held_out = _conditioned_data(0), _conditioned_data(10)
    trainer = tx.trainer.SupervisedTrainer(
        train, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=2,
        validation_data=held_out, validate_every=4,
        validation_metrics=("loss", "nrmse@2"),
    )
    result = trainer.train(_conditioned_conv(), key, spawn_tqdm=False)
    final = {name: float(values[-1]) for name, values in result.validation.values.items()}
    losses, errors = [], []
    for s in range(S):
        bound = tx.bind_constants(
            result.stepper, held_out.constant_scalars[s], held_out.constant_fields[s]
        )
        trajectory = np.asarray(held_out.trajectories[s])
        for start in range(T - 1):
            losses.append(
                np.mean((np.asarray(bound(trajectory[start])) - trajectory[start + 1]) ** 2)
            )
        state = bound(bound(trajectory[0]))
        errors.append(np.linalg.norm(state - trajectory[2]) / np.linalg.norm(trajectory[2]))
    assert final["loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert final["nrmse@2"] == pytest.approx(np.mean(errors), rel=1e-5)
    with pytest.raises(ValueError, match="ConditionedTrajectories exactly when"):
        tx.trainer.SupervisedTrainer(
            train, optimizer=optax.adam(1e-2), num_training_steps=4, batch_size=2,
            validation_data=held_out.trajectories, validate_every=4,
        )
