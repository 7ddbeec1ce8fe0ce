"""Generalized teacher forcing (schedules of `alpha`, every `n` steps) and the symmetry
augmentation wrapper, each against a hand-written reference. The registry
(`tests/registry.py`) runs the shared contracts on both; `[training] symmetry_shifts`
is the command line's spelling of the augmentation."""

import inspect
import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import conv_stepper, random_windows
from references import ref_supervised, ref_symmetry_augmentation, ref_teacher
from test_cli import write_config

import trainax_fm as tx

from trainax_fm.configuration import (
    GeneralizedTeacherForcing,
    Supervised,
    SymmetryAugmentation,
    TeacherForcing,
)
from trainax_fm.experiment import ConfigError, validate_config
from trainax_fm.experiment._data import load_data
from trainax_fm.experiment._method_spec import parse_method
from trainax_fm.experiment._setup import build_optimizer, build_trainer

# --- generalized teacher forcing ------------------------------------------------------


def _grad_and_value(fn, stepper):
    return eqx.filter_jit(eqx.filter_value_and_grad(fn))(stepper)


def _assert_close(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-7)
    for x, y in zip(jax.tree_util.tree_leaves(a[1]), jax.tree_util.tree_leaves(b[1])):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("unroll", [True, False])
def test_forcing_alpha_schedule_at_the_step(unroll):
    """An optax schedule of the training step gives the alpha of the update's `step`."""
    schedule = optax.linear_schedule(0.8, 0.2, 10)
    configuration = GeneralizedTeacherForcing(
        3,
        forcing_alpha=schedule,
        forcing_every=1,
        unroll=unroll,
    )
    data, stepper = random_windows(5, 4), conv_stepper(2)
    masks = [[False] * data.shape[0]] * 3
    weights = jnp.ones(3)
    for step in (0, 5):
        alpha = float(schedule(step))
        got = _grad_and_value(lambda s: configuration(s, data, step=step), stepper)
        want = _grad_and_value(
            lambda s: ref_teacher(s, data, 3, weights, False, 1, masks, alpha=alpha),
            stepper,
        )
        _assert_close(got, want)
    with pytest.raises(ValueError, match="step"):
        configuration(stepper, data)


def test_forcing_limits_and_string_schedule():
    """`alpha=0` is the free rollout, `alpha=1` after every step one-step training
    (TeacherForcing with p = 1); a string schedule of a sparse forcing follows the step."""
    data, stepper = random_windows(6, 5), conv_stepper(3)
    free = GeneralizedTeacherForcing(4, forcing_alpha=0.0)
    assert (free.teacher_forcing_probability, free.forcing_every) == (0.0, 1)
    np.testing.assert_allclose(
        free(stepper, data), Supervised(4)(stepper, data), rtol=1e-6
    )
    one_step = TeacherForcing(4, teacher_forcing_probability=1.0)
    forced = GeneralizedTeacherForcing(4, forcing_alpha=1.0)
    np.testing.assert_allclose(forced(stepper, data), one_step(stepper, data), rtol=1e-6)
    sparse = GeneralizedTeacherForcing(4, forcing_alpha="3:1.0,6:0.5", forcing_every=2)
    masks = [[False] * data.shape[0]] * 4
    for step, alpha in ((0, 1.0), (4, 0.5), (None, 0.5)):
        np.testing.assert_allclose(
            sparse(stepper, data, step=step),
            ref_teacher(
                stepper, data, 4, jnp.ones(4), False, 1, masks, alpha=alpha, forcing_every=2
            ),
            rtol=1e-5,
        )


def test_forcing_arguments_are_checked():
    with pytest.raises(ValueError, match=r"forcing_alpha.*\[0, 1\]"):
        GeneralizedTeacherForcing(2, forcing_alpha=1.5)
    with pytest.raises(ValueError, match="forcing_every"):
        GeneralizedTeacherForcing(2, forcing_alpha=0.5, forcing_every=0)
    with pytest.raises(TypeError, match="forcing_alpha"):
        GeneralizedTeacherForcing(2, forcing_alpha=None)
    with pytest.raises(TypeError, match="forcing_alpha"):
        GeneralizedTeacherForcing(2)


def test_teacher_forcing_keeps_its_trainax_signature():
    """TeacherForcing (and so TeacherForcingTrainer) has no new keywords."""
    assert "forcing_alpha" not in inspect.signature(TeacherForcing).parameters


# --- symmetry augmentation ------------------------------------------------------------


class _Stencil(eqx.Module):
    """`a * u + b * (sum of the 2 * D nearest periodic neighbours)`: equivariant under
    shifts, flips and quarter turns of a square grid."""

    a: jax.Array
    b: jax.Array

    def __call__(self, u):
        neighbours = sum(
            jnp.roll(u, s, axis=axis) for axis in range(1, u.ndim) for s in (1, -1)
        )
        return self.a * u + self.b * neighbours


def _fields_2d(seed, window=3, batch=4, channels=1, n=6, m=6):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((batch, window, channels, n, m)), jnp.float32)


