"""The training loop: a host-side driver of compiled updates, and the hook protocol it
emits its events to (the hooks themselves live above, in `trainax_fm.hook`)."""

import abc
from typing import Any, ClassVar, Optional, Sequence

import jax
import optax
from jaxtyping import PRNGKeyArray, PyTree

from ..data._mixer import StreamPlan
from .._state._train_state import VALIDATION_STATE, TrainState
from .._state._validation_history import ValidationHistory
from ._compiled import CompiledUpdate, gather_batch, many_steps, one_step, streamed_step
from ._dispatch import MAX_STEPS_PER_DISPATCH, steps_per_dispatch
from ._history import LossChunk, LossHistory
from ._problem import Problem
from ._host_batches import HostBatches, batch_sharding
from ._stream import PermutationStream


class Loop:
    """The state of one `train` call, as hooks see it (and may stop).

    **Attributes:**

    - `problem`: data, configuration and optimizer of the compiled update.
    - `stepper`, `opt_state`: the trained state after `step` updates.
    - `key`: the run's key; `step`: updates done; `stop`: where this call ends.
    - `num_seeds`: the seed axis length, or `None`.
    - `traced`: whether the call runs under a JAX transformation (no host I/O then).
    - `history`: the losses so far (`history.since(step)` reads those from `step` on
        to the host, `history.all()` every loss of the run).
    - `dispatch`: updates per dispatch (1: straight-line updates).
    - `stop_reason`: why a hook stopped training early, or `None`.
    - `hook_states`: the state of each stateful hook by its `state_name` (part of the
        train state and its checkpoints); `validation`: the validation hook's
        [`trainax_fm.ValidationHistory`][] so far, or `None` (read-only);
        `validation_data`: the held-out trajectories, or `None`.
    - `host_batches`: for data on disk, the minibatches read ahead on the host
        (`None` for data in memory, whose windows are gathered inside the update).
    """

    def __init__(
        self,
        problem: Problem,
        stepper: PyTree,
        opt_state: optax.OptState,
        key: PRNGKeyArray,
        *,
        start: int,
        stop: int,
        past_losses,
        num_seeds: Optional[int],
        traced: bool,
        dispatch: int,
        stage: int = 0,
        stage_start: Any = None,
        run_key: Optional[PRNGKeyArray] = None,
        hook_states: Optional[dict[str, PyTree]] = None,
        validation_data: Optional[PyTree] = None,
    ):
        self.problem = problem
        self.stepper, self.opt_state = stepper, opt_state
        self.key = key
        self.step, self.stop = start, stop
        self.num_seeds = num_seeds
        self.traced = traced
        self.history = LossHistory(past_losses, num_seeds)
        self.dispatch = dispatch
        self.stop_reason: Optional[str] = None
        self.stage, self.stage_start, self.run_key = stage, stage_start, run_key
        self.hook_states: dict[str, PyTree] = dict(hook_states or {})
        self.validation_data = validation_data
        seeds = num_seeds is not None
        keys = jax.vmap(jax.random.split)(key) if seeds else jax.random.split(key)
        self.shuffle_key, self.update_key = (keys[:, 0], keys[:, 1]) if seeds else keys
        plan = StreamPlan(problem.stacker.num_total_samples, problem.batch_size)
        self.stream = PermutationStream(self.shuffle_key, plan, seeds)
        self.host_batches: Optional[HostBatches] = None
        if problem.stacker.on_disk:
            self.host_batches = HostBatches(
                problem.stacker, self.shuffle_key, problem.batch_size, start, stop,
                batch_sharding(problem.mesh, problem.batch_axis),
            )

    @property
    def validation(self) -> Optional[ValidationHistory]:
        """The validation hook's state (kept in `hook_states`), `None` without one."""
        return self.hook_states.get(VALIDATION_STATE)

    def request_stop(self, reason: str) -> None:
        """End training after the current event (e.g. early stopping)."""
        self.stop_reason = reason

    def batch(self) -> PyTree:
        """The minibatch of update `step` (with a seed axis for seed-parallel runs)."""
        if self.host_batches is not None:
            return self.host_batches.get(self.step)
        table, first_epoch = self.stream.table_for(self.step)
        return gather_batch(
            self.problem, table, first_epoch, jax.numpy.asarray(self.step),
            self.num_seeds is not None,
        )

    def train_state(self) -> TrainState:
        """The resumable state after `step` updates."""
        return TrainState(
            self.stepper, self.opt_state, self.step, self.key, self.history.all(),
            self.dispatch, self.stage, self.stage_start, self.run_key,
            batch_size=self.problem.batch_size,
            window_length=self.problem.stacker.window_length,
            hook_states=self.hook_states,
        )


