import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainax_fm import callback
from trainax_fm.configuration import BaseConfiguration

KEY = jax.random.PRNGKey(0)


class OneStepMSE(BaseConfiguration):
    """One-step supervised MSE, written out by hand for the tests."""

    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None,
                 key=None, step=None):
        prediction = jax.vmap(stepper)(data[:, 0])
        return jnp.mean((prediction - data[:, 1]) ** 2)

    @property
    def required_window_length(self):
        return 2


class AgainstReference(BaseConfiguration):
    """MSE between one stepper step and one reference step, plus a residuum term."""

    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None,
                 key=None, step=None):
        ic = data[:, 0]
        prediction = jax.vmap(stepper)(ic)
        loss = jnp.mean((prediction - jax.vmap(ref_stepper)(ic)) ** 2)
        return loss + jnp.mean(residuum_fn(prediction, ic) ** 2)


class NeedsKey(BaseConfiguration):
    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None,
                 key=None, step=None):
        if key is None:
            raise ValueError("NeedsKey requires a key")
        noise = jax.random.normal(key, data[:, 0].shape)
        return jnp.mean(jax.vmap(stepper)(data[:, 0] + noise) ** 2)


class TrainaxStyle(eqx.Module):
    """A configuration written against trainax: no `key` parameter at all."""

    def __call__(self, stepper, data, *, ref_stepper=None, residuum_fn=None):
        return jnp.mean(jax.vmap(stepper)(data[:, 0]) ** 2)


def _conv_stepper():
    return eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=KEY)


def _linear_stepper():
    return eqx.nn.Linear(3, 3, key=KEY)


def _conv_data():
    return jax.random.normal(jax.random.PRNGKey(1), (4, 2, 1, 8))


def _hand_norm_squared(tree):
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return sum(
        float(np.sum(np.asarray(leaf, dtype=np.float64) ** 2)) for leaf in leaves
    )


def _all_callbacks(every, tmp_path):
    """One instance of every callback class, so each is checked for the semantics."""
    config = OneStepMSE()
    return [
        callback.GetNetwork(every),
        callback.WeightNorm(every),
        callback.WeightNorm(every, squared=True, name="wn2"),
        callback.SaveNetwork(every, str(tmp_path / "ckpt"), "net"),
        callback.Loss(every, config, name="loss"),
        callback.Loss(every, config, with_grad=True, name="loss_grad"),
        callback.GradNorm(every, config, name="grad_norm"),
        callback.GradNorm(every, config, squared=True, name="grad_norm2"),
    ]


# --------------------------------------------------------------- semantics


@pytest.mark.parametrize("index", range(8))
def test_every_and_inactive_none(index, tmp_path):
    cb = _all_callbacks(3, tmp_path)[index]
    assert isinstance(cb, callback.BaseCallback)
    assert isinstance(cb, eqx.Module)
    stepper, data = _conv_stepper(), _conv_data()
    for update_i in range(7):
        result = cb(update_i, stepper, data)
        assert list(result) == [cb.name]
        assert cb.is_active(update_i) == (update_i % 3 == 0)
        if update_i % 3 == 0:
            assert result[cb.name] is not None
        else:
            assert result[cb.name] is None


def test_default_names():
    assert callback.GetNetwork(1).name == "network"
    assert callback.WeightNorm(1).name == "weight_norm"
    assert callback.SaveNetwork(1, "p", "f").name == "network_saved"
    assert callback.WeightNorm(2, True, "w").squared is True


def test_is_active_accepts_numpy_and_jax_integers():
    cb = callback.WeightNorm(5)
    assert cb.is_active(np.int64(10))
    assert cb.is_active(jnp.asarray(15))
    assert not cb.is_active(jnp.asarray(16))
    with pytest.raises(TypeError, match="update_i"):
        cb.is_active(2.5)


@pytest.mark.parametrize("every, error", [(0, ValueError), (-2, ValueError),
                                          (1.5, TypeError), (True, TypeError)])
def test_every_must_be_a_positive_int(every, error):
    with pytest.raises(error, match="`every`"):
        callback.WeightNorm(every)
    with pytest.raises(error, match="`every`"):
        callback.Loss(every, OneStepMSE(), name="loss")


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match="`name`"):
        callback.GetNetwork(1, name=3)


def test_user_subclass_in_trainax_style():
    class CountArrays(callback.BaseCallback):
        def callback(self, update_i, stepper, data):
            return len(jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array)))

    cb = CountArrays(every=2, name="count")
    assert cb(4, _linear_stepper(), None) == {"count": 2}
    assert cb(5, _linear_stepper(), None) == {"count": None}


def test_static_fields_keep_config_out_of_the_leaves():
    assert jax.tree_util.tree_leaves(callback.WeightNorm(3)) == []
    assert jax.tree_util.tree_leaves(callback.SaveNetwork(3, "a", "b")) == []


