"""Per-window augmentations of many-system training: `RandomAffine`,
`RandomConvexCombination`, `DelayEmbedding` and a user-defined one.

Each transform against a hand-written NumPy version with the documented key
derivation (tests/references.py), on ODE windows `(B, W, C)` and on fields; the share of
transformed windows against the probability; the errors; training with a trainer. The
registry (tests/registry.py) runs the shared configuration contracts on them too.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import (
    np_convex_combination,
    np_delay_embedding,
    np_random_affine,
    ref_window_augmentation,
)

import trainax_fm as tx
from trainax_fm.configuration import (
    AbstractWindowAugmentation,
    BaseConfiguration,
    DelayEmbedding,
    RandomAffine,
    RandomConvexCombination,
    Supervised,
)


class RandomScale(AbstractWindowAugmentation):
    """The docstring's example of a user-defined augmentation."""

    configuration: BaseConfiguration
    probability: float = eqx.field(static=True)
    max_scale: float = eqx.field(static=True)

    def __init__(self, configuration, probability=0.2, max_scale=2.0):
        self.configuration = configuration
        self.probability = probability
        self.max_scale = max_scale

    def transform_window(self, window, key):
        scale = jax.random.uniform(key, (), minval=1.0, maxval=self.max_scale)
        return scale * window


def np_scale(window, key, max_scale):
    with jax.ensure_compile_time_eval():
        scale = float(jax.random.uniform(key, (), minval=1.0, maxval=max_scale))
    return np.float32(scale) * window


CASES = {
    "affine": (
        lambda p: RandomAffine(Supervised(2), p, bias_std=0.5),
        lambda w, k: np_random_affine(w, k, 0.5),
    ),
    "convex": (
        lambda p: RandomConvexCombination(Supervised(2), p, concentration=0.5),
        lambda w, k: np_convex_combination(w, k, 0.5),
    ),
    "delay": (
        lambda p: DelayEmbedding(Supervised(2), p, max_delay=3),
        lambda w, k: np_delay_embedding(w, k, 3),
    ),
    "user": (
        lambda p: RandomScale(Supervised(2), p, max_scale=3.0),
        lambda w, k: np_scale(w, k, 3.0),
    ),
}


