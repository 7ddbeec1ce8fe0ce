"""Argument checks of the trainers (shared by `GeneralTrainer` and the staged ones)."""

import jax
import optax

from ._loop._options import EngineOptions
from ._windows import TrajectorySubStacker


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