# --------------------------------------------------------------- composite


def test_composite_merges_callbacks_and_plain_functions():
    def plain(update_i, stepper, data):
        return {"step": update_i, "has_data": data is not None}

    composite = callback.CompositeCallback(
        [callback.WeightNorm(2), plain, callback.GetNetwork(3)]
    )
    stepper = _linear_stepper()
    result = composite(2, stepper, "data")
    assert set(result) == {"weight_norm", "step", "has_data", "network"}
    assert result["step"] == 2 and result["has_data"] is True
    assert result["network"] is None
    np.testing.assert_allclose(
        result["weight_norm"], np.sqrt(_hand_norm_squared(stepper)), rtol=1e-6
    )
    assert composite(3, stepper, None)["network"] is stepper


def test_composite_of_plain_functions_only_and_later_key_wins():
    composite = callback.CompositeCallback(
        [lambda i, s, d: {"a": 1, "b": 1}, lambda i, s, d: {"b": 2}]
    )
    assert composite(0, None, None) == {"a": 1, "b": 2}
    assert callback.CompositeCallback([])(0, None, None) == {}


def test_composite_is_active():
    composite = callback.CompositeCallback(
        [callback.WeightNorm(4), callback.GetNetwork(6)]
    )
    assert [composite.is_active(i) for i in range(9)] == [
        True, False, False, False, True, False, True, False, True
    ]
    with_plain = callback.CompositeCallback(
        [callback.WeightNorm(4), lambda i, s, d: {}]
    )
    assert all(with_plain.is_active(i) for i in range(9))
    assert not callback.CompositeCallback([]).is_active(0)
    nested = callback.CompositeCallback([composite, callback.WeightNorm(5, name="w5")])
    assert nested.is_active(5) and not nested.is_active(7)
    assert set(nested(12, _linear_stepper(), None)) == {"weight_norm", "network", "w5"}


def test_composite_rejects_bad_children():
    with pytest.raises(TypeError, match=r"callbacks\[1\]"):
        callback.CompositeCallback([callback.WeightNorm(1), 3])
    with pytest.raises(TypeError, match="list or tuple"):
        callback.CompositeCallback(callback.WeightNorm(1))
    with pytest.raises(TypeError, match=r"callbacks\[0\].*dict"):
        callback.CompositeCallback([lambda i, s, d: 1.0])(0, None, None)


# ------------------------------------------------------------ the callbacks


def test_get_network_returns_the_stepper():
    stepper = _linear_stepper()
    assert callback.GetNetwork(1)(0, stepper, None)["network"] is stepper


@pytest.mark.parametrize("make_stepper", [_linear_stepper, _conv_stepper])
@pytest.mark.parametrize("squared", [False, True])
def test_weight_norm_against_hand_computation(make_stepper, squared):
    stepper = make_stepper()
    expected = _hand_norm_squared(stepper)
    if not squared:
        expected = np.sqrt(expected)
    result = callback.WeightNorm(1, squared=squared)(0, stepper, None)["weight_norm"]
    assert jnp.shape(result) == ()
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_weight_norm_of_a_stepper_without_arrays_is_zero():
    result = callback.WeightNorm(1)(0, lambda u: u, None)["weight_norm"]
    assert float(result) == 0.0


def test_save_network_writes_a_readable_checkpoint(tmp_path):
    directory = tmp_path / "does" / "not" / "exist"
    cb = callback.SaveNetwork(5, directory, "emulator")
    stepper = _conv_stepper()
    assert cb(10, stepper, None) == {"network_saved": True}
    assert cb(11, stepper, None) == {"network_saved": None}
    assert sorted(os.listdir(directory)) == ["emulator_10.eqx"]
    assert cb.file_path(10) == os.path.join(str(directory), "emulator_10.eqx")

    template = eqx.nn.Conv1d(
        1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.PRNGKey(99)
    )
    loaded = eqx.tree_deserialise_leaves(directory / "emulator_10.eqx", template)
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(loaded, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array))):
        np.testing.assert_array_equal(a, b)

    # an existing checkpoint is replaced
    other = _linear_stepper()
    cb2 = callback.SaveNetwork(1, str(directory), "emulator")
    cb2(10, other, None)
    loaded = eqx.tree_deserialise_leaves(
        directory / "emulator_10.eqx", eqx.nn.Linear(3, 3, key=jax.random.PRNGKey(5))
    )
    np.testing.assert_array_equal(loaded.weight, other.weight)
    assert sorted(os.listdir(directory)) == ["emulator_10.eqx"]


def test_save_network_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    def broken(stream, pytree):
        stream.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        callback.SaveNetwork(1, tmp_path, "net")(0, _linear_stepper(), None)
    assert os.listdir(tmp_path) == []


