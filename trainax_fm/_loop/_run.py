"""One run of the loop: from a train state to the loop after its last update."""

from typing import Sequence


from .._argument_checks import is_traced
from .._state._train_state import TrainState
from ._problem import Problem
from ._loop import AbstractHook, CompiledUpdates, Loop, run_loop
from ._options import EngineOptions
from ._sharding import place_state


def train_on_loop(
    problem: Problem,
    options: EngineOptions,
    state: TrainState,
    hooks: Sequence[AbstractHook],
    *,
    stop: int,
) -> Loop:
    """Train `problem` from `state` up to update `stop`, emitting events to `hooks`.

    **Arguments:**

    - `problem`: the data, configuration and optimizer of the compiled update.
    - `options`: the run's engine options (dispatch size, held-out data).
    - `state`: where the run starts: a fresh state (`step=0`, no losses) or one to
        resume from. Its `steps_per_dispatch` (if any) is kept under
        `steps_per_dispatch="auto"`, so a resumed run continues bit-identically; the
        seed axis is that of its `loss_history`.
    - `hooks`: the hooks, in the order they see each event.
    - `stop`: the update count at which this call ends.

    **Returns:**

    - The `trainax_fm.hook.Loop` after its last update (`loop.train_state()` is
      the state to resume from).
    """
    losses = state.loss_history
    num_seeds = losses.shape[0] if losses.ndim == 2 else None
    dispatch = options.steps_per_dispatch
    if dispatch == "auto":
        dispatch = state.steps_per_dispatch
    stepper, opt_state = state.stepper, state.opt_state
    traced = is_traced((stepper, state.key))
    if problem.stacker.on_disk:
        if traced:
            raise TypeError(
                "training on data on disk reads minibatches on the host and cannot run "
                "under a JAX transformation (jit, vmap); for several seeds load the data "
                "into memory (`data.read()`)."
            )
        dispatch = 1  # every update waits for its minibatch from the host
    if problem.mesh is not None and not traced:
        problem = place_state(problem, problem.mesh, None)
        stepper, opt_state = place_state(
            (stepper, opt_state), problem.mesh, problem.parameter_axis
        )
    loop = Loop(
        problem, stepper, opt_state, state.key, start=state.step, stop=stop,
        past_losses=losses, num_seeds=num_seeds, traced=traced, dispatch=dispatch or 1,
        stage=state.stage, stage_start=state.stage_start, run_key=state.run_key,
        hook_states=state.hook_states, validation_data=options.validation_data,
    )
    updates = CompiledUpdates(problem, stepper, opt_state, num_seeds is not None)
    if dispatch is None:
        loop.dispatch = updates.choose_dispatch(loop)
    run_loop(loop, updates, hooks)
    return loop
