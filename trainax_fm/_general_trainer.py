import os
import time
from typing import Any, Callable, Literal, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from . import _engine
from ._checkpoint import save_train_state
from ._mixer import StreamPlan, effective_batch_size
from ._progress import ProgressBar
from ._train_state import TrainResult, TrainState
from ._validation import check_positive_int, is_traced
from ._windows import TrajectorySubStacker

DispatchMode = Union[int, Literal["auto"]]

# A step slower than this is dispatched one at a time without trying a loop: the
# dispatch overhead is then negligible and straight-line code is faster on XLA:CPU
# than a loop body. Faster steps are timed inside a loop too, and the faster wins.
HEAVY_STEP_SECONDS = 1e-2
# A compiled loop is kept unless an update inside it is this much slower than alone.
LOOP_TOLERANCE = 1.25
# Largest number of updates inside one dispatch (and size of its loss buffer).
MAX_STEPS_PER_DISPATCH = 1024
# Target wall time of one dispatch in chunked mode, so the progress bar stays alive.
TARGET_DISPATCH_SECONDS = 0.25
# Dispatch sizes chosen by `steps_per_dispatch="auto"`, per compiled update.
_DISPATCH_DECISIONS: dict = {}


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or Inf."""


class GeneralTrainer(eqx.Module):
    """Train an autoregressive emulator with any configuration on windows of data.

    The training loop runs on device: each update samples its minibatch indices from a
    static-shape stream of per-epoch permutations, gathers the windows from the stored
    trajectories, evaluates the configuration, its gradient and the optax update. Light
    updates are run many at a time inside one compiled loop, heavy ones one per dispatch
    (`steps_per_dispatch="auto"` measures and decides).

    **Arguments:**

    - `trajectory_sub_stacker`: the windows ([`trainax_fm.TrajectorySubStacker`][]);
        their length must be at least what `loss_configuration` needs.
    - `loss_configuration`: the configuration that turns a minibatch into a loss.
    - `ref_stepper`: reference simulator, for configurations that need one.
    - `residuum_fn`: residuum function, for residuum configurations.
    - `optimizer`: an `optax.GradientTransformation`.
    - `num_minibatches`: total number of updates.
    - `batch_size`: windows per update (full-batch with a warning if there are fewer).
    - `callback_fn`: called as `callback_fn(update_i, stepper, data)` before update
        `update_i`; see [`trainax_fm.callback`][].
    - `steps_per_dispatch`: `"auto"`, `1` (one update per dispatch) or `k > 1` (up to
        `k` updates inside one compiled loop).
    - `mesh`: a `jax.sharding.Mesh` for data-parallel training: every minibatch is split
        over the devices of its `batch_axis`, parameters and data are replicated.
        `None` uses the default device. The same code runs on one or many devices (and
        many hosts after `jax.distributed.initialize()`).
    - `batch_axis`: the mesh axis to split minibatches over.
    """

    trajectory_sub_stacker: TrajectorySubStacker
    loss_configuration: Any
    ref_stepper: Any
    residuum_fn: Any
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    num_minibatches: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    callback_fn: Any = eqx.field(static=True)
    steps_per_dispatch: DispatchMode = eqx.field(static=True)
    mesh: Optional[jax.sharding.Mesh] = eqx.field(static=True)
    batch_axis: str = eqx.field(static=True)

    def __init__(
        self,
        trajectory_sub_stacker: TrajectorySubStacker,
        loss_configuration: Any,
        *,
        ref_stepper: Optional[Callable] = None,
        residuum_fn: Optional[Callable] = None,
        optimizer: optax.GradientTransformation,
        num_minibatches: int,
        batch_size: int,
        callback_fn: Optional[Callable] = None,
        steps_per_dispatch: DispatchMode = "auto",
        mesh: Optional[jax.sharding.Mesh] = None,
        batch_axis: str = "batch",
    ):
        if not isinstance(trajectory_sub_stacker, TrajectorySubStacker):
            raise TypeError(
                "`trajectory_sub_stacker` must be a trainax_fm.TrajectorySubStacker, got "
                f"{type(trajectory_sub_stacker).__name__}."
            )
        if not callable(loss_configuration):
            raise TypeError(
                "`loss_configuration` must be a configuration (e.g. "
                f"trainax_fm.configuration.Supervised()), got {type(loss_configuration).__name__}."
            )
        if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
            raise TypeError(
                "`optimizer` must be an optax.GradientTransformation (e.g. "
                f"optax.adam(1e-3)), got {type(optimizer).__name__}."
            )
        needed = getattr(loss_configuration, "required_window_length", 1)
        if trajectory_sub_stacker.window_length < needed:
            raise ValueError(
                f"{type(loss_configuration).__name__} needs windows of {needed} "
                f"snapshots but `trajectory_sub_stacker` provides "
                f"{trajectory_sub_stacker.window_length}. Build it with "
                f"`sub_trajectory_len={needed}` (and `only_store_ic=False`)."
            )
        name = type(loss_configuration).__name__
        if getattr(loss_configuration, "needs_ref_stepper", False) and ref_stepper is None:
            raise ValueError(
                f"{name} compares against a reference simulator: pass `ref_stepper=...`."
            )
        if getattr(loss_configuration, "needs_residuum_fn", False) and residuum_fn is None:
            raise ValueError(f"{name} needs `residuum_fn=...` (u_next, u_prev) -> residuum.")
        if callback_fn is not None and not callable(callback_fn):
            raise TypeError(f"`callback_fn` must be callable, got {type(callback_fn).__name__}.")
        if steps_per_dispatch != "auto":
            check_positive_int(steps_per_dispatch, "steps_per_dispatch")
        self.trajectory_sub_stacker = trajectory_sub_stacker
        self.loss_configuration = loss_configuration
        self.ref_stepper = ref_stepper
        self.residuum_fn = residuum_fn
        self.optimizer = optimizer
        self.num_minibatches = check_positive_int(num_minibatches, "num_minibatches")
        self.batch_size = effective_batch_size(
            trajectory_sub_stacker.num_total_samples,
            check_positive_int(batch_size, "batch_size"),
        )
        self.callback_fn = callback_fn
        self.steps_per_dispatch = steps_per_dispatch
        if mesh is not None:
            if not isinstance(mesh, jax.sharding.Mesh):
                raise TypeError(f"`mesh` must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
            if batch_axis not in mesh.axis_names:
                raise ValueError(
                    f"`batch_axis` {batch_axis!r} is not an axis of `mesh` "
                    f"(axes {mesh.axis_names}); name the axis to split minibatches over."
                )
            num_shards = mesh.shape[batch_axis]
            if self.batch_size % num_shards:
                raise ValueError(
                    f"`batch_size` ({self.batch_size}) must be divisible by the number of "
                    f"devices on mesh axis {batch_axis!r} ({num_shards}); use e.g. "
                    f"{num_shards * max(1, self.batch_size // num_shards)}."
                )
        self.mesh = mesh
        self.batch_axis = batch_axis

    # --- trainax-compatible pieces ---------------------------------------------------

    def _make_problem(self, skip_nonfinite: bool = False) -> _engine.Problem:
        return _engine.Problem(
            self.trajectory_sub_stacker,
            self.loss_configuration,
            self.ref_stepper,
            self.residuum_fn,
            self.optimizer,
            self.batch_size,
            skip_nonfinite,
            self.mesh,
            self.batch_axis,
        )

    def full_loss(self, stepper: eqx.Module, *, key: Optional[PRNGKeyArray] = None) -> Float[Array, ""]:
        """The configuration's loss on all windows at once (may need much memory).

        **Arguments:**

        - `stepper`: the stepper to evaluate.
        - `key`: random key for stochastic configurations.

        **Returns:**

        - The scalar loss.
        """
        return _engine.full_dataset_loss(self._make_problem(), stepper, key)

    def step_fn(
        self,
        stepper: eqx.Module,
        opt_state: optax.OptState,
        data: PyTree[Float[Array, "batch window ..."]],
        *,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> tuple[eqx.Module, optax.OptState, Float[Array, ""]]:
        """One optax update on the minibatch `data`.

        **Returns:**

        - `(new_stepper, new_opt_state, loss)`, with the loss before the update.
        """
        return self._make_problem().update(stepper, opt_state, data, key, step)

    def __call__(
        self,
        stepper: eqx.Module,
        key: PRNGKeyArray,
        opt_state: Optional[optax.OptState] = None,
        *,
        return_loss_history: bool = True,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
    ):
        """Train `stepper` for `num_minibatches` updates (trainax-compatible).

        **Arguments:**

        - `stepper`: the `eqx.Module` to train.
        - `key`: the run's random key (minibatch order and configuration noise).
        - `opt_state`: initial optimizer state; `None` initialises it.
        - `return_loss_history`: whether to return the loss history.
        - `record_loss_every`: record every k-th loss, starting at update 0.
        - `spawn_tqdm`: show a progress bar with the current loss.

        **Returns:**

        - `(stepper, loss_history)`, or `stepper` if `return_loss_history=False`; with a
          callback `(stepper, loss_history, aux_history)` or `(stepper, aux_history)`.
          Use [`trainax_fm.GeneralTrainer.train`][] for a fixed result type.
        """
        result = self.train(
            stepper,
            key,
            opt_state,
            record_loss_every=record_loss_every,
            spawn_tqdm=spawn_tqdm,
        )
        outputs = [result.stepper]
        if return_loss_history:
            outputs.append(result.loss_history)
        if self.callback_fn is not None:
            outputs.append(result.aux_history)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def train_seeds(
        self,
        make_stepper: Callable[[PRNGKeyArray], eqx.Module],
        key: PRNGKeyArray,
        num_seeds: int,
        *,
        record_loss_every: int = 1,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        spawn_tqdm: bool = True,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        checkpoint_every: Optional[int] = None,
    ) -> TrainResult:
        """Train `num_seeds` independently initialised steppers in one batched run.

        Seed `i` initialises its stepper with `make_stepper(init_keys[i])` and trains
        with `run_keys[i]`, where `init_keys, run_keys` are `num_seeds` keys split from
        the two halves of `key`. The result equals (up to floating-point reassociation)
        `num_seeds` separate `train` calls with those keys, but every update of all
        seeds is one vmapped computation inside the same engine (sampling, dispatch
        mode selection, NaN checks per seed and checkpoints all work).

        **Arguments:**

        - `make_stepper`: builds a stepper from a key, e.g.
            `lambda k: eqx.nn.Conv1d(1, 1, 3, padding=1, key=k)`.
        - `key`: the key all seeds are derived from.
        - `num_seeds`: number of seeds.
        - `record_loss_every`, `on_nonfinite`, `spawn_tqdm`, `checkpoint_path`,
            `checkpoint_every`: as in `train` (the progress bar shows the seed mean).

        **Returns:**

        - A [`trainax_fm.TrainResult`][] whose stepper, optimizer state and loss
          history carry a leading seed axis.
        """
        num_seeds = check_positive_int(num_seeds, "num_seeds")
        init_key, run_key = jax.random.split(key)
        init_keys = jax.random.split(init_key, num_seeds)
        run_keys = jax.random.split(run_key, num_seeds)
        steppers = _stack_seed_steppers(make_stepper, init_keys)
        return self.train(
            steppers,
            run_keys,
            num_seeds=num_seeds,
            record_loss_every=record_loss_every,
            spawn_tqdm=spawn_tqdm,
            on_nonfinite=on_nonfinite,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
        )

    # --- the engine ------------------------------------------------------------------

    def train(
        self,
        stepper: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        opt_state: Optional[optax.OptState] = None,
        *,
        resume_from: Optional[TrainState] = None,
        num_steps: Optional[int] = None,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        checkpoint_every: Optional[int] = None,
        on_nonfinite: Literal["raise", "skip"] = "raise",
        num_seeds: Optional[int] = None,
    ) -> TrainResult:
        """Train and return a [`trainax_fm.TrainResult`][].

        **Arguments:**

        - `stepper`, `key`, `opt_state`: as in `__call__` (not needed when resuming).
        - `resume_from`: a [`trainax_fm.TrainState`][] of an earlier run with this
            trainer; training continues exactly where it stopped.
        - `num_steps`: stop after this many updates of this call (default: until
            `num_minibatches` updates in total).
        - `record_loss_every`: keep every k-th loss (counted from update 0 of the run).
        - `spawn_tqdm`: show a progress bar.
        - `checkpoint_path`: if given, a [`trainax_fm.TrainState`][] is written there
            (atomically) every `checkpoint_every` updates and at the end; load it with
            [`trainax_fm.load_train_state`][].
        - `checkpoint_every`: checkpoint interval in updates (default: only at the end).
        - `on_nonfinite`: `"raise"` stops training with a
            [`trainax_fm.NonFiniteLossError`][] naming the update (the last checkpoint
            is left untouched); `"skip"` leaves parameters and optimizer state unchanged
            for updates whose loss or gradient is NaN/Inf and carries on.
        - `num_seeds`: if given, `stepper`, `key` (and `opt_state`) carry a leading axis
            of this many independent seeds that train side by side (see
            [`trainax_fm.GeneralTrainer.train_seeds`][]); inferred when resuming.

        **Returns:**

        - A `TrainResult` with the stepper, optimizer state, loss history, callback
          history and the train state to resume from.
        """
        record_loss_every = check_positive_int(record_loss_every, "record_loss_every")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"`on_nonfinite` must be 'raise' or 'skip', got {on_nonfinite!r}.")
        if checkpoint_every is not None:
            check_positive_int(checkpoint_every, "checkpoint_every")
            if checkpoint_path is None:
                raise ValueError("`checkpoint_every` needs a `checkpoint_path` to write to.")
        if resume_from is not None:
            if not isinstance(resume_from, TrainState):
                raise TypeError(
                    f"`resume_from` must be a trainax_fm.TrainState, got {type(resume_from).__name__}."
                )
            stepper, key, opt_state = resume_from.stepper, resume_from.key, resume_from.opt_state
            start, past_losses = resume_from.step, resume_from.loss_history
            resumed_dispatch = resume_from.steps_per_dispatch
            if past_losses.ndim == 2:
                num_seeds = past_losses.shape[0]
        else:
            if stepper is None or key is None:
                raise TypeError("`train` needs `stepper` and `key` (or `resume_from=`).")
            start, resumed_dispatch = 0, None
            past_losses = jnp.zeros((0,) if num_seeds is None else (num_seeds, 0))
        if num_seeds is None:
            _check_key(key)
        else:
            num_seeds = check_positive_int(num_seeds, "num_seeds")
            _check_seed_axis(num_seeds, stepper, key)
        if opt_state is None:
            init = self.optimizer.init
            if num_seeds is not None:
                init = eqx.filter_vmap(init)
            opt_state = init(eqx.filter(stepper, eqx.is_inexact_array))
        stop = self.num_minibatches
        if num_steps is not None:
            stop = min(stop, start + check_positive_int(num_steps, "num_steps", minimum=0))

        run = _Run(
            self, stepper, opt_state, key, start, stop, spawn_tqdm,
            problem=self._make_problem(on_nonfinite == "skip"),
            past_losses=past_losses,
            checkpoint=(checkpoint_path, checkpoint_every),
            raise_on_nonfinite=on_nonfinite == "raise",
            num_seeds=num_seeds,
            resumed_dispatch=resumed_dispatch,
        )
        run.execute()
        state = run.train_state(stop)
        history = state.loss_history
        recorded = history[..., ::record_loss_every]
        return TrainResult(run.stepper, run.opt_state, recorded, run.aux_history, state)


@jax.jit
def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def _stack_seed_steppers(make_stepper, init_keys):
    """`make_stepper` of every key, with the arrays stacked along a leading seed axis.

    The steppers are built one at a time: after the first, every eager operation of the
    initialisation hits JAX's per-shape cache, whereas `eqx.filter_vmap(make_stepper)`
    compiles each random operation anew for the seed-batched shapes (seconds for a
    small MLP on a CPU). Seed `i` is bit-identical to `make_stepper(init_keys[i])`.
    """
    steppers = [make_stepper(key) for key in init_keys]
    arrays = [eqx.filter(stepper, eqx.is_array) for stepper in steppers]
    structure = jax.tree_util.tree_structure(arrays[0])
    for seed, seed_arrays in enumerate(arrays[1:], start=1):
        if jax.tree_util.tree_structure(seed_arrays) != structure:
            raise ValueError(
                "train_seeds: `make_stepper` built steppers of different structures for "
                f"seed 0 and seed {seed}; every seed must have the same architecture "
                "(only the key may change the values)."
            )
    return eqx.combine(_stack_trees(*arrays), steppers[0])


@jax.jit
def _stack_trees(*trees):
    # One compiled program for all leaves instead of one eager `stack` per shape.
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def _check_seed_axis(num_seeds, stepper, key):
    _check_key(key[0] if getattr(key, "ndim", 0) >= 1 else key)
    leaves = [x for x in jax.tree_util.tree_leaves(eqx.filter(stepper, eqx.is_array))]
    for name, tree_leaves in (("key", [key]), ("stepper", leaves)):
        for leaf in tree_leaves:
            if leaf.ndim == 0 or leaf.shape[0] != num_seeds:
                raise ValueError(
                    f"with `num_seeds={num_seeds}` every array of `{name}` needs a leading "
                    f"seed axis of length {num_seeds}, found shape {tuple(leaf.shape)}. "
                    "Build them with `eqx.filter_vmap(make)(jax.random.split(key, "
                    f"{num_seeds}))` or use `train_seeds`."
                )


def _check_key(key):
    if not hasattr(key, "dtype") or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,))
    ):
        raise TypeError(
            "`key` must be a JAX random key (jax.random.PRNGKey(0) or "
            f"jax.random.key(0)), got {key!r}."
        )


class _Run:
    """The host-side loop of one `train` call (mutable bookkeeping).

    With `steps_per_dispatch="auto"` the first updates double as a measurement: a few
    single-update dispatches are timed; if an update is light, a compiled loop of
    updates is tried and kept if it is faster per update.
    """

    def __init__(
        self, trainer, stepper, opt_state, key, start, stop, spawn_tqdm, *, problem,
        past_losses, checkpoint, raise_on_nonfinite, num_seeds=None, resumed_dispatch=None,
    ):
        self.num_seeds = num_seeds
        seeds = num_seeds is not None
        if problem.mesh is not None and not is_traced((stepper, key)):
            replicated = jax.sharding.NamedSharding(problem.mesh, jax.sharding.PartitionSpec())
            state = (problem, stepper, opt_state)
            arrays = jax.device_put(eqx.filter(state, eqx.is_array), replicated)
            problem, stepper, opt_state = eqx.combine(arrays, state)
        self.problem = problem
        self.key = key
        self.past_losses = past_losses
        self.checkpoint_path, self.checkpoint_every = checkpoint
        self.last_checkpoint = None
        self.raise_on_nonfinite = raise_on_nonfinite
        self.callback = trainer.callback_fn
        self.stepper, self.opt_state = stepper, opt_state
        if seeds:
            keys = jax.vmap(jax.random.split)(key)
            self.shuffle_key, self.run_key = keys[:, 0], keys[:, 1]
        else:
            self.shuffle_key, self.run_key = jax.random.split(key)
        self.start, self.stop = start, stop
        self.traced = is_traced((stepper, key))
        self.plan = StreamPlan(
            trainer.trajectory_sub_stacker.num_total_samples, trainer.batch_size
        )
        self.loss_chunks: list = []
        self.aux_history: list = []
        self.progress = ProgressBar(stop - start, enabled=spawn_tqdm)
        self.segment = None
        mode = trainer.steps_per_dispatch
        if mode == "auto" and resumed_dispatch is not None:
            mode = resumed_dispatch
        if mode != "auto":
            self.chunk_size, self.phase = int(mode), None
        elif self.traced:
            # Under vmap nothing can be timed; on CPU straight-line code is the safe bet.
            self.chunk_size = 1 if jax.default_backend() == "cpu" else 64
            self.phase = None
        else:
            self.chunk_size, self.phase = 1, "single"
        self.single_update = _engine.CompiledUpdate(
            _engine.one_step, self.problem, stepper, opt_state, seeds=seeds
        )
        self.loop_update = _engine.CompiledUpdate(
            _engine.many_steps, self.problem, stepper, opt_state, MAX_STEPS_PER_DISPATCH,
            seeds=seeds,
        )
        # A decision measured earlier in this process for the same compiled update
        # (same configuration, network structure and shapes) is reused.
        self.decision_key = self.loop_update.cache_key
        if self.phase == "single" and self.decision_key in _DISPATCH_DECISIONS:
            self.chunk_size, self.phase = _DISPATCH_DECISIONS[self.decision_key], None
        self.single_timings: list = []
        self.single_seconds = None

    def losses(self, first_step=None):
        """Losses of the updates run so far (from `first_step` on).

        `loss_chunks` holds `(losses, count, first_step)` triples: a scalar per single
        update or the loss buffer of a compiled loop whose first `count` entries are
        valid (with a leading seed axis for seed-parallel runs).
        """
        chunks = self.loss_chunks
        if first_step is not None:
            chunks = [c for c in chunks if c[2] >= first_step]
        if self.num_seeds is not None:
            if not chunks:
                return jnp.zeros((self.num_seeds, 0))
            per_seed = [np.asarray(c[0]).reshape(self.num_seeds, -1)[:, : c[1]] for c in chunks]
            return jnp.asarray(np.concatenate(per_seed, axis=1))
        if not chunks:
            return jnp.zeros((0,))
        if self.traced:
            flat = jnp.concatenate([jnp.atleast_1d(c[0]) for c in chunks])
            sizes = [jnp.atleast_1d(c[0]).shape[0] for c in chunks]
            offsets = np.cumsum([0] + sizes[:-1])
            index = np.concatenate([o + np.arange(c[1]) for o, c in zip(offsets, chunks)])
            return flat[index]
        return jnp.asarray(
            np.concatenate([np.atleast_1d(np.asarray(c[0]))[: c[1]] for c in chunks])
        )

    # -- sampling --

    def _table_end_position(self) -> int:
        """First stream position past the current permutation table."""
        return (self.segment[0] + self.plan.epochs_per_segment) * self.plan.num_samples

    def _permutations(self, step):
        first_epoch = self.plan.first_epoch(step)
        if self.segment is None or not (
            self.segment[0] <= first_epoch
            and (step + 1) * self.plan.batch_size <= self._table_end_position()
        ):
            table = _engine.make_permutations(
                self.shuffle_key,
                jnp.asarray(first_epoch),
                self.plan.epochs_per_segment,
                self.plan.num_samples,
                self.num_seeds is not None,
            )
            self.segment = (first_epoch, table, jnp.asarray(first_epoch))
        return self.segment[1], self.segment[2]

    def _segment_end(self, step):
        """Last step (exclusive) whose batch lies in the current permutation table."""
        self._permutations(step)
        return self._table_end_position() // self.plan.batch_size

    # -- callbacks --

    def _callback_active(self, step) -> bool:
        if self.callback is None:
            return False
        is_active = getattr(self.callback, "is_active", None)
        return True if is_active is None else bool(is_active(step))

    def _next_boundary(self, step) -> int:
        """First step `>= step` before which the loop must return to Python."""
        boundary = self.stop
        if self.checkpoint_every is not None:
            every = self.checkpoint_every
            boundary = min(boundary, -(-step // every) * every)
        if self.callback is not None:
            boundary = next(
                (s for s in range(step, boundary) if self._callback_active(s)), boundary
            )
        return boundary

    def train_state(self, step) -> TrainState:
        history = jnp.concatenate([self.past_losses, self.losses()], axis=-1)
        settled = None if self.phase is not None else self.chunk_size
        return TrainState(self.stepper, self.opt_state, step, self.key, history, settled)

    def _save_checkpoint(self, step):
        state = self.train_state(step)
        # Multi-host: every process holds the same replicated state; one writes it.
        if jax.process_index() == 0:
            save_train_state(self.checkpoint_path, state)
        self.last_checkpoint = self.checkpoint_path

    def _record_callbacks(self, step, count):
        if self.callback is None:
            return
        if self._callback_active(step):
            permutations, first_epoch = self._permutations(step)
            seeds = self.num_seeds is not None
            data = _engine.gather_batch(
                self.problem, permutations, first_epoch, jnp.asarray(step), seeds
            )
            if seeds:
                result = eqx.filter_vmap(lambda s, d: self.callback(step, s, d))(
                    self.stepper, data
                )
            else:
                result = self.callback(step, self.stepper, data)
            self.aux_history.append(result)
        else:
            self.aux_history.append(self.callback(step, self.stepper, None))
        # A dispatch never runs past the next active callback step.
        for s in range(step + 1, step + count):
            self.aux_history.append(self.callback(s, self.stepper, None))

    # -- dispatch --

    def _dispatch(self, step, count):
        permutations, first_epoch = self._permutations(step)
        if count == 1 and self.chunk_size == 1:
            self.stepper, self.opt_state, loss, _ = self.single_update(
                self.stepper, self.opt_state, permutations, first_epoch, self.run_key, step
            )
            self.loss_chunks.append((loss, 1, step))
            return loss
        self.stepper, self.opt_state, losses, last = self.loop_update(
            self.stepper, self.opt_state, permutations, first_epoch, self.run_key, step, count
        )
        self.loss_chunks.append((losses, count, step))
        return last

    def _dispatch_size(self, step) -> int:
        if self.chunk_size == 1:
            return 1
        limit = min(self.stop, self._segment_end(step), self._next_boundary(step + 1))
        return max(1, min(limit, step + self.chunk_size) - step)

    def _measure(self, seconds, count):
        """Advance the auto-selection with the timing of the last dispatch."""
        self._advance_measurement(seconds, count)
        if self.phase is None and self.decision_key is not None:
            _DISPATCH_DECISIONS[self.decision_key] = self.chunk_size

    def _advance_measurement(self, seconds, count):
        if self.phase == "single":
            self.single_timings.append(seconds)
            if len(self.single_timings) == 4:
                self.single_seconds = float(np.median(self.single_timings[1:]))
                if self.single_seconds > HEAVY_STEP_SECONDS:
                    self.phase = None
                else:
                    self.phase, self.chunk_size = "warmup", 16
        elif self.phase == "warmup" and count >= 4:
            self.phase, self.chunk_size = "timed", 32
        elif self.phase == "timed" and count >= 4:
            per_step = seconds / count
            # Light updates gain most from looping; only a clearly slower loop body
            # (XLA:CPU convolutions) sends them back to one update per dispatch.
            if per_step > LOOP_TOLERANCE * self.single_seconds:
                self.chunk_size = 1
            else:
                self.chunk_size = int(
                    np.clip(TARGET_DISPATCH_SECONDS / per_step, 2, MAX_STEPS_PER_DISPATCH)
                )
            self.phase = None

    def _check_finite(self, first_step, step):
        """Stop on a NaN/Inf loss among updates `first_step..step-1`, or on NaN/Inf
        parameters after them (caught before they can reach a checkpoint)."""
        if self.traced or not self.raise_on_nonfinite:
            return
        values = np.atleast_2d(np.asarray(self.losses(first_step)))
        bad_seed, bad_update = np.nonzero(~np.isfinite(values))
        if bad_update.size:
            first = int(np.argmin(bad_update))
            seed, index = int(bad_seed[first]), int(bad_update[first])
            which = f" (seed {seed})" if self.num_seeds is not None else ""
            problem = (
                f"the training loss became {values[seed, index]} at update "
                f"{first_step + index}{which}"
            )
        elif not bool(_all_finite(eqx.filter(self.stepper, eqx.is_inexact_array))):
            where = f"update {step - 1}" if step - first_step == 1 else (
                f"one of updates {first_step}..{step - 1}"
            )
            problem = f"the parameters became NaN/Inf in {where} (a non-finite gradient)"
        else:
            return
        raise NonFiniteLossError(
            f"{problem}; training stopped. Lower the learning rate, check the data for "
            "outliers, or clip gradients (optax.clip_by_global_norm); or pass "
            "on_nonfinite='skip'."
            + (
                f" The last good checkpoint is {str(self.last_checkpoint)!r}."
                if self.last_checkpoint is not None
                else ""
            )
        )

    def execute(self):
        try:
            self._loop()
        finally:
            self.progress.close()

    def _loop(self):
        step, unchecked, unreported = self.start, self.start, 0
        while step < self.stop:
            count = self._dispatch_size(step)
            self._record_callbacks(step, count)
            begin = time.perf_counter()
            loss = self._dispatch(step, count)
            if self.phase is not None:
                jax.block_until_ready(loss)
                self._measure(time.perf_counter() - begin, count)
            step += count
            unreported += count
            checkpoint_due = self.checkpoint_path is not None and (
                step >= self.stop
                or (self.checkpoint_every is not None and step % self.checkpoint_every == 0)
            )
            if step >= self.stop or checkpoint_due or self.progress.due():
                jax.block_until_ready(loss)
                self._check_finite(unchecked, step)
                self.progress.update(unreported, None if self.traced else loss)
                unchecked, unreported = step, 0
            if checkpoint_due and not self.traced:
                self._save_checkpoint(step)
