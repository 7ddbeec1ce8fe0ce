"""Rollout machinery shared by the configurations.

A rollout is a loop `carry -> (carry, output)` over time levels. It runs either as a
`lax.scan` (compile time independent of the rollout length) or unrolled at trace time
(a Python loop; faster convolutions on XLA:CPU), optionally with `jax.checkpoint`
(remat) every `k` steps. Gradient cuts use trainax's rule: after step `t` (0-based) the
chain is cut if `(t + 1) % cut_bptt_every == 0`.
"""

from typing import Any, Callable, Literal, Optional, Union

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from .._argument_checks import check_positive_int
from .._stepper._conditioned import call_model, vmap_over_samples

Unroll = Union[bool, Literal["auto"]]
Remat = Union[bool, int]

# A short rollout runs faster unrolled on every backend measured: on XLA:CPU a
# convolution inside a loop body runs ~2x slower than in straight-line code (quickstart
# conv, rollout 20: 3x fewer updates/s scanned); on an H200 the same rollout scanned ran
# 2.7x fewer updates/s than a hand-written unrolled loop, at equal compile time
# (`benchmarks/bench_engine.py`). Rollouts up to this length are unrolled by default;
# longer ones are scanned to keep compile time flat.
MAX_AUTO_UNROLL_STEPS = 32


def check_unroll(unroll: Any) -> Unroll:
    if not (isinstance(unroll, bool) or unroll == "auto"):
        raise ValueError(f"`unroll` must be True, False or 'auto', got {unroll!r}.")
    return unroll


def check_remat(remat: Any) -> Remat:
    if isinstance(remat, bool):
        return remat
    return check_positive_int(remat, "remat")


def resolve_unroll(unroll: Unroll, num_steps: int) -> bool:
    """Turn `unroll='auto'` into a concrete choice for this rollout length."""
    if unroll == "auto":
        return num_steps <= MAX_AUTO_UNROLL_STEPS
    return bool(unroll)


def remat_group_size(remat: Remat) -> Optional[int]:
    """Steps per checkpointed group (`None` for no remat)."""
    if remat is False:
        return None
    if remat is True:
        return 1
    return int(remat)


def _take(tree, i):
    return jtu.tree_map(lambda a: a[i], tree)


def _run(body, carry, xs, times, unroll: bool):
    if unroll:
        outputs = []
        for i, t in enumerate(times):
            carry, out = body(carry, _take(xs, i), int(t))
            outputs.append(out)
        return carry, jtu.tree_map(lambda *o: jnp.stack(o), *outputs)
    return jax.lax.scan(
        lambda c, tx: body(c, tx[1], tx[0]), carry, (jnp.asarray(times), xs)
    )


def loop(
    body: Callable[[Any, Any, Any], tuple[Any, Any]],
    carry: PyTree,
    xs: PyTree,
    num_steps: int,
    *,
    unroll: bool,
    remat: Remat = False,
    first_time: int = 0,
) -> tuple[PyTree, PyTree]:
    """Run `body(carry, x_t, t) -> (carry, y_t)` for `t = first_time, ...`.

    `xs` holds one leading entry per step (may be `None`). `t` is a Python int when
    unrolled and a traced integer when scanned. Outputs are stacked on a new leading
    axis.
    """
    times = np.arange(first_time, first_time + num_steps)
    group = remat_group_size(remat)
    if group is None:
        return _run(body, carry, xs, times, unroll)

    def run_group(c, x, group_times):
        return jax.checkpoint(lambda c_, x_: _run(body, c_, x_, group_times, unroll))(c, x)

    num_full = num_steps // group
    outputs = []
    if num_full > 0:
        full_times = times[: num_full * group].reshape(num_full, group)
        full_xs = jtu.tree_map(
            lambda a: a[: num_full * group].reshape(num_full, group, *a.shape[1:]), xs
        )
        if unroll:
            for g in range(num_full):
                carry, out = run_group(carry, _take(full_xs, g), full_times[g])
                outputs.append(out)
        else:
            offsets = jnp.arange(num_full) * group + first_time

            def outer(c, gx):
                offset, x = gx

                def inner(c_, x_):
                    def shifted(cc, tx):
                        return body(cc, tx[1], tx[0] + offset)

                    return jax.lax.scan(shifted, c_, (jnp.arange(group), x_))

                return jax.checkpoint(inner)(c, x)

            carry, out = jax.lax.scan(outer, carry, (offsets, full_xs))
            outputs.append(jtu.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), out))
    remainder = num_steps - num_full * group
    if remainder:
        rest_times = times[num_full * group :]
        rest_xs = jtu.tree_map(lambda a: a[num_full * group :], xs)
        carry, out = run_group(carry, rest_xs, rest_times)
        outputs.append(out)
    return carry, jtu.tree_map(lambda *o: jnp.concatenate(o), *outputs)