class AbstractHook(abc.ABC):
    """Something that observes the training loop and may stop it.

    The loop runs compiled updates, many per dispatch, and returns to Python only
    where a hook asks for it. It emits these events, to every hook in order:

    - `on_start(loop)`: before the first update of the call.
    - `before_updates(loop, count)`: before the `count` updates that start at
        `loop.step` run (the stepper is the one before update `loop.step`).
    - `after_updates(loop, chunk)`: after them; `chunk` holds their losses as device
        arrays (reading them waits for the device).
    - `on_boundary(loop)`: when `loop.step` is a step that some hook asked to see
        through `next_boundary`.
    - `on_end(loop)`: after the last update of the call (also after a stop request).
    - `close(loop)`: always, last, also when training raised.

    A hook stops training cleanly with `loop.request_stop(reason)`: the loop finishes
    the current event and then ends as after its last update. Hooks hold host state,
    so they are plain Python objects, made anew for each call of `train`.

    What a resumed run must continue from is the hook's *state*: a hook with a
    `state_name` keeps it in `loop.hook_states[state_name]`, an
    [`trainax_fm.hook.AbstractHookState`][] (a PyTree that says how to rebuild its
    structure from a checkpoint). The loop starts it with `init_state(loop)`
    unless the run resumes from a train state that holds it (the restored state);
    train states and their checkpoints keep it by name, so a new stateful hook needs no
    change to the loop, the train state or the checkpoint format.
    """

    state_name: ClassVar[Optional[str]] = None

    def init_state(self, loop: Loop) -> Optional[PyTree]:
        """The state of a fresh run (`None`: none yet, e.g. until a first value)."""
        return None

    def next_boundary(self, loop: Loop, step: int) -> Optional[int]:
        """The first step after `step` at which this hook needs `on_boundary`, if any."""
        return None

    def on_start(self, loop: Loop) -> None:
        pass

    def before_updates(self, loop: Loop, count: int) -> None:
        pass

    def after_updates(self, loop: Loop, chunk: LossChunk) -> None:
        pass

    def on_boundary(self, loop: Loop) -> None:
        pass

    def on_end(self, loop: Loop) -> None:
        pass

    def close(self, loop: Loop) -> None:
        pass


class CompiledUpdates:
    """The two compiled forms of an update: straight-line (one) and a loop (many)."""

    def __init__(self, problem: Problem, stepper, opt_state, seeds: bool):
        if problem.stacker.on_disk:  # every update waits for its minibatch from the host
            self.single = CompiledUpdate(streamed_step, problem, stepper, opt_state)
            self.loop = None
            return
        self.single = CompiledUpdate(one_step, problem, stepper, opt_state, seeds=seeds)
        self.loop = CompiledUpdate(
            many_steps, problem, stepper, opt_state, MAX_STEPS_PER_DISPATCH, seeds=seeds
        )

    def choose_dispatch(self, loop: Loop) -> int:
        """Updates per dispatch from the static cost of one update (deterministic)."""
        if self.loop is None:
            return 1
        table, first_epoch = loop.stream.table_for(loop.step)
        cost = self.single.cost(
            loop.stepper, loop.opt_state, table, first_epoch, loop.update_key, loop.step
        )
        return steps_per_dispatch(cost, jax.default_backend())

    def run(self, loop: Loop, count: int) -> LossChunk:
        """Run `count` updates from `loop.step` and advance the loop."""
        if loop.host_batches is not None:
            loop.stepper, loop.opt_state, losses, _ = self.single(
                loop.stepper, loop.opt_state, loop.batch(), loop.update_key, loop.step
            )
            return self._advance(loop, LossChunk(loop.step, 1, losses))
        table, first_epoch = loop.stream.table_for(loop.step)
        arguments = (table, first_epoch, loop.update_key, loop.step)
        if loop.dispatch == 1:
            loop.stepper, loop.opt_state, losses, _ = self.single(
                loop.stepper, loop.opt_state, *arguments
            )
        else:
            loop.stepper, loop.opt_state, losses, _ = self.loop(
                loop.stepper, loop.opt_state, *arguments, count
            )
        return self._advance(loop, LossChunk(loop.step, count, losses))

    @staticmethod
    def _advance(loop: Loop, chunk: LossChunk) -> LossChunk:
        loop.history.append(chunk)
        loop.step += chunk.count
        return chunk


def run_loop(loop: Loop, updates: CompiledUpdates, hooks: Sequence[AbstractHook]) -> None:
    """Train from `loop.step` to `loop.stop`, emitting the events of `AbstractHook`."""
    try:
        _init_hook_states(loop, hooks)
        for hook in hooks:
            hook.on_start(loop)
        while loop.step < loop.stop and loop.stop_reason is None:
            count = _dispatch_size(loop, hooks)
            for hook in hooks:
                hook.before_updates(loop, count)
            chunk = updates.run(loop, count)
            for hook in hooks:
                hook.after_updates(loop, chunk)
            if loop.step < loop.stop and _is_boundary(loop, hooks):
                for hook in hooks:
                    hook.on_boundary(loop)
        for hook in hooks:
            hook.on_end(loop)
    finally:
        try:
            for hook in hooks:
                hook.close(loop)
        finally:
            if loop.host_batches is not None:
                loop.host_batches.close()


def _init_hook_states(loop: Loop, hooks: Sequence[AbstractHook]) -> None:
    names = [hook.state_name for hook in hooks if hook.state_name is not None]
    if len(set(names)) != len(names):
        raise ValueError(f"two hooks keep their state under one name: {sorted(names)}.")
    for hook in hooks:
        if hook.state_name is not None and hook.state_name not in loop.hook_states:
            state = hook.init_state(loop)
            if state is not None:
                loop.hook_states[hook.state_name] = state


def _next_boundary(loop: Loop, hooks: Sequence[AbstractHook], step: int) -> int:
    boundaries = (hook.next_boundary(loop, step) for hook in hooks)
    return min((b for b in boundaries if b is not None), default=loop.stop)


def _is_boundary(loop: Loop, hooks: Sequence[AbstractHook]) -> bool:
    return _next_boundary(loop, hooks, loop.step - 1) == loop.step


def _dispatch_size(loop: Loop, hooks: Sequence[AbstractHook]) -> int:
    if loop.dispatch == 1:
        return 1
    limit = min(
        loop.stop,
        loop.stream.table_end(loop.step),
        _next_boundary(loop, hooks, loop.step),
        loop.step + loop.dispatch,
    )
    return max(1, limit - loop.step)
