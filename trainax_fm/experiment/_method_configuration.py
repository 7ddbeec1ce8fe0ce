"""What each training method of the grammar trains with: its configuration."""

from typing import Optional

from ._errors import ConfigError
from ._method import PD_TEACHER_KINDS, TrainMethod, format_method
from ._method_fields import format_lengths, format_schedule


def build_configuration(
    method: TrainMethod, teacher=None, teacher_method: Optional[TrainMethod] = None
):
    """The `trainax_fm.configuration` object of `method` (what `method.configuration()`
    returns; `teacher` and `teacher_method` as there)."""
    from .. import configuration as c

    if method.kind in ("one", "sup"):
        return c.Supervised(method.num_rollout_steps, cut_bptt=method.cut_bptt)
    if method.kind == "div":
        return c.DivertedChainBranchOne(
            method.num_rollout_steps,
            cut_bptt=method.cut_bptt,
            cut_div_chain=method.cut_div_chain,
        )
    if method.kind == "mix":
        return c.MixChainPostPhysics(
            method.num_rollout_steps, method.num_post_physics_steps, cut_bptt=method.cut_bptt
        )
    if method.kind == "res":
        return c.Residuum(
            method.num_rollout_steps,
            cut_bptt=method.cut_bptt,
            cut_prev=method.cut_prev,
            cut_next=method.cut_next,
        )
    if method.kind == "tf":
        schedule = method.teacher_forcing
        if isinstance(schedule, tuple):
            schedule = format_schedule(schedule)
        return c.TeacherForcing(
            method.num_rollout_steps,
            teacher_forcing_probability=schedule,
            cut_bptt=method.cut_bptt,
        )
    if method.kind == "pf":
        return c.Pushforward(
            method.num_rollout_steps,
            num_pushforward_steps=method.num_pushforward_steps,
            random_pushforward=method.random_pushforward,
            cut_bptt=method.cut_bptt,
        )
    if method.kind == "cur":
        return c.RolloutCurriculum(
            c.Supervised(method.num_rollout_steps, cut_bptt=method.cut_bptt),
            format_lengths(method.rollout_lengths),
        )
    if method.kind == "mmd":
        return c.Composite(
            [c.Supervised(1), c.InvariantMeasureMMD(method.num_rollout_steps)],
            [1.0, method.mmd_weight],
        )
    if method.kind == "fm":
        return c.FlowMatching()
    if method.kind == "lsd":
        return c.LagrangianSelfDistillation(teacher=teacher)
    if method.kind == "meanflow":
        return c.MeanFlow()
    if method.kind == "shortcut":
        return c.ShortcutModel()
    if method.kind == "sg":
        return c.SemigroupDistillation(velocity_space=True)
    if method.kind == "pd":
        if teacher is None or teacher_method is None:
            raise ValueError(
                "configuration() of a pd method needs `teacher` (the loaded teacher "
                "velocity) and `teacher_method` (the teacher run's TrainMethod, for "
                f"its step count); got teacher={type(teacher).__name__}, "
                f"teacher_method={teacher_method!r}. Load them with "
                "load_teacher(...) and parse_method(...) of the teacher's config."
            )
        return c.ProgressiveDistillation(
            teacher,
            num_fine_steps=pd_fine_steps(method, teacher_method),
            teacher_method=teacher_method.solver,
            step_sampler=c.FixedStepTimeSampler(1.0 / method.num_sampling_steps),
        )
    raise AssertionError(method.kind)  # pragma: no cover


def pd_fine_steps(method: TrainMethod, teacher_method: TrainMethod) -> int:
    """Teacher steps per student step of `pd;K;TEACHER`: `N / K` for a teacher with
    `N` sampling steps. Raises `ConfigError` unless the teacher is an `fm` or `pd`
    run and `N` is a multiple of `K` larger than `K`."""
    if teacher_method.kind not in PD_TEACHER_KINDS:
        raise ConfigError(
            "training.method",
            "a TEACHER folder of an fm or pd run for pd",
            repr(format_method(teacher_method)),
            "name the results folder of an fm;N run (or of an earlier pd;N stage)",
        )
    teacher_steps, student_steps = teacher_method.num_sampling_steps, method.num_sampling_steps
    if teacher_steps % student_steps or teacher_steps <= student_steps:
        raise ConfigError(
            "training.method",
            f"a student step count K that divides the teacher's N={teacher_steps} "
            f"sampling steps and is smaller (the student takes one step where the "
            f"teacher takes N/K)",
            repr(format_method(method)),
            f"use K = {teacher_steps // 2} (one halving) or another divisor of "
            f"{teacher_steps} below it",
        )
    return teacher_steps // student_steps