def test_augmentation_matches_hand_transformed_windows_2d():
    """Shifts of both axes, a flip of axis 1 and quarter turns on a 6x6 grid: loss and
    gradient equal the inner loss on the windows transformed by hand."""
    inner = Supervised(2, time_level_weights=jnp.array([1.0, 0.5]))
    wrapped = SymmetryAugmentation(inner, flip_axes=(1,), rotations=True)
    stepper = eqx.nn.Conv2d(1, 1, 3, padding=1, padding_mode="CIRCULAR", key=jax.random.key(0))
    data, key = _fields_2d(1), jax.random.key(3)
    got = _grad_and_value(lambda s: wrapped(s, data, key=key), stepper)
    want = _grad_and_value(
        lambda s: ref_symmetry_augmentation(
            s,
            data,
            key,
            lambda s_, d_, k_: ref_supervised(s_, d_, 2, jnp.array([1.0, 0.5]), False, 1),
            shift_axes=(0, 1),
            flip_axes=(1,),
            rotations=True,
        ),
        stepper,
    )
    _assert_close(got, want)
    # The transformation is not the identity: without the wrapper the loss differs.
    assert not np.isclose(float(got[0]), float(inner(stepper, data)))


def test_equivariant_stepper_loses_nothing_to_the_augmentation():
    stepper = _Stencil(jnp.asarray(0.6), jnp.asarray(0.1))
    data = _fields_2d(2)
    inner = Supervised(2)
    wrapped = SymmetryAugmentation(inner, flip_axes=(0, 1), rotations=True)
    plain = _grad_and_value(lambda s: inner(s, data), stepper)
    # Three seeds in one compiled call.
    augmented = eqx.filter_jit(
        jax.vmap(
            lambda k: eqx.filter_value_and_grad(lambda s: wrapped(s, data, key=k))(stepper)
        )
    )(jax.random.split(jax.random.key(0), 3))
    for seed in range(3):
        _assert_close(jax.tree_util.tree_map(lambda x: x[seed], augmented), plain)


def test_vector_channels_change_sign_under_flips():
    """A 1D velocity field `u` on channel 1 and a scalar on channel 0: flipping negates
    channel 1 only, so `u -> -u(-x)` of a pure flip keeps the window's energy."""
    data = random_windows(7, 2, batch=8, channels=2)
    wrapped = SymmetryAugmentation(
        Supervised(1), shift_axes=(), flip_axes=(0,), flip_sign_channels=((1,),)
    )
    augmented = np.asarray(eqx.filter_jit(wrapped.augment)(data, jax.random.key(0)))
    data = np.asarray(data)
    for b in range(data.shape[0]):
        same = np.allclose(augmented[b], data[b])
        flipped = np.allclose(augmented[b, :, 0], data[b, :, 0, ::-1]) and np.allclose(
            augmented[b, :, 1], -data[b, :, 1, ::-1]
        )
        assert same or flipped
    assert not np.allclose(augmented, data)


def test_augmentation_arguments_are_checked():
    inner = Supervised(1)
    with pytest.raises(ValueError, match="one sequence of channels per entry"):
        SymmetryAugmentation(inner, flip_axes=(0, 1), flip_sign_channels=((1,),))
    with pytest.raises(ValueError, match="scalar fields"):
        SymmetryAugmentation(
            inner, flip_axes=(0,), flip_sign_channels=((0,),), rotations=True
        )
    with pytest.raises(ValueError, match="repeat"):
        SymmetryAugmentation(inner, flip_axes=(0, 0))
    with pytest.raises(ValueError, match="non-negative"):
        SymmetryAugmentation(inner, shift_axes=(-1,))
    with pytest.raises(TypeError, match="configuration"):
        SymmetryAugmentation(lambda s, d: 0.0)
    stepper = conv_stepper(0)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="1 spatial axes"):
        SymmetryAugmentation(inner, flip_axes=(1,))(stepper, random_windows(0, 2), key=key)
    with pytest.raises(ValueError, match="square 2D grid"):
        SymmetryAugmentation(inner, rotations=True)(
            _Stencil(1.0, 0.0), _fields_2d(0, n=6, m=4), key=key
        )
    with pytest.raises(ValueError, match="channel"):
        SymmetryAugmentation(inner, flip_axes=(0,), flip_sign_channels=((3,),))(
            stepper, random_windows(0, 2), key=key
        )
    with pytest.raises(ValueError, match="key"):
        SymmetryAugmentation(inner)(stepper, random_windows(0, 2))


# --- the command line -----------------------------------------------------------------


def test_gtf_with_symmetry_shifts_from_the_command_line(tmp_path):
    """`gtf;2;0.5` with `[training] symmetry_shifts = true` in a fresh process: the run
    completes and the saved configuration rebuilds a trainer whose configuration is
    the wrapped method."""
    config = write_config(
        tmp_path / "run.toml",
        training={"num_training_steps": 4, "checkpoint_every": 2, "warmup_steps": 0,
                  "method": "gtf;2;0.50", "symmetry_shifts": True},
    )
    done = subprocess.run(
        [sys.executable, "-m", "trainax_fm", "train", config, "--results", str(tmp_path),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["final_train_loss"] > 0
    saved = tx.experiment.load_config(tmp_path / "tiny" / "config.toml")
    assert saved["training"]["symmetry_shifts"] is True
    assert saved["training"]["method"] == "gtf;2;0.5"
    dataset, saved = load_data(saved)
    method = parse_method(saved["training"]["method"])
    trainer = build_trainer(saved, dataset, method, build_optimizer(saved["training"]))
    assert eqx.tree_equal(
        trainer.loss_configuration,
        SymmetryAugmentation(GeneralizedTeacherForcing(2, forcing_alpha=0.5)),
    )


def test_symmetry_shifts_option_is_checked():
    with pytest.raises(ConfigError, match="training.symmetry_shifts"):
        validate_config({"training": {"symmetry_shifts": 1}})