def cut_after(state: PyTree, t, every: int, enabled: bool) -> PyTree:
    """`stop_gradient` on `state` after step `t` if `enabled` and `(t+1) % every == 0`."""
    if not enabled:
        return state
    if isinstance(t, (int, np.integer)):
        return jax.lax.stop_gradient(state) if (t + 1) % every == 0 else state
    cut = (t + 1) % every == 0
    return jtu.tree_map(lambda a: jnp.where(cut, jax.lax.stop_gradient(a), a), state)


def maybe_cut(state: PyTree, enabled: bool) -> PyTree:
    return jax.lax.stop_gradient(state) if enabled else state


# --- states and history -------------------------------------------------------------


def time_slice(data: PyTree, start: int, stop: Optional[int] = None) -> PyTree:
    """`data[:, start:stop]` on every leaf (windows are `(B, W, ...)`)."""
    return jtu.tree_map(lambda a: a[:, start:stop], data)


def state_at(data: PyTree, t: int) -> PyTree:
    """`data[:, t]` on every leaf: the batch of states at window time `t`."""
    return jtu.tree_map(lambda a: a[:, t], data)


def time_major(data: PyTree) -> PyTree:
    """`(B, W, ...) -> (W, B, ...)` on every leaf, for scanning over time."""
    return jtu.tree_map(lambda a: jnp.swapaxes(a, 0, 1), data)


def window_length(data: PyTree) -> int:
    return jtu.tree_leaves(data)[0].shape[1]


def stack_history(history: PyTree) -> PyTree:
    """`(B, H, C, ...) -> (B, H*C, ...)`: the H states concatenated on the channel axis."""

    def merge(a):
        if a.shape[1] == 1:
            return a[:, 0]
        return a.reshape(a.shape[0], a.shape[1] * a.shape[2], *a.shape[3:])

    return jtu.tree_map(merge, history)


def push_history(history: PyTree, new_state: PyTree) -> PyTree:
    """Drop the oldest state of `(B, H, ...)` and append `new_state` `(B, ...)`."""
    return jtu.tree_map(
        lambda h, s: jnp.concatenate([h[:, 1:], s[:, None]], axis=1), history, new_state
    )


def _call_with_key(model: Callable, inputs: PyTree, key):
    return model(inputs, key=key)


def apply_stepper(
    stepper: Callable, inputs: PyTree, like: PyTree, name: str = "stepper", *, keys=None
):
    """`jax.vmap(stepper)(inputs)` with a clear error if the output does not look like `like`.

    With `keys` (one per sample) a stochastic stepper is called as
    `stepper(input, key=key)` on each sample.
    """
    if keys is None:
        output = vmap_over_samples(call_model, stepper, inputs, name=name)
    else:
        output = vmap_over_samples(_call_with_key, stepper, inputs, keys, name=name)
    out_struct = jtu.tree_structure(output)
    like_struct = jtu.tree_structure(like)
    if out_struct != like_struct:
        raise ValueError(
            f"`{name}` returned a PyTree of structure {out_struct}, but the data states "
            f"have structure {like_struct}; the stepper must map a state to a state."
        )
    for out_leaf, like_leaf in zip(jtu.tree_leaves(output), jtu.tree_leaves(like)):
        if out_leaf.shape != like_leaf.shape:
            raise ValueError(
                f"`{name}` maps a batch of inputs to shape {tuple(out_leaf.shape)}, but "
                f"the data states (with batch axis) have shape {tuple(like_leaf.shape)}. "
                "The network must return one state (C, *spatial) with the channels and "
                "resolution of the data; with `num_input_steps=H` it receives H*C "
                "input channels and must still return C."
            )
        if out_leaf.dtype != like_leaf.dtype:
            raise TypeError(
                f"`{name}` returns {out_leaf.dtype} but the data is {like_leaf.dtype}. "
                "Use one precision throughout: cast the data with `.astype(...)` or the "
                "network with `jax.tree_util.tree_map(lambda x: x.astype(...), net)`."
            )
    return output


def tree_loss(loss_fn: Callable, prediction: PyTree, target: Optional[PyTree] = None, **kwargs):
    """A time-level loss summed over the leaves of PyTree states."""
    if target is None:
        return sum(loss_fn(p, **kwargs) for p in jtu.tree_leaves(prediction))
    return sum(
        loss_fn(p, r, **kwargs)
        for p, r in zip(jtu.tree_leaves(prediction), jtu.tree_leaves(target))
    )


def required_length_error(config_name: str, needed: int, got: int, what: str) -> ValueError:
    return ValueError(
        f"{config_name} needs windows of at least {needed} snapshots ({what}), but the "
        f"data windows have {got}. Build the windows with `sub_trajectory_len >= "
        f"{needed}` (trainers do this for you) or reduce the number of steps."
    )
