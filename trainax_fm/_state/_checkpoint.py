"""Atomic, versioned checkpoints of a `TrainState`.

File layout: one JSON header line (magic, format version, step, shapes needed to
rebuild the tree), then the leaves written by `eqx.tree_serialise_leaves`. Files are
written to a temporary file in the target directory and moved into place with
`os.replace`, so an interrupted write never damages the previous checkpoint.

Under several processes (`jax.distributed`) a checkpoint is still one file, written
once, by process 0: arrays that no single process holds entirely (sharded over the
devices of several processes) are first gathered with
`jax.experimental.multihost_utils.process_allgather`, replicated ones are read from
the local copy, and all processes wait at a barrier until the file is in place. So
`save_train_state` is collective there: every process calls it.
"""

import json
import os
from pathlib import Path
from typing import Any, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from .._atomic import atomic_open
from .._stepper._trainable import trainable_arrays
from ._hook_state import state_type, state_type_name
from ._stepper_file import check_same_stepper, describe_stepper, read_header
from ._train_state import VALIDATION_STATE, TrainState
from ._validation_history import ValidationHistory

MAGIC = "trainax_fm-train-state"
FORMAT_VERSION = 4
# Version 1 files (no stage fields) are read as single-stage states, version 2 files
# (no validation record) as runs without validation, version 3 files (the validation
# record in a slot of its own) with that record as the state of the validation hook.
# Version 4 keeps the hook states by name, whatever the hooks.
READABLE_VERSIONS = (1, 2, 3, 4)


def _typed_key(key) -> bool:
    return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def _key_data(key):
    return jax.random.key_data(key) if _typed_key(key) else key


def host_arrays(tree: Any) -> Any:
    """`tree` with every array that is not fully addressable made a host array.

    Replicated arrays are read from this process's copy; sharded ones are gathered
    from all processes (a collective: every process must call this).
    """

    def to_host(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(to_host, tree)


def save_train_state(path: Union[str, os.PathLike], state: TrainState) -> Path:
    """Write `state` to `path` atomically.

    Under several processes, every process calls it; process 0 writes the one file
    (after gathering sharded arrays) and all return once it is in place.

    **Arguments:**

    - `path`: target file (its directory is created if needed).
    - `state`: the [`trainax_fm.TrainState`][] to save.

    **Returns:**

    - The path written.
    """
    if not isinstance(state, TrainState):
        raise TypeError(f"`state` must be a trainax_fm.TrainState, got {type(state).__name__}.")
    path = Path(path)
    state = host_arrays(state)
    if jax.process_index() == 0:
        _write(path, state)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"trainax_fm checkpoint {path} {state.step}")
    return path


def _write(path: Path, state: TrainState) -> None:
    typed = _typed_key(state.key)
    key_data = _key_data(state.key)
    staged = state.stage_start is not None
    header = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "step": int(state.step),
        "num_seeds": int(state.loss_history.shape[0]) if state.loss_history.ndim == 2 else None,
        "num_losses": int(state.loss_history.shape[-1]),
        "loss_dtype": str(state.loss_history.dtype),
        "typed_key": bool(typed),
        "steps_per_dispatch": state.steps_per_dispatch,
        "key_shape": list(key_data.shape),
        "stage": state.stage,
        "staged": staged,
        "hook_states": {
            name: {"type": state_type_name(type(hook_state)), "describe": hook_state.describe()}
            for name, hook_state in sorted(state.hook_states.items())
        },
        "stepper": describe_stepper(state.stepper),
        # what a resume must keep (checked by `train`); absent in older files
        "batch_size": state.batch_size,
        "window_length": state.window_length,
    }
    payload = (state.stepper, state.opt_state, key_data, state.loss_history)
    if staged:
        payload += (state.stage_start, _key_data(state.run_key))
    payload += tuple(hook_state for _, hook_state in sorted(state.hook_states.items()))
    with atomic_open(path) as stream:
        stream.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(stream, payload)


def load_train_state(
    path: Union[str, os.PathLike],
    stepper_like: Any,
    optimizer: optax.GradientTransformation,
) -> TrainState:
    """Read a checkpoint written by [`trainax_fm.save_train_state`][].

    **Arguments:**

    - `path`: the checkpoint file.
    - `stepper_like`: a stepper with the same structure (e.g. a freshly initialised
        network); its values are replaced. For a seed-parallel run, a seed-stacked
        stepper (`eqx.filter_vmap(make)(keys)`).
    - `optimizer`: the optimizer of the run (to rebuild the optimizer-state structure).

    **Returns:**

    - The [`trainax_fm.TrainState`][]; continue with `trainer.train(resume_from=state)`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}.")
    with open(path, "rb") as f:
        header = read_header(f)
        if header is None or header.get("magic") != MAGIC:
            raise ValueError(
                f"{str(path)!r} is not a trainax_fm train-state checkpoint (missing "
                "header). Checkpoints are written by trainax_fm.save_train_state."
            )
        if header.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{str(path)!r} has checkpoint format version "
                f"{header.get('format_version')}, this trainax_fm reads versions "
                f"{READABLE_VERSIONS}."
            )
        if "stepper" in header:  # what the stepper wraps (statistics, loss weights)
            check_same_stepper(path, header["stepper"], stepper_like, "stepper_like")
        num_seeds = header.get("num_seeds")
        init = optimizer.init if num_seeds is None else eqx.filter_vmap(optimizer.init)
        loss_shape = (
            (header["num_losses"],) if num_seeds is None else (num_seeds, header["num_losses"])
        )
        like = (
            stepper_like,
            init(trainable_arrays(stepper_like)),
            jnp.zeros(header["key_shape"], dtype=jnp.uint32),
            jnp.zeros(loss_shape, dtype=header.get("loss_dtype", "float32")),
        )
        staged = header.get("staged", False)
        if staged:
            like += (stepper_like, like[2])
        saved_states = _hook_state_headers(header)
        like += tuple(
            state_type(saved["type"]).like(saved["describe"], stepper_like, num_seeds)
            for saved in saved_states.values()
        )
        try:
            stepper, opt_state, key_data, losses, *extra_fields = eqx.tree_deserialise_leaves(
                f, like
            )
        except Exception as error:
            raise ValueError(
                f"{str(path)!r} is truncated or does not match `stepper_like`/"
                f"`optimizer` ({type(error).__name__}: {error}). Use the network and "
                "optimizer of the run that wrote it."
            ) from None
        if f.read(1):
            raise ValueError(
                f"{str(path)!r} holds more data than `stepper_like`/`optimizer` "
                "describe; use the network and optimizer of the run that wrote it."
            )
    wrap = jax.random.wrap_key_data if header["typed_key"] else (lambda data: data)
    stage_start, run_key = (extra_fields[0], wrap(extra_fields[1])) if staged else (None, None)
    hook_states = dict(zip(saved_states, extra_fields[2 if staged else 0:]))
    return TrainState(
        stepper, opt_state, header["step"], wrap(key_data), losses,
        header.get("steps_per_dispatch"), header.get("stage", 0), stage_start, run_key,
        batch_size=header.get("batch_size"), window_length=header.get("window_length"),
        hook_states=hook_states,
    )


def _hook_state_headers(header: dict) -> dict[str, dict]:
    """The type and description of each saved hook state, by name, in payload order."""
    if header["format_version"] >= 4:
        return header["hook_states"]
    # Up to version 3 the one stateful hook, validation, had a slot of its own.
    validation = header.get("validation")
    if validation is None:
        return {}
    return {
        VALIDATION_STATE: {"type": state_type_name(ValidationHistory), "describe": validation}
    }
