"""Autoregressive rollout of a (possibly stochastic) stepper for inference and evaluation.

The rollout is one `jax.lax.scan` over time, so its compile time does not grow with the
number of steps. It is compiled with `eqx.filter_jit` (repeated calls with the same
stepper structure and shapes reuse the compilation) and is a pure function of arrays:
it also runs inside `jax.jit` / `eqx.filter_jit` (with `num_steps` static), under
`jax.vmap`, and can be differentiated.
"""

from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_bool, check_positive_int
from .._stepper._block import BlockStepper
from .._stepper._conditioned import SampleConstants, bind_constants, count_conditioned
from .._stepper._protocol import needs_key
from ._probe import probe_stepper, shape_hint


def rollout(
    stepper: Callable,
    ic: Float[Array, "*batch_history_state"],
    num_steps: int,
    *,
    key: Optional[PRNGKeyArray] = None,
    include_init: bool = False,
    num_input_steps: int = 1,
    num_samples: Optional[int] = None,
    batched: bool = False,
    constant_scalars: Optional[Float[Array, "*batch num_scalars"]] = None,
    constant_fields: Optional[Float[Array, "*batch_and_fields"]] = None,
) -> Float[Array, "*ensemble_batch_time_state"]:
    """Roll a stepper out autoregressively with `jax.lax.scan`.

    A *state* is shaped `(C, *spatial)` (an ODE state is `(C,)`), and the stepper maps
    one state, without batch axis, to the next.

    **History.** With `num_input_steps=H > 1`, `ic` holds the last `H` states
    `(H, C, *spatial)`, oldest first. The stepper receives them concatenated on the
    channel axis, `(H*C, *spatial)`, and returns ONE state `(C, *spatial)`; the window
    then drops its oldest state and appends the new one.

    **Batch.** Whether `ic` has a leading batch axis is never guessed from its rank
    (a `(B, C, N)` batch and a `(C, X, Y)` 2D state look alike). `batched=False` (the
    default) means `ic` is one state (or one history window); `batched=True` means a
    leading batch axis `(B, ...)` over which the rollout is `jax.vmap`-ed, so the
    stepper still sees single states.

    **Stochastic steppers.** A stochastic stepper accepts a keyword argument `key` and
    is called as `stepper(x, key=subkey)` with a fresh key at every step. Keys are
    derived from `key` by splitting, in this order:

    1. with `num_samples=M`: `member_keys = jax.random.split(key, M)`, one per member;
    2. with `batched=True`: `jax.random.split(member_key, B)`, one per trajectory
        (`member_key = key` without an ensemble);
    3. per trajectory: `step_keys = jax.random.split(trajectory_key, num_steps)`; the
        step that produces output index `t` (not counting the initial state) uses
        `step_keys[t]`.

    A deterministic stepper is called as `stepper(x)` and must be rolled out with
    `key=None`. A stepper with an attribute `needs_key = True`, or one that raises a
    `TypeError` about `key` when called without it, makes `key=None` a `ValueError`.

    **Arguments:**

    - `stepper`: callable mapping `(H*C, *spatial)` to `(C, *spatial)` (`H=1`: a
        state to the next state); any `eqx.Module` or function.
    - `ic`: the initial condition, shaped as described above.
    - `num_steps`: number of stepper calls, a positive Python int (static).
    - `key`: a JAX PRNG key for stochastic steppers, else `None`.
    - `include_init`: if True, the initial state is prepended to the output (with
        history: the last, i.e. most recent, state of `ic`).
    - `num_input_steps`: `H`, the number of past states the stepper sees.
    - `num_samples`: if given, roll out an ensemble of `M = num_samples` independent
        members (requires `key`); they share the initial condition.
    - `batched`: whether `ic` carries a leading batch axis (see above).
    - `constant_scalars`, `constant_fields`: the constants of a conditioned stepper
        (one holding [`trainax_fm.ConditionedNetwork`][]s): scalars `(P,)` and fields
        `(F, *spatial)`, with a leading batch axis `(B, ...)` when `batched=True`.
        Every step of trajectory `b` sees the constants of `b`.

    **Block steppers.** A [`trainax_fm.BlockStepper`][] predicting `k` states per call
    is called `num_steps` times and its blocks are returned as single states, so
    `T = num_steps * k`. `num_input_steps` must equal the stepper's
    `num_context_steps` (its `num_input_steps` unless it has `num_input_blocks > 1`),
    and `ic` holds that many states as above. The context slides: after each call the
    newest `k` predicted states enter it and the oldest `k` leave.

    **Returns:**

    - The trajectory `(T, C, *spatial)` with `T = num_steps` (or `num_steps + 1` with
        `include_init`); `(B, T, C, *spatial)` if batched; with an ensemble the member
        axis comes first: `(M, T, ...)` or `(M, B, T, ...)`.

    **Raises:**

    - `TypeError` / `ValueError` for a non-positive or non-integer `num_steps`,
        `num_input_steps` or `num_samples`; `ic` of too low rank or with a history axis
        that is not `H` long; a stepper output that is not one state shaped like the
        input state; a missing or unexpected `key`.
    """
    num_steps = check_positive_int(num_steps, "num_steps")
    num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
    include_init = check_bool(include_init, "include_init")
    batched = check_bool(batched, "batched")
    if num_samples is not None:
        num_samples = check_positive_int(num_samples, "num_samples")
        if key is None:
            raise ValueError(
                f"`num_samples={num_samples}` asks for an ensemble of stochastic "
                "rollouts, which needs a random key; pass `key=jax.random.key(seed)`."
            )
    if key is None and needs_key(stepper):
        raise ValueError(
            "The stepper declares `needs_key = True` (it is stochastic) but `key=None`. "
            "Pass `key=jax.random.key(seed)` to `rollout`; the stepper is then called "
            "as `stepper(x, key=subkey)` with a fresh key per step."
        )

    run = _block_rollout if isinstance(stepper, BlockStepper) else _rollout_states
    return run(
        stepper,
        jnp.asarray(ic),
        num_steps,
        key=key,
        include_init=include_init,
        num_input_steps=num_input_steps,
        num_samples=num_samples,
        batched=batched,
        constant_scalars=constant_scalars,
        constant_fields=constant_fields,
    )


