"""Mixed precision: networks compute in bfloat16/float16, parameters, optimizer state and
losses stay float32; kept submodules compute in float32; float16 loss scaling."""

import importlib
import pkgutil
import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pdequinox as pdeqx
import pytest

import trainax_fm
import trainax_fm as tx
from trainax_fm._loop._precision import WRAPPER_TYPES

KEY = jax.random.PRNGKey(0)


def upwind_conv():
    return eqx.nn.Conv1d(
        1, 1, 2, padding=((0, 1),), padding_mode="CIRCULAR", use_bias=False,
        key=jax.random.PRNGKey(1),
    )


def conv_net():
    return pdeqx.arch.ConvNet(1, 1, 1, hidden_channels=8, depth=2, key=jax.random.PRNGKey(3))


@pytest.fixture(scope="module")
def advection():
    return tx.sample_data.advection_1d_periodic(cfl=-0.75, key=KEY)


def final_loss(data, network, precision, steps=150, **options):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-2), num_training_steps=steps, batch_size=16,
        num_rollout_steps=3, precision=precision, **options,
    )
    run = trainer.train(network, jax.random.PRNGKey(2), spawn_tqdm=False)
    return float(np.mean(run.loss_history[-20:])), run


@pytest.mark.parametrize("make_network", [upwind_conv, conv_net], ids=["quickstart", "convnet"])
def test_bfloat16_reaches_the_float32_loss(advection, make_network):
    reference, _ = final_loss(advection, make_network(), None)
    low, run = final_loss(advection, make_network(), tx.MixedPrecision("bfloat16"))
    assert abs(low - reference) <= 0.05 * reference, (low, reference)
    # The trained parameters and the optimizer state stay float32.
    for leaf in jax.tree_util.tree_leaves((run.stepper, run.opt_state)):
        if eqx.is_inexact_array(leaf):
            assert leaf.dtype == jnp.float32


class TinyNet(eqx.Module):
    layer: eqx.nn.Linear

    def __call__(self, x):
        return x + self.layer(x.reshape(-1)).reshape(x.shape) * 1e-3


def test_float16_loss_scaling_learns_where_plain_float16_flushes_gradients_to_zero():
    # States of size 1e-3 and a 1e-3 output scale give float16 cotangents around 1e-8,
    # below float16's smallest number: without scaling they flush to zero and nothing
    # trains. (The large learning rate makes float32's tiny updates visible.)
    data = 1e-3 * jax.random.normal(KEY, (4, 6, 1, 4))
    network = TinyNet(eqx.nn.Linear(4, 4, key=KEY))

    def change(precision):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.sgd(1e4), num_training_steps=3, batch_size=4,
            precision=precision,
        )
        trained = trainer.train(network, KEY, spawn_tqdm=False).stepper
        return np.asarray(trained.layer.weight - network.layer.weight)

    reference = change(None)
    assert np.abs(reference).max() > 1e-6
    np.testing.assert_array_equal(change(tx.MixedPrecision("float16", loss_scale=1.0)), 0.0)
    scaled = change(tx.MixedPrecision("float16", initial_scale=2.0**24))
    np.testing.assert_allclose(scaled, reference, rtol=0.05, atol=0.05 * np.abs(reference).max())


def test_dynamic_loss_scale_recovers_where_a_fixed_large_scale_overflows(advection):
    # A fixed 2**30 overflows float16 in the backward pass every update: the parameters
    # become NaN and training stops. The dynamic scale skips those updates and halves.
    with pytest.raises(tx.NonFiniteLossError):
        final_loss(advection, upwind_conv(),
                   tx.MixedPrecision("float16", loss_scale=2.0**30), steps=30)
    loss, run = final_loss(
        advection, upwind_conv(), tx.MixedPrecision("float16", initial_scale=2.0**30),
        steps=60,
    )
    assert np.isfinite(loss)
    scale = run.opt_state.loss_scale.scale
    assert scale < 2.0**30  # it shrank until the gradients fit
    assert np.all(np.isfinite(run.loss_history))


class SpectralLayer(eqx.Module):
    weight: jax.Array

    def __call__(self, x):
        modes = jnp.fft.rfft(x, axis=-1)
        return jnp.fft.irfft(modes * self.weight, n=x.shape[-1], axis=-1)


class SpectralNet(eqx.Module):
    lift: eqx.nn.Conv1d
    spectral: SpectralLayer
    project: eqx.nn.Conv1d

    def __call__(self, x):
        return self.project(jax.nn.gelu(self.spectral(self.lift(x))))


def spectral_net():
    keys = jax.random.split(KEY, 2)
    return SpectralNet(
        eqx.nn.Conv1d(1, 4, 1, key=keys[0]),
        SpectralLayer(jnp.ones((4, 17), jnp.complex64)),
        eqx.nn.Conv1d(4, 1, 1, key=keys[1]),
    )


