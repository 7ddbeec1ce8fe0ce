"""`trainax_fm.networks.PatchForecaster`: forward pass against a NumPy reference, its
symmetries, the sliding-context rollout, and training it as a block stepper."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import trainax_fm as tx

C, CONTEXT, PREDICTION, PATCH, WIDTH = 3, 16, 4, 4, 16


def forecaster(seed=0, context_length=CONTEXT, prediction_length=PREDICTION, **overrides):
    options = dict(width=WIDTH, num_layers=1, num_heads=2)
    options.update(overrides)
    return tx.networks.PatchForecaster(
        C, context_length, prediction_length, PATCH, key=jax.random.key(seed), **options
    )


def context(seed=1, length=CONTEXT):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(length * C,)), jnp.float32)


# --- a hand-written NumPy reference of the forward pass ---------------------------------


def np_linear(layer, x):
    return x @ np.asarray(layer.weight).T + np.asarray(layer.bias)


def np_layer_norm(norm, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * np.asarray(norm.weight) + np.asarray(norm.bias)


def np_rope(x):
    positions, dim = x.shape
    out = np.empty_like(x)
    for p in range(positions):
        for i in range(dim // 2):
            angle = p * 10000.0 ** (-2 * i / dim)
            a, b = x[p, 2 * i], x[p, 2 * i + 1]
            out[p, 2 * i] = a * math.cos(angle) - b * math.sin(angle)
            out[p, 2 * i + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


def np_attention(attention, tokens, rotary):
    n, width = tokens.shape
    heads = attention.num_heads
    size = width // heads
    q = np_linear(attention.query_projection, tokens)
    k = np_linear(attention.key_projection, tokens)
    v = np_linear(attention.value_projection, tokens)
    outputs = []
    for h in range(heads):
        part = slice(h * size, (h + 1) * size)
        qh, kh, vh = q[:, part], k[:, part], v[:, part]
        if rotary:
            qh, kh = np_rope(qh), np_rope(kh)
        scores = qh @ kh.T / math.sqrt(size)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        outputs.append(weights @ vh)
    return np_linear(attention.output_projection, np.concatenate(outputs, axis=-1))


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_forecaster(model, x):
    series = np.asarray(x, np.float64).reshape(model.context_length, model.num_channels).T
    mean = series.mean(1, keepdims=True)
    scale = series.std(1, keepdims=True) + model.eps
    patches = ((series - mean) / scale).reshape(model.num_channels, -1, model.patch_length)
    tokens = np_linear(model.embedding, patches)
    for layer in model.layers:
        normed = np_layer_norm(layer.temporal_norm, tokens)
        tokens = tokens + np.stack(
            [np_attention(layer.temporal_attention, normed[c], True) for c in range(C)]
        )
        normed = np_layer_norm(layer.channel_norm, tokens)
        tokens = tokens + np.stack(
            [np_attention(layer.channel_attention, normed[:, p], False)
             for p in range(tokens.shape[1])], axis=1,
        )
        normed = np_layer_norm(layer.mlp_norm, tokens)
        tokens = tokens + np_linear(layer.mlp_out, np_gelu(np_linear(layer.mlp_in, normed)))
    tokens = np_layer_norm(model.final_norm, tokens)
    forecast = np_linear(model.head, tokens.reshape(model.num_channels, -1))
    return (forecast * scale + mean).T.reshape(-1)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_pass_equals_numpy_reference(num_layers):
    model = forecaster(3, num_layers=num_layers)
    x = context(4) * 5 + 2
    out = eqx.filter_jit(model)(x)
    assert out.shape == (PREDICTION * C,) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, np_forecaster(model, x), rtol=1e-4, atol=1e-4)


def test_rotary_embedding_matches_reference_and_sees_only_relative_positions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(tx.networks.rotary_embedding(jnp.asarray(x)), np_rope(x),
                               rtol=1e-5, atol=1e-5)
    q, k = rng.normal(size=6), rng.normal(size=6)
    tiled_q = jnp.asarray(np.tile(q, (8, 1)), jnp.float32)
    tiled_k = jnp.asarray(np.tile(k, (8, 1)), jnp.float32)
    rq, rk = tx.networks.rotary_embedding(tiled_q), tx.networks.rotary_embedding(tiled_k)
    scores = np.asarray(rq @ rk.T)
    # Same offset m - n, same score.
    np.testing.assert_allclose(scores[3, 1], scores[6, 4], rtol=1e-4)
    np.testing.assert_allclose(scores[0, 0], scores[7, 7], rtol=1e-4)
    with pytest.raises(ValueError, match="even"):
        tx.networks.rotary_embedding(jnp.zeros((4, 3)))


def test_per_series_scaling_and_channel_permutation_equivariance():
    model = eqx.filter_jit(forecaster(5))
    x = context(6).reshape(CONTEXT, C)
    base = model(x.reshape(-1)).reshape(PREDICTION, C)
    scale, shift = jnp.asarray([3.0, 0.5, 10.0]), jnp.asarray([-4.0, 1.0, 100.0])
    moved = model((x * scale[None] + shift[None]).reshape(-1)).reshape(PREDICTION, C)
    np.testing.assert_allclose(moved, base * scale[None] + shift[None], rtol=1e-3, atol=1e-3)
    order = jnp.asarray([2, 0, 1])
    permuted = model(x[:, order].reshape(-1)).reshape(PREDICTION, C)
    np.testing.assert_allclose(permuted, base[:, order], rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = forecaster(11)
    path = tx.save_stepper(tmp_path / "forecaster.eqx", model)
    loaded = tx.load_stepper(path, forecaster(12))
    assert eqx.tree_equal(loaded, model)


def test_argument_errors():
    with pytest.raises(ValueError, match="multiple of `patch_length`"):
        tx.networks.PatchForecaster(C, 10, 4, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="even size"):
        tx.networks.PatchForecaster(C, 16, 4, 4, width=12, num_heads=4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_layers"):
        tx.networks.PatchForecaster(C, 16, 4, 4, num_layers=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="eps"):
        tx.networks.PatchForecaster(C, 16, 4, 4, eps=0.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"\(48,\) = \(context_length\*C,\)"):
        forecaster()(jnp.zeros((CONTEXT, C)))


@pytest.mark.parametrize("context_length", [CONTEXT, 12])
@pytest.mark.parametrize("batched", [False, True])
def test_sliding_context_rollout_equals_python_loop(batched, context_length):
    """Also with a context that is not a whole number of blocks (12 = 2*8 - 4)."""
    k = PREDICTION if context_length == CONTEXT else 8
    model = forecaster(7, context_length=context_length, prediction_length=k)
    stepper = model.block_stepper()
    assert stepper.num_context_steps == context_length
    ics = np.stack([np.asarray(context(s, context_length)).reshape(context_length, C)
                    for s in (8, 9)])
    ic = ics if batched else ics[0]
    out = tx.rollout(stepper, ic, 3, num_input_steps=context_length, batched=batched,
                     include_init=True)
    call = eqx.filter_jit(model)
    for b in range(2 if batched else 1):
        states = list(ics[b])
        for _ in range(3):
            window = np.concatenate(states[-context_length:])
            states.extend(np.asarray(call(jnp.asarray(window))).reshape(k, C))
        expected = np.stack(states[context_length - 1:])
        got = out[b] if batched else out
        assert got.shape == (1 + 3 * k, C)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_training_on_lorenz_as_history_of_blocks_lowers_the_loss():
    """Trainers cut windows into blocks of k states and histories of H blocks, so the
    forecaster with context_length = H*k is the stepper itself."""
    data = tx.sample_data.lorenz_rk4(4, temporal_horizon=40, dt=0.02, key=jax.random.key(0))
    history_blocks = CONTEXT // PREDICTION
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(3e-3), num_training_steps=60, batch_size=8,
        num_rollout_steps=1, num_input_steps=history_blocks, num_output_steps=PREDICTION,
    )
    model = forecaster(0)
    before = float(trainer.full_loss(model))
    result = trainer.train(model, jax.random.key(1), spawn_tqdm=False)
    after = float(trainer.full_loss(result.stepper))
    assert np.isfinite(after) and after < 0.5 * before
    # The loss is the MSE of the forecast block against the next k states.
    window = data[0, :CONTEXT + PREDICTION]
    prediction = result.stepper(window[:CONTEXT].reshape(-1)).reshape(PREDICTION, C)
    assert isinstance(result.stepper, tx.networks.PatchForecaster)
    assert float(jnp.mean((prediction - window[CONTEXT:]) ** 2)) < before