def _rollout_states(
    stepper,
    ic,
    num_steps,
    *,
    key,
    include_init,
    num_input_steps,
    num_samples,
    batched,
    constant_scalars,
    constant_fields,
):
    """`rollout` of a stepper that maps a state to the next, on checked arguments."""
    constants = _check_constants(stepper, ic, constant_scalars, constant_fields, batched)
    history = num_input_steps > 1
    min_rank = 1 + int(history) + int(batched)
    if ic.ndim < min_rank:
        raise ValueError(
            f"`ic` has shape {tuple(ic.shape)} (rank {ic.ndim}) but needs rank >= "
            f"{min_rank}. " + shape_hint(batched, num_input_steps)
        )
    window_shape = tuple(ic.shape[1:] if batched else ic.shape)
    if history and window_shape[0] != num_input_steps:
        raise ValueError(
            f"`ic` has shape {tuple(ic.shape)}: its history axis has "
            f"{window_shape[0]} entries but num_input_steps={num_input_steps}. "
            + shape_hint(batched, num_input_steps)
        )
    state_shape = window_shape[1:] if history else window_shape
    num_channels = state_shape[0]
    input_shape = (num_input_steps * num_channels,) + tuple(state_shape[1:])

    hint = shape_hint(batched, num_input_steps)
    probed = stepper
    if constants is not None:
        first = jax.tree_util.tree_map(lambda c: c[0], constants) if batched else constants
        probed = bind_constants(stepper, first.scalars, first.fields)
    out = probe_stepper(probed, jax.ShapeDtypeStruct(input_shape, ic.dtype), key, hint)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            "The stepper must return a single array (one state), got a PyTree with "
            f"structure {jax.tree_util.tree_structure(out)}."
        )
    if tuple(out.shape) != tuple(state_shape):
        raise ValueError(
            f"The stepper maps an input of shape {input_shape} to shape "
            f"{tuple(out.shape)}, but the rollout needs one state of shape "
            f"{tuple(state_shape)} (C, *spatial) back. Check that the network's output "
            "channels equal the state channels (with num_input_steps=H it takes H*C "
            "channels and returns C), and that a batched `ic` is passed with "
            "batched=True. " + hint
        )
    if out.dtype != ic.dtype:
        # e.g. an integer IC fed to a float network: carry the network's dtype.
        ic = ic.astype(out.dtype)
        recheck = probe_stepper(
            probed, jax.ShapeDtypeStruct(input_shape, ic.dtype), key, hint
        )
        if recheck.dtype != ic.dtype:
            raise ValueError(
                f"The stepper returns dtype {recheck.dtype} for a {ic.dtype} input; a "
                "rollout needs a stepper that preserves the dtype of its state."
            )

    return _scan_rollout(
        stepper,
        ic,
        key,
        constants,
        num_steps=num_steps,
        include_init=include_init,
        num_input_steps=num_input_steps,
        num_samples=num_samples,
        batched=batched,
    )