def equations(jaxpr):
    for equation in jaxpr.eqns:
        yield equation
        for param in equation.params.values():
            for sub in param if isinstance(param, (tuple, list)) else [param]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from equations(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from equations(sub)


def test_a_kept_fft_layer_computes_in_float32_inside_the_compiled_update():
    data = jax.random.normal(KEY, (2, 4, 1, 32))
    policy = tx.MixedPrecision("bfloat16", keep_float32=(SpectralLayer,))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=2, batch_size=2,
        precision=policy,
    )
    problem = trainer.make_problem()
    batch = trainer.trajectory_sub_stacker(jnp.arange(2))
    jaxpr = jax.make_jaxpr(lambda s: problem.loss(s, batch, KEY, 0))(spectral_net())
    ffts = [e for e in equations(jaxpr.jaxpr) if e.primitive.name == "fft"]
    convolutions = [
        e for e in equations(jaxpr.jaxpr) if e.primitive.name == "conv_general_dilated"
    ]
    assert ffts and convolutions
    for equation in ffts:
        assert equation.invars[0].aval.dtype in (jnp.float32, jnp.complex64), equation
    for equation in convolutions:
        assert equation.invars[0].aval.dtype == jnp.bfloat16, equation
        assert equation.invars[1].aval.dtype == jnp.bfloat16, equation
    assert jaxpr.out_avals[0].dtype == jnp.float32  # the loss
    # Kept by class name, the same.
    by_name = tx.MixedPrecision("bfloat16", keep_float32="SpectralLayer")
    assert by_name.is_kept(spectral_net().spectral)
    # Trained, it runs and keeps float32 parameters (complex ones untouched).
    run = trainer.train(spectral_net(), KEY, spawn_tqdm=False)
    assert run.stepper.spectral.weight.dtype == jnp.complex64
    assert run.stepper.lift.weight.dtype == jnp.float32


def test_an_fft_layer_not_kept_fails_with_advice():
    data = jax.random.normal(KEY, (2, 4, 1, 32))
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=2, batch_size=2,
        precision=tx.MixedPrecision("bfloat16"),
    )
    with pytest.raises(ValueError, match="keep_float32"):
        trainer.train(spectral_net(), KEY, spawn_tqdm=False)


def test_resume_with_float16_loss_scaling_is_bit_identical(tmp_path, advection):
    policy = tx.MixedPrecision("float16", initial_scale=2.0**20, growth_interval=3)

    def make():
        return tx.trainer.SupervisedTrainer(
            advection, optimizer=optax.adam(1e-2), num_training_steps=12, batch_size=8,
            num_rollout_steps=2, precision=policy, steps_per_dispatch=1,
        )

    full = make().train(upwind_conv(), KEY, spawn_tqdm=False)
    path = tmp_path / "state.eqx"
    make().train(upwind_conv(), KEY, num_steps=5, checkpoint_path=path, spawn_tqdm=False)
    state = tx.load_train_state(path, upwind_conv(), make().optimizer)
    resumed = make().train(resume_from=state, spawn_tqdm=False)
    np.testing.assert_array_equal(resumed.stepper.weight, full.stepper.weight)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    np.testing.assert_array_equal(
        resumed.opt_state.loss_scale.scale, full.opt_state.loss_scale.scale
    )


def test_seeds_and_validation_run_in_mixed_precision(advection):
    trainer = tx.trainer.SupervisedTrainer(
        advection, optimizer=optax.adam(1e-2), num_training_steps=6, batch_size=8,
        num_seeds=2, precision=tx.MixedPrecision(), validation_data=advection[:4],
        validate_every=3, validation_metrics=("loss", "nrmse@2"),
    )
    steppers = jax.vmap(lambda k: upwind_conv())(jax.random.split(KEY, 2))
    run = trainer.train(steppers, jax.random.split(KEY, 2), spawn_tqdm=False)
    assert run.loss_history.shape == (2, 6)
    assert np.all(np.isfinite(run.loss_history))
    assert run.validation is not None


def test_flow_matching_trains_in_mixed_precision(advection):
    velocity = tx.flow.ConditionalVelocity(
        pdeqx.arch.ConvNet(1, 3, 1, hidden_channels=8, depth=1, key=KEY)
    )
    trainer = tx.trainer.FlowMatchingTrainer(
        advection, optimizer=optax.adam(1e-3), num_training_steps=5, batch_size=8,
        precision=tx.MixedPrecision(),
    )
    run = trainer.train(velocity, KEY, spawn_tqdm=False)
    assert np.all(np.isfinite(run.loss_history))


@pytest.mark.parametrize(
    "arguments, error, words",
    [
        (dict(compute_dtype="float64"), ValueError, "'bfloat16' or 'float16'"),
        (dict(keep_float32=(3,)), TypeError, "Module classes or class names"),
        (dict(loss_scale=-1.0), ValueError, "`loss_scale`"),
        (dict(growth_interval=0), ValueError, "`growth_interval`"),
    ],
)
def test_bad_policies_are_refused(arguments, error, words):
    with pytest.raises(error, match=words):
        tx.MixedPrecision(**arguments)


def test_precision_must_be_a_policy(advection):
    with pytest.raises(TypeError, match="`precision` must be a trainax_fm.MixedPrecision"):
        tx.trainer.SupervisedTrainer(
            advection, optimizer=optax.adam(1e-2), num_training_steps=2, batch_size=2,
            precision="bfloat16",
        )


def test_every_wrapper_module_is_known_to_the_policy():
    # The policy treats any Module it does not know as a network and computes it in low
    # precision, hiding its attributes from the configuration: every module of
    # trainax_fm that wraps networks must be in WRAPPER_TYPES.
    # The reference and residuum wrappers are never part of the trained stepper.
    not_in_steppers = ("_ReferenceInNormalizedSpace", "_ResiduumInNormalizedSpace")
    unknown = []
    for package in (trainax_fm._stepper, trainax_fm.flow):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            unknown += [
                value.__qualname__ for value in vars(module).values()
                if isinstance(value, type) and issubclass(value, eqx.Module)
                and value.__module__ == module.__name__
                and not issubclass(value, WRAPPER_TYPES)
                and value.__name__ not in not_in_steppers
            ]
    assert not unknown, f"add these to WRAPPER_TYPES in _loop/_precision.py: {unknown}"


def test_the_how_to_page_runs_as_written():
    page = Path(__file__).parents[1] / "docs" / "how-to" / "mixed-precision.md"
    blocks = re.findall(r"^```python\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert namespace["losses"].shape == (20,)
    assert namespace["precision"].is_kept(eqx.nn.LayerNorm(3))
