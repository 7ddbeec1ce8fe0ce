"""Generalized teacher forcing (schedules of `alpha`, every `n` steps) and the symmetry
augmentation wrapper, each against a hand-written reference. The registry
(`tests/registry.py`) runs the shared contracts on both."""

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import conv_stepper, random_windows
from references import ref_teacher

from trainax_fm.configuration import GeneralizedTeacherForcing, Supervised, TeacherForcing

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