def _windows(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _augmented(augmentation, data, key):
    return eqx.filter_jit(lambda a, d, k: a.augment(d, k))(augmentation, data, key)


def _reference(transform, data, key, probability):
    """The windows the reference hands to the wrapped configuration."""
    seen = []
    ref_window_augmentation(
        None, data, key, lambda s, d, k: seen.append(d), probability, transform
    )
    return seen[0]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape", [(6, 7, 4), (6, 4, 3, 4)], ids=["ode", "field"])
def test_transform_matches_numpy(name, shape):
    """The windows (some transformed, some not) equal the NumPy transforms with the
    documented keys; shapes and dtypes are kept."""
    make, transform = CASES[name]
    data = _windows(shape)
    key = jax.random.key(3)
    got = _augmented(make(0.6), data, jax.random.split(key)[0])
    assert got.shape == data.shape and got.dtype == data.dtype
    np.testing.assert_allclose(got, _reference(transform, data, key, 0.6), rtol=1e-5, atol=1e-5)
    changed = np.any(np.asarray(got) != np.asarray(data), axis=tuple(range(1, got.ndim)))
    assert changed.any() and not changed.all(), changed


def test_the_registry_cases_transform_some_windows_and_keep_others(key):
    """The contract cases (probability 0.3, 4 windows, the fixture key) see both kinds
    of windows, so their references test the choice too."""
    augmentation_key = jax.random.split(key)[0]
    applied = [
        bool(jax.random.bernoulli(jax.random.split(k)[0], 0.3))
        for k in jax.random.split(augmentation_key, 4)
    ]
    assert any(applied) and not all(applied)


@pytest.mark.parametrize("name", sorted(CASES))
def test_share_of_transformed_windows_is_the_probability(name):
    """Over 4000 windows the share that changes is within 4 standard deviations of
    `probability`; probability 0 changes none."""
    make, _ = CASES[name]
    data = _windows((4000, 4, 3), seed=1)
    probability = 0.3
    got = _augmented(make(probability), data, jax.random.key(11))
    changed = np.any(np.asarray(got) != np.asarray(data), axis=(1, 2))
    sigma = np.sqrt(probability * (1 - probability) / len(data))
    assert abs(changed.mean() - probability) < 4 * sigma, changed.mean()
    np.testing.assert_array_equal(_augmented(make(0.0), data, jax.random.key(11)), data)


def test_convex_combinations_stay_within_the_channel_range():
    """Rows on the simplex: each new channel lies between the smallest and largest old
    channel of its time level, and a constant state stays constant."""
    data = _windows((50, 3, 5), seed=2)
    convex = RandomConvexCombination(Supervised(2), 1.0)
    got = np.asarray(_augmented(convex, data, jax.random.key(0)))
    low = np.asarray(data).min(axis=2, keepdims=True)
    high = np.asarray(data).max(axis=2, keepdims=True)
    assert np.all(got >= low - 1e-6) and np.all(got <= high + 1e-6)
    constant = jnp.full((4, 3, 5), 2.5, jnp.float32)
    np.testing.assert_allclose(
        _augmented(convex, constant, jax.random.key(1)), constant, rtol=1e-6
    )


def test_delay_embedding_by_hand():
    """A window whose channel values name their time: the embedding of the drawn
    channel is `(x(t), x(t - tau), ...)` with the window's first value before it."""
    levels, channels = 6, 3
    # x_c(t) = 10 c + t, so any entry says which channel and level it came from.
    window = (10.0 * np.arange(channels)[None, :] + np.arange(levels)[:, None]).astype(np.float32)
    augmentation = DelayEmbedding(Supervised(2), 1.0, max_delay=2)
    got = np.asarray(_augmented(augmentation, jnp.asarray(window[None]), jax.random.key(5))[0])
    j = int(got[0, 0] // 10)
    tau = int(got[levels - 1, 0] - got[levels - 1, 1])
    assert tau in (1, 2)
    for t in range(levels):
        for k in range(channels):
            assert got[t, k] == 10 * j + max(t - k * tau, 0)


def test_errors():
    inner = Supervised(2)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="probability"):
            RandomAffine(inner, bad)
    for bad in ("0.5", True, None):
        with pytest.raises(TypeError, match="probability"):
            RandomConvexCombination(inner, bad)
    with pytest.raises(ValueError, match="bias_std"):
        RandomAffine(inner, bias_std=-1.0)
    for bad in (0.0, -2.0, float("inf")):
        with pytest.raises(ValueError, match="concentration"):
            RandomConvexCombination(inner, concentration=bad)
    with pytest.raises(ValueError, match="max_delay"):
        DelayEmbedding(inner, max_delay=0)
    with pytest.raises(TypeError, match="max_delay"):
        DelayEmbedding(inner, max_delay=1.5)
    with pytest.raises(TypeError, match="configuration"):
        DelayEmbedding(lambda s, d: 0.0)
    # A user's subclass is checked too (`__check_init__` of the base).
    with pytest.raises(ValueError, match="probability"):
        RandomScale(inner, probability=2.0)
    with pytest.raises(TypeError, match="configuration"):
        RandomScale("supervised")
    stepper = eqx.nn.Linear(1, 1, key=jax.random.key(0))
    single = _windows((2, 3, 1))
    with pytest.raises(ValueError, match="at least 2 channels"):
        DelayEmbedding(inner, 1.0)(stepper, single, key=jax.random.key(0))
    with pytest.raises(TypeError, match="one array"):
        RandomAffine(inner)(stepper, {"a": single}, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        RandomAffine(inner)(stepper, single)


def test_augmentations_train_inside_a_trainer(key):
    """Stacked around a configuration (and around each other) they train with a
    trainer; another augmentation key gives another run."""
    trajectories = _windows((4, 8, 3), seed=4)
    configuration = DelayEmbedding(
        RandomConvexCombination(RandomAffine(Supervised(2), 0.5), 0.5), 0.5, max_delay=2
    )
    stepper = eqx.nn.Linear(3, 3, key=jax.random.key(0))
    trainer = tx.trainer.ConfigurationTrainer(
        trajectories, configuration, optimizer=optax.adam(1e-2),
        num_training_steps=6, batch_size=4,
    )
    result = trainer.train(stepper, key, spawn_tqdm=False)
    assert result.loss_history.shape == (6,)
    assert np.all(np.isfinite(result.loss_history))
    plain = tx.trainer.ConfigurationTrainer(
        trajectories, Supervised(2), optimizer=optax.adam(1e-2),
        num_training_steps=6, batch_size=4,
    ).train(stepper, key, spawn_tqdm=False)
    assert not np.allclose(result.loss_history, plain.loss_history)


@pytest.mark.parametrize(
    "augmentation", [RandomAffine, RandomConvexCombination, DelayEmbedding],
    ids=lambda cls: cls.__name__,
)
def test_blocks_of_states_are_augmented_state_by_state(augmentation):
    """With `num_output_steps=k` a window of blocks `(W, k*C)` is transformed exactly as
    its `W*k` states `(W*k, C)` would be: the map acts on each state's channels and a
    delay counts states."""
    k, channels, num_blocks = 4, 3, 5
    states = jax.random.normal(jax.random.PRNGKey(0), (6, num_blocks * k, channels))
    blocks = states.reshape(6, num_blocks, k * channels)
    key = jax.random.PRNGKey(3)
    on_states = augmentation(Supervised(1), 0.5).augment(states, key)
    on_blocks = augmentation(Supervised(1), 0.5, num_output_steps=k).augment(blocks, key)
    np.testing.assert_array_equal(on_blocks.reshape(states.shape), on_states)
    with pytest.raises(ValueError, match="num_output_steps=5"):
        augmentation(Supervised(1), 0.5, num_output_steps=5).augment(blocks, key)
    with pytest.raises(ValueError, match="num_output_steps"):
        augmentation(Supervised(1), 0.5, num_output_steps=0)
