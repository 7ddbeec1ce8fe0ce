import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import equinox as eqx
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._atomic import save_tree_atomic
from ._general import GeneralTrainer, trainax_outputs
from ._checks import check_callback, check_optimizer
from .._loop._options import (
    EngineOptions,
    PathLike,
    make_options,
)
from ._keywords import EngineKeywords, keyword_init
from ._stages import Stage, train_stages
from ..data._mixer import effective_batch_size
from .._state._train_state import TrainResult, TrainState
from .._argument_checks import check_bool, check_positive_int, is_traced
from ..data._windows import TrajectorySubStacker
from ..hook._base import AbstractHook
from ..configuration import ProgressiveDistillation
from ..configuration._flow_matching import check_loss
from ..configuration._flow_time import (
    AbstractTimeSampler,
    FixedStepTimeSampler,
    check_time_sampler,
    check_unit,
)
from ..flow._integrate import FlowModel, check_method_for
from ..flow._optimizer import flow_map_optimizer
from ..flow._solvers import AbstractSolver, Method, get_solver
from ..flow._steppers import FlowMapStepper, FlowMatchingStepper, as_flow_model
from ..loss import BaseLoss, MSELoss


@dataclasses.dataclass(eq=False, repr=False)
class _DistillationKeywords:
    data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]]
    _: dataclasses.KW_ONLY
    teacher: Any
    optimizer: optax.GradientTransformation
    num_training_steps: int
    batch_size: int
    num_teacher_steps: int
    num_stages: int = 1
    num_fine_steps: int = 2
    teacher_method: Method = "euler"
    student_method: Method = "euler"
    step_sampler: Optional[AbstractTimeSampler] = None
    jitter: float = 0.0
    time_level_loss: BaseLoss = MSELoss()
    num_input_steps: int = 1
    velocity_space: bool = False
    cosine_decay: bool = True
    final_lr_fraction: float = 0.0
    checkpoint_path: Optional[PathLike] = None
    callback_fn: Optional[Callable] = None
    do_sub_stacking: bool = True


@dataclasses.dataclass(eq=False, repr=False)
class _ProgressiveDistillationKeywords(EngineKeywords, _DistillationKeywords):
    """The keywords of `ProgressiveDistillationTrainer`: the distillation's and the
    engine's (`checkpoint_path` stays where the distillation declares it)."""