@eqx.filter_jit
def _scan_rollout(
    stepper: Callable,
    ic: Array,
    key: Optional[PRNGKeyArray],
    constants: Optional[SampleConstants],
    *,
    num_steps: int,
    include_init: bool,
    num_input_steps: int,
    num_samples: Optional[int],
    batched: bool,
) -> Array:
    """The rollout proper, on validated arguments.

    Jitted so that repeated eager calls with the same stepper structure and shapes
    reuse one compilation (inside an outer `jit` it is simply inlined).
    """
    history = num_input_steps > 1
    window_shape = ic.shape[1:] if batched else ic.shape
    state_shape = window_shape[1:] if history else window_shape
    input_shape = (num_input_steps * state_shape[0],) + tuple(state_shape[1:])

    stochastic = key is not None

    def one_trajectory(window, trajectory_key, trajectory_constants):
        if trajectory_constants is None:
            step = stepper
        else:
            step = bind_constants(
                stepper, trajectory_constants.scalars, trajectory_constants.fields
            )

        def body(current, step_key):
            if history:
                stepper_input = current.reshape(input_shape)
            else:
                stepper_input = current
            if stochastic:
                new_state = step(stepper_input, key=step_key)
            else:
                new_state = step(stepper_input)
            if history:
                current = jnp.concatenate([current[1:], new_state[None]], axis=0)
            else:
                current = new_state
            return current, new_state

        step_keys = jax.random.split(trajectory_key, num_steps) if stochastic else None
        _, trajectory = jax.lax.scan(body, window, step_keys, length=num_steps)
        if include_init:
            init = window[-1] if history else window
            trajectory = jnp.concatenate([init[None], trajectory], axis=0)
        return trajectory

    def member(member_key):
        if not batched:
            return one_trajectory(ic, member_key, constants)
        if stochastic:
            batch_keys = jax.random.split(member_key, ic.shape[0])
            return jax.vmap(one_trajectory)(ic, batch_keys, constants)
        return jax.vmap(one_trajectory, in_axes=(0, None, 0))(ic, None, constants)

    if num_samples is None:
        return member(key)
    return jax.vmap(member)(jax.random.split(key, num_samples))


