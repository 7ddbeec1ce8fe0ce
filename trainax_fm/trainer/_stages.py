"""Runs made of several stages on the one training loop."""

from typing import Any, Callable, Optional, Sequence

import equinox as eqx
import jax
import optax
from jaxtyping import PRNGKeyArray

from .._argument_checks import check_bool, check_positive_int
from .._loop._loop import AbstractHook
from .._state._train_state import TrainResult, TrainState
from ._general import GeneralTrainer
from ._train_call import train_trainer


class Stage(eqx.Module):
    """One stage of a multi-stage run (see [`trainax_fm.train_stages`][]).

    **Arguments:**

    - `configuration`: the stage's configuration, or a function of the stepper the
        stage starts from that returns it (e.g. a distillation whose frozen teacher is
        the previous stage's student).
    - `optimizer`: the stage's optimizer (its schedule restarts with the stage).
    - `num_steps`: the number of updates of the stage.
    - `keep_optimizer_state`: start from the previous stage's optimizer state (the
        optimizers must have the same state structure) instead of a fresh one.
    - `finish`: applied to the stepper at the end of the stage (e.g. set the number of
        sampling steps the distilled student takes); `None` keeps it.
    """

    configuration: Any
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    keep_optimizer_state: bool = eqx.field(static=True, default=False)
    finish: Optional[Callable[[Any], Any]] = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_positive_int(self.num_steps, "num_steps")
        check_bool(self.keep_optimizer_state, "keep_optimizer_state")

    def configuration_for(self, start_stepper) -> Any:
        if isinstance(self.configuration, eqx.Module) or not callable(self.configuration):
            return self.configuration
        return self.configuration(start_stepper)


def train_stages(
    trainer,
    stages: Sequence[Stage],
    stepper: Optional[eqx.Module] = None,
    key: Optional[PRNGKeyArray] = None,
    *,
    resume_from: Optional[TrainState] = None,
    record_loss_every: int = 1,
    spawn_tqdm: bool = True,
    stage_hooks: Callable[[int], Sequence[AbstractHook]] = lambda stage: (),
    **engine_options,
) -> list[TrainResult]:
    """Train through `stages` one after the other on the loop of `trainer`.

    Every stage trains on `trainer`'s windows (batch size, callback and engine options
    too) with its own configuration, optimizer and number of updates; stage `s` uses
    the key `jax.random.split(key, len(stages))[s]` and counts its updates from 0. The
    stepper carries over from stage to stage (through `Stage.finish`). A checkpoint
    (`checkpoint_path=`) records the stage, the stepper the stage started from and the
    run key, so `train_stages(..., resume_from=load_train_state(...))` continues an
    interrupted stage exactly and then runs the remaining ones.

    **Arguments:**

    - `trainer`: a [`trainax_fm.GeneralTrainer`][] (its configuration, optimizer and
        `num_minibatches` are replaced by each stage's).
    - `stages`: the [`trainax_fm.Stage`][]s.
    - `stepper`, `key`: the initial stepper and the run's key (not needed when
        resuming).
    - `resume_from`: a train state written during an earlier call with these stages.
    - `record_loss_every`, `spawn_tqdm`, `**engine_options`: as in
        [`trainax_fm.GeneralTrainer.train`][].
    - `stage_hooks`: `stage_hooks(s)` gives the extra hooks of stage `s`.

    **Returns:**

    - One [`trainax_fm.TrainResult`][] per stage run by this call; the stepper of the
      last one is the result of the whole run.
    """
    if not isinstance(trainer, GeneralTrainer):
        raise TypeError(
            f"`trainer` must be a trainax_fm.GeneralTrainer, got {type(trainer).__name__}."
        )
    stages = list(stages)
    if not stages or not all(isinstance(stage, Stage) for stage in stages):
        raise TypeError("`stages` must be a non-empty sequence of trainax_fm.Stage.")
    options = trainer.options.replace(**engine_options)
    if resume_from is not None:
        first, run_key = resume_from.stage, resume_from.run_key
        start_stepper = resume_from.stage_start
        if run_key is None or not 0 <= first < len(stages):
            raise ValueError(
                "`resume_from` is not a state of these stages (it records stage "
                f"{first} of a run of {len(stages)} stages, run key {run_key is not None})."
            )
    else:
        if stepper is None or key is None:
            raise TypeError("`train_stages` needs `stepper` and `key` (or `resume_from=`).")
        first, run_key, start_stepper = 0, key, stepper
    stage_keys = jax.random.split(run_key, len(stages))
    results, opt_state = [], None
    for index in range(first, len(stages)):
        stage = stages[index]
        stage_trainer = GeneralTrainer(
            trainer.trajectory_sub_stacker,
            stage.configuration_for(start_stepper),
            ref_stepper=trainer.ref_stepper,
            residuum_fn=trainer.residuum_fn,
            optimizer=stage.optimizer,
            num_minibatches=stage.num_steps,
            batch_size=trainer.batch_size,
            callback_fn=trainer.callback_fn,
            **options.as_dict(),
        )
        resume = resume_from if index == first else None
        result = train_trainer(
            stage_trainer,
            options,
            start_stepper,
            stage_keys[index],
            opt_state if stage.keep_optimizer_state else None,
            resume_from=resume,
            num_steps=None,
            record_loss_every=check_positive_int(record_loss_every, "record_loss_every"),
            spawn_tqdm=spawn_tqdm,
            hooks=list(stage_hooks(index)),
            stage=index,
            stage_start=start_stepper,
            run_key=run_key,
        )
        finished = result.stepper if stage.finish is None else stage.finish(result.stepper)
        results.append(eqx.tree_at(lambda r: r.stepper, result, finished))
        if result.stop_reason is not None:
            break
        start_stepper, opt_state = finished, result.opt_state
    return results