class ProgressiveDistillationTrainer(eqx.Module):
    r"""Multistage progressive distillation in one line.

    Stage `s = 0, ..., num_stages - 1` trains the student with
    [`trainax_fm.configuration.ProgressiveDistillation`][]: one student step of size
    `Δ_s = K^{s+1} / N` imitates `K` steps of size `Δ_s / K` of the frozen teacher,
    where `N = num_teacher_steps` is the number of steps the original teacher samples
    with and `K = num_fine_steps`. After stage `s` the student samples with
    `N / K^{s+1}` steps and becomes the teacher of stage `s + 1` (stepped with
    `student_method`); training continues from its weights with a fresh optimizer
    state. Each stage runs `num_training_steps` updates under one cosine learning-rate
    cycle (`cosine_decay=True`): the updates of `optimizer` are multiplied by
    `optax.cosine_decay_schedule(1, num_training_steps, alpha=final_lr_fraction)`,
    restarted per stage. Only the student is trained and (optionally) checkpointed;
    parameters of a frozen `FlowMap` velocity are masked out of the optimizer.

    By default the time of each stage lies on the student's grid:
    `FixedStepTimeSampler(Δ_s, jitter)`; pass `step_sampler` to use one sampler in
    every stage instead.

    ```python
    student = tx.flow.FlowMatchingStepper(
        tx.flow.with_step_size_input(teacher_velocity), num_steps=16
    )
    trainer = tx.trainer.ProgressiveDistillationTrainer(
        data, teacher=teacher_velocity, optimizer=optax.adam(1e-4),
        num_training_steps=2_000, batch_size=32, num_teacher_steps=16, num_stages=3,
    )
    student, losses = trainer(student, jax.random.key(0))  # samples with 2 steps
    ```

    **Arguments:**

    - `data_trajectories`: trajectories `(S, T, C, *spatial)` (one array).
    - `teacher`: the trained velocity (or flow map, or a stepper wrapping one).
    - `optimizer`: an `optax.GradientTransformation`; its learning rate is the peak of
        each stage's cosine cycle.
    - `num_training_steps`: updates PER STAGE.
    - `batch_size`: windows per update.
    - `num_teacher_steps`: `N`, the teacher's number of sampling steps; must be
        divisible by `K^num_stages`.
    - `num_stages`: the number of halvings (for `K = 2`) of the step count.
    - `num_fine_steps`: `K`, teacher steps per student step (default 2).
    - `teacher_method`: the solver of the original (plain velocity) teacher.
    - `student_method`: how the student steps (and, from stage 1 on, the teacher).
    - `step_sampler`: `None` (per-stage fixed step, see above) or one sampler for all
        stages.
    - `jitter`: jitter of the default per-stage sampler (see
        [`trainax_fm.configuration.FixedStepTimeSampler`][]).
    - `time_level_loss`, `num_input_steps`, `velocity_space`: see
        [`trainax_fm.configuration.ProgressiveDistillation`][].
    - `cosine_decay`: one cosine cycle per stage (default `True`); `False` keeps the
        optimizer's own schedule.
    - `final_lr_fraction`: the cosine cycle ends at this fraction of the peak.
    - `checkpoint_path`: a directory; if given, the student after stage `s` is written
        to `{checkpoint_path}/student_stage_{s}.eqx` (`eqx.tree_serialise_leaves`,
        atomic), and the resumable [`trainax_fm.TrainState`][] to
        `{checkpoint_path}/train_state.eqx` every `checkpoint_every` updates and at the
        end of each stage; continue an interrupted run with
        `trainer.train(resume_from=tx.load_train_state(...))`. Not available under
        `vmap`/`jit`.
    - `callback_fn`: a callback run in every stage (`update_i` restarts at 0).
    - `do_sub_stacking`: as in the other trainers.
    - the other engine options, fields of [`trainax_fm.EngineOptions`][].

    The stages run on the one training loop ([`trainax_fm.train_stages`][]); see
    `stages()`.
    """

    trajectory_sub_stacker: TrajectorySubStacker
    teacher: FlowModel
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    num_training_steps: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    num_teacher_steps: int = eqx.field(static=True)
    num_stages: int = eqx.field(static=True)
    num_fine_steps: int = eqx.field(static=True)
    teacher_solver: AbstractSolver
    student_solver: AbstractSolver
    step_sampler: Optional[AbstractTimeSampler]
    jitter: float = eqx.field(static=True)
    time_level_loss: BaseLoss
    num_input_steps: int = eqx.field(static=True)
    velocity_space: bool = eqx.field(static=True)
    cosine_decay: bool = eqx.field(static=True)
    final_lr_fraction: float = eqx.field(static=True)
    checkpoint_path: Optional[str] = eqx.field(static=True)
    callback_fn: Optional[Callable] = eqx.field(static=True)
    options: EngineOptions

    __init__ = keyword_init(_ProgressiveDistillationKeywords)

    def initialise(
        self,
        data_trajectories: PyTree[Float[Array, "num_trajectories time ..."]],
        *,
        teacher,
        optimizer: optax.GradientTransformation,
        num_training_steps: int,
        batch_size: int,
        num_teacher_steps: int,
        num_stages: int,
        num_fine_steps: int,
        teacher_method: Method,
        student_method: Method,
        step_sampler: Optional[AbstractTimeSampler],
        jitter: float,
        time_level_loss: BaseLoss,
        num_input_steps: int,
        velocity_space: bool,
        cosine_decay: bool,
        final_lr_fraction: float,
        checkpoint_path: Optional[PathLike],
        callback_fn: Optional[Callable],
        do_sub_stacking: bool,
        **engine_options: Any,
    ) -> None:
        """Check the arguments and set the fields (what `__init__` runs, with every
        keyword filled in). `checkpoint_path` has this trainer's own meaning (a
        directory), so it is not among the engine options passed on."""
        check_optimizer(optimizer)
        self.teacher = as_flow_model(teacher, "teacher")
        self.optimizer = optimizer
        self.num_training_steps = check_positive_int(num_training_steps, "num_training_steps")
        self.num_teacher_steps = check_positive_int(num_teacher_steps, "num_teacher_steps")
        self.num_stages = check_positive_int(num_stages, "num_stages")
        self.num_fine_steps = check_positive_int(num_fine_steps, "num_fine_steps")
        factor = self.num_fine_steps**self.num_stages
        if self.num_teacher_steps % factor != 0:
            raise ValueError(
                f"`num_teacher_steps` ({num_teacher_steps}) must be divisible by "
                f"num_fine_steps**num_stages = {self.num_fine_steps}**{self.num_stages} "
                f"= {factor}, so that every stage's student takes a whole number of "
                "steps. Use fewer stages or a teacher step count like "
                f"{factor * max(1, round(self.num_teacher_steps / factor))}."
            )
        self.teacher_solver = get_solver(teacher_method, "teacher_method")
        check_method_for(self.teacher, self.teacher_solver, "teacher_method")
        self.student_solver = get_solver(student_method, "student_method")
        self.step_sampler = (
            None
            if step_sampler is None
            else check_time_sampler(step_sampler, "step_sampler", type(self).__name__)
        )
        self.jitter = check_unit(jitter, "jitter", type(self).__name__)
        self.time_level_loss = check_loss(time_level_loss, type(self).__name__)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.velocity_space = check_bool(velocity_space, "velocity_space")
        self.cosine_decay = check_bool(cosine_decay, "cosine_decay")
        self.final_lr_fraction = float(final_lr_fraction)
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(
                f"`final_lr_fraction` must lie in [0, 1], got {final_lr_fraction}."
            )
        self.checkpoint_path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        check_callback(callback_fn)
        self.callback_fn = callback_fn
        state_path = None if checkpoint_path is None else self.train_state_file()
        self.options = make_options(**engine_options, checkpoint_path=state_path)
        self.trajectory_sub_stacker = TrajectorySubStacker(
            data_trajectories, self.num_input_steps + 1, do_sub_stacking=do_sub_stacking
        )
        self.batch_size = effective_batch_size(
            self.trajectory_sub_stacker.num_total_samples,
            check_positive_int(batch_size, "batch_size"),
        )

    # --- the stages ------------------------------------------------------------------

    def student_num_steps(self, stage: int) -> int:
        """Sampling steps of the student after `stage` (0-based): `N / K^(stage+1)`."""
        stage = check_positive_int(stage, "stage", minimum=0)
        return self.num_teacher_steps // self.num_fine_steps ** (stage + 1)

    def stage_configuration(self, stage: int, teacher) -> ProgressiveDistillation:
        """The configuration of `stage` with the given (frozen) teacher."""
        sampler = self.step_sampler
        if sampler is None:
            sampler = FixedStepTimeSampler(1.0 / self.student_num_steps(stage), self.jitter)
        return ProgressiveDistillation(
            teacher,
            num_fine_steps=self.num_fine_steps,
            teacher_method=self.teacher_solver if stage == 0 else self.student_solver,
            student_method=self.student_solver,
            step_sampler=sampler,
            time_level_loss=self.time_level_loss,
            num_input_steps=self.num_input_steps,
            velocity_space=self.velocity_space,
        )

    def stage_optimizer(self) -> optax.GradientTransformation:
        """The optimizer of one stage (a fresh state is created per stage)."""
        optimizer = self.optimizer
        if self.cosine_decay:
            schedule = optax.cosine_decay_schedule(
                1.0, self.num_training_steps, alpha=self.final_lr_fraction
            )
            optimizer = optax.chain(optimizer, optax.scale_by_schedule(schedule))
        return flow_map_optimizer(optimizer)

    def stage_trainer(self, stage: int, teacher) -> GeneralTrainer:
        """The [`trainax_fm.GeneralTrainer`][] that runs `stage`."""
        return GeneralTrainer(
            self.trajectory_sub_stacker,
            self.stage_configuration(stage, teacher),
            optimizer=self.stage_optimizer(),
            num_minibatches=self.num_training_steps,
            batch_size=self.batch_size,
            callback_fn=self.callback_fn,
            **self.options.as_dict(),
        )

    def stages(self) -> list[Stage]:
        """The stages: stage `s` distils the student it starts from (the teacher for
        `s = 0`) with a fresh optimizer state and ends by setting the student's number
        of sampling steps to `N / K^(s+1)`."""
        optimizer = self.stage_optimizer()

        def stage(index: int) -> Stage:
            def configuration(start):
                teacher = self.teacher if index == 0 else as_flow_model(start, "student")
                return self.stage_configuration(index, teacher)

            return Stage(
                configuration,
                optimizer,
                self.num_training_steps,
                finish=lambda student: self._final_stepper(
                    student, self.student_num_steps(index)
                ),
            )

        return [stage(index) for index in range(self.num_stages)]

    def checkpoint_file(self, stage: int) -> Optional[str]:
        """Where the student of `stage` is written (`None` without `checkpoint_path`)."""
        if self.checkpoint_path is None:
            return None
        return os.path.join(self.checkpoint_path, f"student_stage_{stage}.eqx")

    def train_state_file(self) -> Optional[str]:
        """Where the resumable train state is written (`None` without `checkpoint_path`)."""
        if self.checkpoint_path is None:
            return None
        return os.path.join(self.checkpoint_path, "train_state.eqx")

    def _final_stepper(self, student, num_steps: int):
        if isinstance(student, FlowMatchingStepper):
            return FlowMatchingStepper(
                student.velocity,
                num_steps,
                self.student_solver,
                num_input_steps=student.num_input_steps,
                unroll=student.unroll,
            )
        if isinstance(student, FlowMapStepper):
            return FlowMapStepper(
                student.flow_map,
                num_steps,
                num_input_steps=student.num_input_steps,
                unroll=student.unroll,
            )
        return student

    def train(
        self,
        student: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        *,
        resume_from: Optional[TrainState] = None,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
        hooks: Sequence[AbstractHook] = (),
    ) -> list[TrainResult]:
        """Run all stages (or, with `resume_from`, the rest of an interrupted run).

        **Arguments:**

        - `student`: the initial student: a velocity (typically
            `with_step_size_input(teacher)` or a copy of the teacher), a flow map, or a
            `FlowMatchingStepper`/`FlowMapStepper` holding one.
        - `key`: the run's random key (split into one key per stage).
        - `resume_from`: the state in `{checkpoint_path}/train_state.eqx`, read with
            `tx.load_train_state(path, student, trainer.stage_optimizer())`.
        - `record_loss_every`, `spawn_tqdm`, `hooks`: as in
            [`trainax_fm.GeneralTrainer.train`][] (the hooks run in every stage).

        **Returns:**

        - One [`trainax_fm.TrainResult`][] per stage run. The student of the last
            result is the distilled one. A `FlowMatchingStepper`/`FlowMapStepper`
            student comes back ready to sample: `num_steps` set to that stage's step
            count `N / K^(s+1)` and (for a velocity) `method` set to `student_method`.
        """
        if resume_from is None:
            as_flow_model(student, "student")
            check_method_for(as_flow_model(student), self.student_solver, "student_method")
        if self.checkpoint_path is not None and is_traced((student, key)):
            raise ValueError(
                "`checkpoint_path` cannot be used while tracing (inside jax.jit or "
                "eqx.filter_vmap): arrays cannot be written to disk there. Drop "
                "`checkpoint_path` and save the returned students yourself."
            )
        return train_stages(
            self.stage_trainer(0, self.teacher),
            self.stages(),
            student,
            key,
            resume_from=resume_from,
            record_loss_every=record_loss_every,
            spawn_tqdm=spawn_tqdm,
            stage_hooks=lambda stage: [_SaveStudent(self.checkpoint_file(stage)), *hooks],
        )

    def __call__(
        self,
        student: eqx.Module,
        key: PRNGKeyArray,
        *,
        return_loss_history: bool = True,
        record_loss_every: int = 1,
        spawn_tqdm: bool = True,
    ):
        """Run all stages (trainax-style return values).

        **Returns:**

        - `(student, loss_history)` with the losses of all stages concatenated
          (`num_stages * recorded` entries); `student` alone if
          `return_loss_history=False`; with a callback the concatenated aux history is
          appended.
        """
        results = self.train(
            student, key, record_loss_every=record_loss_every, spawn_tqdm=spawn_tqdm
        )
        combined = TrainResult(
            results[-1].stepper,
            results[-1].opt_state,
            jnp.concatenate([r.loss_history for r in results]),
            [entry for r in results for entry in r.aux_history],
            results[-1].train_state,
        )
        return trainax_outputs(combined, return_loss_history, self.callback_fn is not None)




class _SaveStudent(AbstractHook):
    """Write the student of a finished stage (student only, no optimizer state)."""

    def __init__(self, path: Optional[str]):
        self.path = path

    def on_end(self, loop) -> None:
        if self.path is not None and not loop.traced and loop.step == loop.stop:
            save_tree_atomic(self.path, loop.stepper)