def _check_constants(stepper, ic, scalars, fields, batched: bool) -> Optional[SampleConstants]:
    """The rollout's constants, checked against the stepper and `ic`; `None` if none."""
    if scalars is None and fields is None:
        return None
    if count_conditioned(stepper) == 0:
        raise ValueError(
            "`constant_scalars`/`constant_fields` were given but the stepper holds no "
            "trainax_fm.ConditionedNetwork to receive them; wrap its network with "
            "`ConditionedNetwork(network)`."
        )
    lead = (ic.shape[0],) if batched else ()
    where = f"batched={batched}"
    if scalars is not None:
        scalars = jnp.asarray(scalars)
        if scalars.ndim != len(lead) + 1 or scalars.shape[: len(lead)] != lead:
            expected = "(B, P)" if batched else "(P,)"
            raise ValueError(
                f"`constant_scalars` must be shaped {expected} with {where} and `ic` of "
                f"shape {tuple(ic.shape)}, got {tuple(scalars.shape)}."
            )
    if fields is not None:
        fields = jnp.asarray(fields)
        if fields.ndim < len(lead) + 1 or fields.shape[: len(lead)] != lead:
            expected = "(B, F, *spatial)" if batched else "(F, *spatial)"
            raise ValueError(
                f"`constant_fields` must be shaped {expected} with {where} and `ic` of "
                f"shape {tuple(ic.shape)}, got {tuple(fields.shape)}."
            )
    return SampleConstants(scalars, fields)


def _block_rollout(
    stepper: BlockStepper,
    ic,
    num_steps: int,
    *,
    include_init: bool,
    num_input_steps: int,
    batched: bool,
    **options,
):
    """`rollout` of a block stepper: roll out blocks, return single states.

    The `H = num_input_blocks` history blocks hold the given states at their end; the
    states before them are zeros the stepper never sees (its network reads only the
    latest `num_context_steps` states). Each call appends its block to the history and
    drops the oldest one, so the context slides by `k` states.
    """
    context = stepper.num_context_steps
    if num_input_steps != context:
        raise ValueError(
            f"The BlockStepper sees num_input_steps={context} state(s) "
            f"but `rollout` got num_input_steps={num_input_steps}; pass "
            f"num_input_steps={context} and an `ic` with that many states."
        )
    history = num_input_steps > 1
    min_rank = 1 + int(history) + int(batched)
    if ic.ndim < min_rank or (history and ic.shape[int(batched)] != num_input_steps):
        raise ValueError(
            f"`ic` has shape {tuple(ic.shape)}. " + shape_hint(batched, num_input_steps)
        )
    time_axis = int(batched)
    states = ic if history else jnp.expand_dims(ic, time_axis)
    k = stepper.num_output_steps
    num_blocks = stepper.num_input_blocks
    padding = [(0, 0)] * states.ndim
    padding[time_axis] = (num_blocks * k - num_input_steps, 0)
    padded = jnp.pad(states, padding)
    lead_shape = padded.shape[:time_axis]
    block_state = (k * padded.shape[time_axis + 1],) + padded.shape[time_axis + 2 :]
    if num_blocks == 1:
        block = padded.reshape(lead_shape + block_state)
    else:
        block = padded.reshape(lead_shape + (num_blocks,) + block_state)
    blocks = _rollout_states(
        stepper,
        block,
        num_steps,
        include_init=False,
        num_input_steps=num_blocks,
        batched=batched,
        **options,
    )
    # (..., num_steps, k*C, *spatial) -> (..., num_steps*k, C, *spatial)
    state_shape = states.shape[time_axis + 1 :]
    lead = blocks.ndim - len(state_shape) - 1  # ensemble and batch axes
    trajectory = blocks.reshape(blocks.shape[:lead] + (num_steps * k,) + state_shape)
    if include_init:
        init = jnp.take(states, num_input_steps - 1, axis=time_axis)
        init = jnp.broadcast_to(init, trajectory.shape[:lead] + state_shape)
        trajectory = jnp.concatenate([jnp.expand_dims(init, lead), trajectory], axis=lead)
    return trajectory
