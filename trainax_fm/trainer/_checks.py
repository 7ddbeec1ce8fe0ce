"""Argument checks of the trainers (shared by `GeneralTrainer` and the staged ones)."""

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax

from .._loop._options import EngineOptions
from .._stepper._conditioned import NetworkInputError
from ..data._windows import TrajectorySubStacker


def check_optimizer(optimizer) -> None:
    if not isinstance(optimizer, optax.GradientTransformation) and not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "`optimizer` must be an optax.GradientTransformation (e.g. "
            f"optax.adam(1e-3)), got {type(optimizer).__name__}."
        )


def check_callback(callback_fn) -> None:
    if callback_fn is not None and not callable(callback_fn):
        raise TypeError(f"`callback_fn` must be callable, got {type(callback_fn).__name__}.")


def check_batch_on_mesh(options: EngineOptions, batch_size: int) -> None:
    if options.mesh is None:
        return
    num_processes = jax.process_count()
    if batch_size % num_processes:
        raise ValueError(
            f"`batch_size` ({batch_size}) must be divisible by the number of processes "
            f"({num_processes}), each of which reads its share of every minibatch; use "
            f"e.g. {num_processes * max(1, batch_size // num_processes)}."
        )
    num_shards = options.mesh.shape[options.batch_axis]
    if batch_size % num_shards:
        raise ValueError(
            f"`batch_size` ({batch_size}) must be divisible by the number of devices on "
            f"mesh axis {options.batch_axis!r} ({num_shards}); use e.g. "
            f"{num_shards * max(1, batch_size // num_shards)}."
        )


def check_data_on_disk(options: EngineOptions, stacker: TrajectorySubStacker) -> None:
    """What training from a file cannot do (yet): say so before anything runs."""
    if not stacker.on_disk:
        return
    if options.num_seeds is not None:
        raise ValueError(
            "`num_seeds` is not supported with data on disk (each seed would read its "
            "own minibatches); read the data into memory (`data.read()`) or train the "
            "seeds one after another."
        )
    if options.steps_per_dispatch not in ("auto", 1):
        raise ValueError(
            "data on disk runs one update per dispatch (each update waits for its "
            f"minibatch from the host), got `steps_per_dispatch={options.steps_per_dispatch!r}`;"
            " use 'auto' or 1."
        )
    if jax.process_count() > 1 and options.mesh is None:
        raise ValueError(
            f"with {jax.process_count()} processes, data on disk needs a `mesh` over the "
            "devices of all processes (e.g. `mesh=jax.make_mesh((jax.device_count(),), "
            "('batch',))`), so that each process reads only its rows of a minibatch."
        )


def _first_layer(stepper) -> Optional[eqx.Module]:
    """The first convolution, linear layer or MLP in `stepper` (tree order), if any."""
    kinds = (eqx.nn.Conv, eqx.nn.Linear, eqx.nn.MLP)
    for node in jtu.tree_leaves(stepper, is_leaf=lambda n: isinstance(n, kinds)):
        if isinstance(node, kinds):
            return node
    return None


def _layer_expectation(layer: Optional[eqx.Module], state_shape: tuple) -> str:
    """What the network's first layer takes, compared with the data's states."""
    if isinstance(layer, eqx.nn.Conv):
        expected = f"({layer.in_channels}, {', '.join('N' * layer.num_spatial_dims)})"
        text = (f" Its first layer, {type(layer).__name__}, takes inputs {expected}: "
                f"{layer.in_channels} channel(s) on {layer.num_spatial_dims} spatial axis(es).")
        if len(state_shape) == layer.num_spatial_dims + 1 and state_shape[0] != layer.in_channels:
            text += (f" The data has {state_shape[0]} channel(s): build the network with "
                     f"{state_shape[0]} input channel(s) (times H for num_input_steps=H), "
                     "or pass data with the channels it was built for.")
        return text
    size = getattr(layer, "in_size", getattr(layer, "in_features", None))
    if size is None:
        return ""
    text = (f" Its first layer, {type(layer).__name__}, takes vectors of {size} entries "
            "(ODE states (C,)).")
    if len(state_shape) > 1:
        text += (" The data states are fields with spatial axes: use a convolutional "
                 "network (e.g. eqx.nn.Conv1d for (C, N)), or flatten the states.")
    elif state_shape[0] != size:
        text += f" Build it with {state_shape[0]} inputs, the data's state size."
    return text