def test_loss_against_direct_computation():
    stepper, data = _conv_stepper(), _conv_data()
    config = OneStepMSE()
    expected = jnp.mean((jax.vmap(stepper)(data[:, 0]) - data[:, 1]) ** 2)
    result = callback.Loss(1, config, name="train_loss")(0, stepper, data)
    np.testing.assert_allclose(result["train_loss"], expected, rtol=1e-6)

    with_grad = callback.Loss(1, config, with_grad=True, name="lg")
    loss, grad = with_grad(0, stepper, data)["lg"]
    expected_loss, expected_grad = eqx.filter_value_and_grad(
        lambda s: jnp.mean((jax.vmap(s)(data[:, 0]) - data[:, 1]) ** 2)
    )(stepper)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    assert jax.tree_util.tree_structure(grad) == jax.tree_util.tree_structure(
        expected_grad
    )
    for g, e in zip(jax.tree_util.tree_leaves(grad),
                    jax.tree_util.tree_leaves(expected_grad)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


def test_loss_and_grad_norm_forward_ref_stepper_and_residuum_fn():
    stepper = _linear_stepper()
    data = jax.random.normal(jax.random.PRNGKey(2), (5, 2, 3))
    ref = eqx.nn.Linear(3, 3, key=jax.random.PRNGKey(3))

    def residuum(u_next, u_prev):
        return u_next - 0.5 * u_prev

    def direct(s):
        prediction = jax.vmap(s)(data[:, 0])
        return jnp.mean((prediction - jax.vmap(ref)(data[:, 0])) ** 2) + jnp.mean(
            residuum(prediction, data[:, 0]) ** 2
        )

    config = AgainstReference()
    result = callback.Loss(1, config, ref_stepper=ref, residuum_fn=residuum, name="l")(
        0, stepper, data
    )
    np.testing.assert_allclose(result["l"], direct(stepper), rtol=1e-6)

    grad = eqx.filter_grad(direct)(stepper)
    expected = np.sqrt(_hand_norm_squared(grad))
    grad_norm = callback.GradNorm(
        1, config, ref_stepper=ref, residuum_fn=residuum, name="g"
    )
    norm = grad_norm(0, stepper, data)["g"]
    np.testing.assert_allclose(norm, expected, rtol=1e-5)


@pytest.mark.parametrize("squared", [False, True])
def test_grad_norm_against_direct_computation(squared):
    stepper, data = _conv_stepper(), _conv_data()
    grad = eqx.filter_grad(
        lambda s: jnp.mean((jax.vmap(s)(data[:, 0]) - data[:, 1]) ** 2)
    )(stepper)
    expected = _hand_norm_squared(grad)
    if not squared:
        expected = np.sqrt(expected)
    result = callback.GradNorm(1, OneStepMSE(), squared=squared, name="gn")(
        0, stepper, data
    )["gn"]
    assert jnp.shape(result) == ()
    np.testing.assert_allclose(result, expected, rtol=1e-5)


def test_key_is_passed_only_when_given():
    stepper, data = _conv_stepper(), _conv_data()
    # a trainax-style configuration without a `key` parameter still works
    callback.Loss(1, TrainaxStyle(), name="l")(0, stepper, data)
    callback.GradNorm(1, TrainaxStyle(), name="g")(0, stepper, data)
    # a stochastic configuration receives the fixed key
    with pytest.raises(ValueError, match="requires a key"):
        callback.Loss(1, NeedsKey(), name="l")(0, stepper, data)
    key = jax.random.PRNGKey(4)
    first = callback.Loss(1, NeedsKey(), key=key, name="l")(0, stepper, data)["l"]
    second = callback.Loss(1, NeedsKey(), key=key, name="l")(0, stepper, data)["l"]
    assert float(first) == float(second)
    assert jnp.isfinite(
        callback.GradNorm(1, NeedsKey(), key=key, name="g")(0, stepper, data)["g"]
    )


def test_loss_callbacks_reject_non_callable_configuration():
    with pytest.raises(TypeError, match="loss_configuration"):
        callback.Loss(1, "mse", name="l")
    with pytest.raises(TypeError, match="loss_configuration"):
        callback.GradNorm(1, None, name="g")


def test_callbacks_run_inside_filter_jit():
    stepper, data = _conv_stepper(), _conv_data()
    cbs = [
        callback.WeightNorm(1),
        callback.Loss(1, OneStepMSE(), name="l"),
        callback.GradNorm(1, OneStepMSE(), name="g"),
    ]

    @eqx.filter_jit
    def run(cb, stepper, data):
        return cb.callback(0, stepper, data)

    for cb in cbs:
        np.testing.assert_allclose(
            run(cb, stepper, data), cb(0, stepper, data)[cb.name], rtol=1e-6
        )
