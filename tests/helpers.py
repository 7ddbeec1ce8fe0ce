"""Shared helpers for the test-suite: tiny steppers, tiny data, loss comparisons.

Import from a test module with `from helpers import ...` (pytest puts `tests/` on the
path because the directory has no `__init__.py`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

BATCH = 3
NUM_POINTS = 8


# --- steppers -----------------------------------------------------------------------


def conv_stepper(seed: int = 0, in_channels: int = 1, out_channels: int = 1):
    """A tiny periodic convolution `(in_channels, N) -> (out_channels, N)`."""
    return eqx.nn.Conv1d(
        in_channels,
        out_channels,
        3,
        padding=1,
        padding_mode="CIRCULAR",
        key=jax.random.key(seed),
    )


def roll_ref(u):
    """Linear reference stepper: shift every channel by one grid point (periodic)."""
    return jnp.roll(u, 1, axis=-1)


def smooth_ref(u):
    """Linear reference stepper: a fixed three-point smoothing along the last axis."""
    return 0.25 * jnp.roll(u, 1, axis=-1) + 0.5 * u + 0.25 * jnp.roll(u, -1, axis=-1)


def heat_residuum(u_next, u_prev):
    """Residuum `u_next - smooth(u_prev)` on BATCHED states `(B, C, N)`.

    Raises at trace time if it is handed unbatched states, so a configuration that
    vmaps the residuum function is caught.
    """
    if u_next.ndim != 3 or u_prev.ndim != 3:
        raise AssertionError(
            f"residuum_fn must receive batched states (B, C, N), got {u_next.shape}"
        )
    return u_next - smooth_ref(u_prev)


class TupleStepper(eqx.Module):
    """Maps a state `(a, b)` with `a: (1, N)`, `b: (2, N)` to a state of the same tree."""

    conv_a: eqx.nn.Conv1d
    conv_b: eqx.nn.Conv1d

    def __init__(self, seed: int = 0):
        self.conv_a = conv_stepper(seed, 3, 1)
        self.conv_b = conv_stepper(seed + 1, 3, 2)

    def __call__(self, state):
        a, b = state
        joint = jnp.concatenate([a, b], axis=0)
        return (self.conv_a(joint), self.conv_b(joint))


class DictStepper(eqx.Module):
    """Like `TupleStepper` for a dict state `{"u": (1, N), "v": (2, N)}`."""

    inner: TupleStepper

    def __init__(self, seed: int = 0):
        self.inner = TupleStepper(seed)

    def __call__(self, state):
        a, b = self.inner((state["u"], state["v"]))
        return {"u": a, "v": b}


# --- data ---------------------------------------------------------------------------


def random_windows(
    seed: int, window: int, *, batch=BATCH, channels=1, num_points=NUM_POINTS
):
    """Random float32 windows `(batch, window, channels, num_points)`.

    Drawn with NumPy: eager `jax.random` would compile anew for every shape.
    """
    rng = np.random.default_rng(seed)
    return jnp.asarray(
        rng.standard_normal((batch, window, channels, num_points)), jnp.float32
    )


def random_weights(seed: int, length: int):
    """Positive random weights (float32) of the given length."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0.3, 1.7, size=length), dtype=jnp.float32)


def apply_each(stepper, states):
    """Apply `stepper` (which maps ONE state) to every state of a batch."""
    return jax.vmap(stepper)(states)


def mse(prediction, target=None):
    """Batch mean of the per-state mean squared entry (trainax's MSELoss)."""
    error = prediction if target is None else prediction - target
    per_state = jnp.mean(error**2, axis=tuple(range(1, error.ndim)))
    return jnp.mean(per_state)


# --- comparing losses and gradients -------------------------------------------------


def value_and_grad(fn, stepper, *, jit=False):
    """`(value, grad leaves)` of `fn(stepper)` w.r.t. the array leaves of `stepper`.

    Eager by default: repeated calls of the same structure then reuse the compiled
    primitives. `jit=True` compiles `fn` once, cheaper for one-off structures.
    """
    function = eqx.filter_value_and_grad(fn)
    if jit:
        function = eqx.filter_jit(function)
    value, grads = function(stepper)
    return value, jtu.tree_leaves(eqx.filter(grads, eqx.is_array))


def assert_value_and_grad_close(actual, expected, *, rtol=1e-5, atol=1e-6, label=""):
    (value, grads), (ref_value, ref_grads) = actual, expected
    np.testing.assert_allclose(
        np.asarray(value),
        np.asarray(ref_value),
        rtol=rtol,
        atol=atol,
        err_msg=f"loss {label}",
    )
    assert len(grads) == len(ref_grads), label
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(r), rtol=rtol, atol=atol, err_msg=f"grad {label}"
        )