def check_stepper_fits_data(problem, stepper, key, num_seeds: Optional[int]) -> None:
    """Trace the loss on one window: a network that does not fit the data fails here
    with a message about the data and the network, not inside JAX. Run when training
    failed with a `TypeError`/`ValueError` (before any update: the first compile), so
    runs that work do not pay for the extra trace.

    **Arguments:**

    - `problem`: the trainer's compiled `Problem` (its windows and configuration).
    - `stepper`: the stepper to train (with a leading seed axis if `num_seeds`).
    - `key`: the run's key (one per seed if `num_seeds`).
    - `num_seeds`: the number of seeds trained in parallel, or `None`.

    Only a failure of the stepper's call itself is reported (a `NetworkInputError`);
    anything else is left to the training step, which raises it as before.
    """
    stacker = problem.stacker
    if stacker.on_disk:  # windows are read on the host; their first read checks them
        return
    window = jax.eval_shape(stacker, jnp.zeros((1,), jnp.int32))

    def loss(stepper, key):
        if num_seeds is not None:
            stepper = jtu.tree_map(lambda x: x[0] if eqx.is_array(x) else x, stepper)
            key = key[0]
        batch = jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), window)
        return problem.loss(stepper, batch, key, jnp.zeros((), jnp.int32))

    try:
        eqx.filter_eval_shape(loss, stepper, key)
    except NetworkInputError as error:
        if error.name != "stepper":
            raise ValueError(str(error)) from None
        data = stacker.data_trajectories
        leaf = jtu.tree_leaves(data)[0]
        state_shape = tuple(leaf.shape[2:])
        hint = ""
        if len(state_shape) == 1:
            hint = (f" States of shape {state_shape} have a single axis, read as the "
                    f"{state_shape[0]} components of an ODE state (C,). If they are a 1D "
                    f"field of {state_shape[0]} points, the data has no channel axis: add "
                    "one with `data[:, :, None]` to get (S, T, 1, N).")
        raise ValueError(
            f"`stepper` does not fit `data_trajectories` of shape {tuple(leaf.shape)} "
            f"(S, T, C, *spatial): its states have shape {state_shape}, and the stepper "
            f"failed on its input of shape {error.input_shapes[0] if error.input_shapes else '?'}"
            f" ({error.reason.rstrip('.')}).{hint}"
            f"{_layer_expectation(_first_layer(stepper), state_shape)}"
        ) from None
    except (TypeError, ValueError):
        pass  # not the network's call: the first training step reports it


def check_resume_fits_trainer(trainer, resume_from) -> None:
    """Refuse to continue a run with a trainer that would not continue it: other
    minibatches or windows than it trained on, or fewer updates than it already did
    (which would silently train nothing). The CLI refuses the same through its
    configuration comparison.

    **Arguments:**

    - `trainer`: the [`trainax_fm.GeneralTrainer`][] asked to resume.
    - `resume_from`: the [`trainax_fm.TrainState`][] to continue.
    """
    fix = ("Build the trainer with the settings of the run that wrote the state, or "
           "start a new run (without `resume_from`).")
    for name, saved, current in (
        ("batch_size", resume_from.batch_size, trainer.batch_size),
        ("window_length", resume_from.window_length,
         trainer.trajectory_sub_stacker.window_length),
    ):
        if saved is None or saved == current:  # None: a state from an older file
            continue
        what = (
            "`batch_size` (windows per update)" if name == "batch_size" else
            "the window length (snapshots per training window, which the rollout length "
            "sets: e.g. num_rollout_steps + 1 for a supervised rollout)"
        )
        raise ValueError(
            f"`resume_from` was trained with {what} = {saved}, but this trainer uses "
            f"{current}; a resumed run must keep it (the minibatch stream and the loss "
            f"depend on it). {fix}"
        )
    if resume_from.step > trainer.num_minibatches:
        raise ValueError(
            f"`resume_from` has already done {resume_from.step} updates, more than this "
            f"trainer's `num_training_steps` (`num_minibatches`) = "
            f"{trainer.num_minibatches}, so resuming would train nothing. "
            f"Build the trainer with num_training_steps >= "
            f"{resume_from.step} (the total, not the updates still to do) to train on."
        )
