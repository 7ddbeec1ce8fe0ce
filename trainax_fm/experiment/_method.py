"""The methods the runner can train: one `MethodEntry` per kind in `METHODS`.

Each entry holds everything the runner knows about a kind: the fields of its spec, the
usage line and docs row, the configuration it builds, the stepper it samples with, how it
wraps the optimizer and which results folders may teach it. A parsed spec is a
`TrainMethod`, which reads its entry. The grammar that turns spec strings into
`TrainMethod`s and back is in `_method_spec.py`.
"""


import dataclasses
from typing import Callable, Optional, Union

import equinox as eqx
import jax.tree_util as jtu
import optax

from .. import configuration as c
from .. import flow
from .._stepper._noise_input import NoiseInputStepper
from .._stepper._normalized import NormalizedStepper
from ._errors import ConfigError
from ._method_fields import (
    MethodField,
    EMA_PREFIX,
    LengthSchedule,
    Schedule,
    field_error,
    format_float,
    format_flag,
    format_lengths,
    format_schedule,
    parse_count,
    parse_emulator,
    parse_level,
    parse_noise_std,
    parse_decay_field,
    parse_flag_field,
    parse_lengths_field,
    parse_noise_scale,
    format_noise_scale,
    parse_schedule_field,
    parse_solver,
    parse_teacher,
    parse_weight,
)

@dataclasses.dataclass(frozen=True)
class TrainMethod:
    """A parsed training-method spec (the grammar: [`trainax_fm.experiment.parse_method`][]).

    **Arguments:**

    - `kind`: one of `one`, `sup`, `div`, `mix`, `res`, `tf`, `gtf`, `pf`, `cur`, `mmd`,
        `sinkhorn`, `crps`, `refiner`, `fm`, `si`, `lsd`, `meanflow`, `shortcut`, `sg`, `pd`,
        `therm`.
    - `num_rollout_steps`: network steps in the training rollout (1 for `one`, `fm`;
        the largest length for `cur`; the MMD or Sinkhorn rollout for `mmd`, `sinkhorn`;
        each member's rollout for `crps`).
    - `cut_bptt`: stop gradients along the main chain (`sup`, `div`, `mix`, `res`, `tf`,
        `gtf`, `pf`, `cur`).
    - `cut_div_chain`: stop gradients through the reference branch (`div`).
    - `num_post_physics_steps`: reference steps after the network steps (`mix`).
    - `cut_prev`, `cut_next`: stop gradients through the previous/next state of the
        residuum (`res`).
    - `teacher_forcing`: a probability or `((s1, ..., sk), (p1, ..., pk))` (`tf`).
    - `forcing_alpha`: the generalized teacher forcing's `alpha`, a number or
        `((s1, ..., sk), (a1, ..., ak))` (`gtf`).
    - `forcing_every`: the steps between two forcings (`gtf`).
    - `num_pushforward_steps`: steps unrolled without gradient first (`pf`).
    - `random_pushforward`: draw the pushforward depth per update from `0 ... K` (`pf`).
    - `rollout_lengths`: `((s1, ..., sk), (R1, ..., Rk))`, the curriculum (`cur`).
    - `mmd_weight`: the weight of the MMD (`mmd`) or Sinkhorn (`sinkhorn`) term next to
        one-step training.
    - `num_members`: ensemble members per training window (`crps`).
    - `num_refinement_steps`: `K`, refinement steps after the one-step prediction
        (`refiner`).
    - `min_noise_std`: the noise level of the last refinement step (`refiner`).
    - `num_sampling_steps`: flow integration (or map) steps per physical step (`fm`,
        `si`, `lsd`, `meanflow`, `shortcut`, `sg`, `pd`).
    - `solver`: `euler`, `midpoint` or `heun` (`fm`).
    - `teacher`: the results folder of the `fm` run to distil or start from (`lsd`,
        `meanflow`, `shortcut`; required for `sg`; an `fm` or `pd` run for `pd`), the
        emulator's results folder `EMULATOR_RESULTS_DIR` (`therm`), or `None`.
    - `ema_decay`: the decay of the shortcut model's EMA target (`shortcut`), or
        `None` (no EMA: the targets use the current weights).
    - `sampling_noise_scale`: `EPS` of the sampling diffusion `EPS (1 - s)` of a
        stochastic interpolant (`si`), `"follmer"` for the Föllmer diffusion, or
        `None` for the trained one.
    - `num_noise_steps`: `K`, the thermalizer's noise levels (`therm`).
    - `threshold`: the level above which the thermalized rollout denoises a state
        (`therm`), or `None` for `K // 10`
        (`thermalizer_threshold`).
    """

    kind: str
    num_rollout_steps: int = 1
    cut_bptt: bool = False
    cut_div_chain: bool = False
    num_post_physics_steps: int = 0
    cut_prev: bool = False
    cut_next: bool = False
    teacher_forcing: Optional[Schedule] = None
    forcing_alpha: Optional[Schedule] = None
    forcing_every: int = 1
    num_pushforward_steps: int = 0
    random_pushforward: bool = False
    rollout_lengths: Optional[LengthSchedule] = None
    mmd_weight: float = 0.0
    num_members: int = 0
    num_refinement_steps: int = 0
    min_noise_std: float = 1e-3
    num_sampling_steps: int = 0
    solver: str = "euler"
    teacher: Optional[str] = None
    ema_decay: Optional[float] = None
    sampling_noise_scale: Optional[Union[float, str]] = None
    num_noise_steps: int = 0
    threshold: Optional[int] = None

    @property
    def thermalizer_threshold(self) -> int:
        """The threshold of `therm`: the written one, else `K // 10` (states the
        classifier places in the upper nine tenths of the levels are denoised)."""
        return self.num_noise_steps // 10 if self.threshold is None else self.threshold

    @property
    def needs_ref_stepper(self) -> bool:
        """Whether the configuration compares against a reference simulator."""
        return METHODS[self.kind].needs_ref_stepper

    @property
    def needs_residuum(self) -> bool:
        """Whether the configuration needs a residuum function."""
        return METHODS[self.kind].needs_residuum

    @property
    def is_flow_matching(self) -> bool:
        """Whether the emulator is a stochastic flow-matching (or flow-map) stepper."""
        return METHODS[self.kind].flow_matching

    @property
    def required_window_length(self) -> int:
        """Snapshots per training window of the configuration this method trains with."""
        return METHODS[self.kind].window_length(self)

    def configuration(self, teacher=None, teacher_method: Optional["TrainMethod"] = None):
        """Build the `trainax_fm.configuration` object this method trains with.

        **Arguments:**

        - `teacher`: the loaded teacher velocity of `lsd;K;TEACHER` and `pd;K;TEACHER`
            (distilled by the configuration); ignored by the other methods.
        - `teacher_method`: the teacher run's own method (`pd`: its step count and
            solver); ignored by the other methods.

        **Returns:**

        - A configuration instance (MSE time-level loss throughout).
        """
        return METHODS[self.kind].configuration(self, teacher, teacher_method)


def _no_check(method: TrainMethod, spec: str, usage: str) -> None:
    """A kind whose fields need no check across fields."""


def _same_optimizer(method: TrainMethod, optimizer: optax.GradientTransformation):
    return optimizer


def _configuration_windows(method: TrainMethod) -> int:
    return method.configuration().required_window_length


def _teacher_velocity(stepper):
    """The part of a teacher run's stepper a distillation method takes: its velocity."""
    return stepper.velocity


def _whole_stepper(stepper):
    return stepper


def _network_stepper(method: TrainMethod, network: Callable, num_channels: int, teacher):
    """The network itself steps (the deterministic methods)."""
    return network(num_channels)


@dataclasses.dataclass(frozen=True)
class MethodEntry:
    """Everything the runner knows about one method kind: one row of `METHODS`.

    **Arguments:**

    - `kind`: the spec's first field.
    - `usage`: the form error messages quote (`sup;N[;cut_bptt]`).
    - `form`, `summary`: the row of the methods table in the docs.
    - `fields`: the `MethodField`s after the kind, required ones first.
    - `configuration`: `configuration(method, teacher, teacher_method)`, what
        `TrainMethod.configuration` returns.
    - `stepper`: `stepper(method, network, num_channels, teacher)`, the emulator the
        method trains and samples with; `network(in_channels, out_channels=C, *,
        salt=0)` builds a fresh network (another `salt`: another initialisation key).
    - `optimizer`: `optimizer(method, optimizer)`, the optimizer the trainer uses
        (flow maps train only their own weights and keep a moving average apart).
    - `window_length`: the snapshots per training window of a method.
    - `teacher_kinds`: the kinds whose results folders may be its TEACHER.
    - `teacher_role`, `teacher_runs`: what errors call the folder (`TEACHER`) and the
        runs it may hold (`""`: the `teacher_kinds` joined by "or").
    - `teacher_part`: `teacher_part(stepper)`, what the method takes of the first
        seed's stepper of that folder (a distillation: the velocity).
    - `same_data_teacher`: the folder's run must have trained on this run's `[data]`.
    - `models_states`: the trained model learns single states, not steps: its
        `[network] normalize` defaults to `"state"` and may not be `"residual"`.
    - `check`: `check(method, spec, usage)` raises a `ConfigError` for fields that
        parse one by one but not together.
    - `few_step`: a step-size-conditioned flow map with K Euler-form steps.
    - `flow_matching`: the emulator is a stochastic flow-matching (or flow-map) stepper,
        or PDE-Refiner's (a network conditioned like a velocity; its NFE are reported).
    - `needs_ref_stepper`, `needs_residuum`: what the configuration is called with.
    """

    kind: str
    usage: str
    form: str
    summary: str
    fields: tuple[MethodField, ...]
    configuration: Callable
    stepper: Callable = _network_stepper
    optimizer: Callable = _same_optimizer
    window_length: Callable[[TrainMethod], int] = _configuration_windows
    teacher_kinds: tuple[str, ...] = ("fm",)
    teacher_role: str = "TEACHER"
    teacher_runs: str = ""
    teacher_part: Callable = _teacher_velocity
    same_data_teacher: bool = False
    models_states: bool = False
    check: Callable[[TrainMethod, str, str], None] = _no_check
    few_step: bool = False
    flow_matching: bool = False
    needs_ref_stepper: bool = False
    needs_residuum: bool = False


# --- the fields the kinds share ---------------------------------------------------------

N = MethodField("N", "num_rollout_steps", parse_count)
K = MethodField("NUM_SAMPLING_STEPS", "num_sampling_steps", parse_count)
CUT_BPTT = MethodField("cut_bptt", "cut_bptt", parse_flag_field, format_flag, False)
TEACHER = MethodField("TEACHER", "teacher", parse_teacher)
OPTIONAL_TEACHER = dataclasses.replace(TEACHER, default=None)


# --- what each kind trains with ----------------------------------------------------------

def _rollout(cls, *options: str) -> Callable:
    """The builder of `cls(N, option=method.option, ...)`, the rollout configurations
    whose keywords are the method's own attribute names."""

    def build(method, teacher, teacher_method):
        return cls(method.num_rollout_steps, **{name: getattr(method, name) for name in options})

    return build


_SUPERVISED = _rollout(c.Supervised, "cut_bptt")


def _schedule_text(schedule: Schedule):
    """A parsed schedule as the configurations take it: a number, or step pairs as text."""
    return format_schedule(schedule) if isinstance(schedule, tuple) else schedule


def _teacher_forcing(method, teacher, teacher_method):
    return c.TeacherForcing(
        method.num_rollout_steps,
        teacher_forcing_probability=_schedule_text(method.teacher_forcing),
        cut_bptt=method.cut_bptt,
    )


def _generalized_teacher_forcing(method, teacher, teacher_method):
    return c.GeneralizedTeacherForcing(
        method.num_rollout_steps,
        forcing_alpha=_schedule_text(method.forcing_alpha),
        forcing_every=method.forcing_every,
        cut_bptt=method.cut_bptt,
    )


def _curriculum(method, teacher, teacher_method):
    return c.RolloutCurriculum(
        c.Supervised(method.num_rollout_steps, cut_bptt=method.cut_bptt),
        format_lengths(method.rollout_lengths),
    )


def _mmd(method, teacher, teacher_method):
    return c.Composite(
        [c.Supervised(1), c.InvariantMeasureMMD(method.num_rollout_steps)],
        [1.0, method.mmd_weight],
    )


def _sinkhorn(method, teacher, teacher_method):
    return c.Composite(
        [c.Supervised(1), c.InvariantMeasureSinkhorn(method.num_rollout_steps)],
        [1.0, method.mmd_weight],
    )


def _crps(method, teacher, teacher_method):
    return c.CRPSEnsemble(method.num_rollout_steps, num_members=method.num_members)


def _refiner(method, teacher, teacher_method):
    return c.PDERefiner(method.num_refinement_steps, method.min_noise_std)


def _progressive(method, teacher, teacher_method):
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


def _fm_windows(method: TrainMethod) -> int:
    # pd's configuration needs the loaded teacher; it trains on the windows of fm
    return TrainMethod("fm", num_sampling_steps=1).required_window_length


# --- what each kind samples with ---------------------------------------------------------

def _flow_matching_stepper(method, network, num_channels, teacher):
    return flow.FlowMatchingStepper(
        flow.ConditionalVelocity(network(flow.velocity_input_channels(num_channels))),
        method.num_sampling_steps, method.solver,
    )


def _interpolant_stepper(method, network, num_channels, teacher):
    return flow.StochasticInterpolantStepper(
        flow.ConditionalVelocity(network(flow.velocity_input_channels(num_channels))),
        method.num_sampling_steps,
        sampling_noise_scale=method.sampling_noise_scale,
    )


def _few_step_stepper(method, network, num_channels, teacher):
    if teacher is not None:
        # a pd teacher (an earlier stage) already takes the step size
        velocity = teacher if teacher.step_size_input else flow.with_step_size_input(teacher)
    else:
        velocity = flow.ConditionalVelocity(
            network(flow.velocity_input_channels(num_channels, step_size_input=True)),
            step_size_input=True,
        )
    if method.ema_decay is not None:
        return flow.EMAFlowMatchingStepper(
            flow.EMAVelocity(velocity, decay=method.ema_decay), method.num_sampling_steps)
    return flow.FlowMatchingStepper(velocity, method.num_sampling_steps)


def _noise_input_stepper(method, network, num_channels, teacher):
    # One noise channel per state channel: enough to express a different spread for
    # every channel without widening the network much.
    return NoiseInputStepper(network(2 * num_channels), num_noise_channels=num_channels)


def _refiner_stepper(method, network, num_channels, teacher):
    return flow.PDERefinerStepper(
        flow.ConditionalVelocity(network(flow.velocity_input_channels(num_channels))),
        method.num_refinement_steps, method.min_noise_std,
    )


def _flow_map_stepper(method, network, num_channels, teacher):
    return flow.FlowMapStepper(flow.FlowMap(teacher), method.num_sampling_steps)


def _flow_map_optimizer(method, optimizer):
    # the teacher velocity inside the flow map stays fixed
    return flow.flow_map_optimizer(optimizer)


def _ema_optimizer(method, optimizer):
    # with ema=, the average moves after every update, not by the gradient
    return optimizer if method.ema_decay is None else flow.flow_map_optimizer(optimizer)


def _thermalized_stepper(method, network, num_channels, teacher):
    levels = method.num_noise_steps
    # different keys: the two networks must not start from correlated weights
    thermalizer = flow.Thermalizer(
        network(num_channels + 1), network(num_channels, levels, salt=1),
        num_noise_steps=levels,
    )
    return flow.ThermalizedStepper(teacher, thermalizer, threshold=method.thermalizer_threshold)


_TRAINED, _FROZEN = "trained", "frozen"


def _frozen_emulator_labels(params):
    labels = jtu.tree_map(lambda _: _TRAINED, params)
    frozen = [lambda s: s.stepper]
    if isinstance(params.thermalizer, NormalizedStepper):
        frozen.append(lambda s: s.thermalizer.normalizer)
    for where in frozen:
        labels = eqx.tree_at(
            where, labels, replace_fn=lambda node: jtu.tree_map(lambda _: _FROZEN, node))
    return labels


def _thermalizer_optimizer(method, optimizer):
    # Only the thermalizer trains: the emulator of EMULATOR_RESULTS_DIR and the
    # normalisation statistics stay exactly as loaded (no update, no optimizer state).
    return optax.multi_transform(
        {_TRAINED: optimizer, _FROZEN: optax.set_to_zero()}, _frozen_emulator_labels)


def _threshold_below_levels(method: TrainMethod, spec: str, usage: str) -> None:
    if method.num_noise_steps < 2:
        raise field_error(
            spec,
            f"at least 2 noise levels K for a thermalizer, found {method.num_noise_steps}",
            f"write it as {usage!r} with K >= 2 (e.g. therm;100;results/emulator)",
        )
    if not method.thermalizer_threshold < method.num_noise_steps:
        raise field_error(
            spec,
            f"a THRESHOLD below the K={method.num_noise_steps} noise levels (0 ... "
            f"{method.num_noise_steps - 1}), found {method.threshold}",
            f"lower THRESHOLD, or leave it out for K // 10 = {method.num_noise_steps // 10}",
        )


def _dyadic_steps(method: TrainMethod, spec: str, usage: str) -> None:
    steps = method.num_sampling_steps
    if steps & (steps - 1):
        raise field_error(
            spec,
            f"a power of two of sampling steps for a shortcut model, found {steps}",
            "write 1, 2, 4, 8, ... (the model is trained on dyadic step sizes)",
        )


def _two_members(method: TrainMethod, spec: str, usage: str) -> None:
    if method.num_members < 2:
        raise field_error(
            spec,
            f"at least 2 ensemble members M for the fair CRPS, found {method.num_members}",
            f"write it as {usage!r} with M >= 2 (e.g. crps;4)",
        )


_FLOW = dict(flow_matching=True)
_FEW_STEP = dict(_FLOW, few_step=True, stepper=_few_step_stepper)

METHODS: dict[str, MethodEntry] = {entry.kind: entry for entry in (
    MethodEntry(
        "one", "one", "one", "one-step supervised, `Supervised(1)`", (), _SUPERVISED,
    ),
    MethodEntry(
        "sup", "sup;N[;cut_bptt]", "sup;N[;cut_bptt]", "`Supervised(N)`", (N, CUT_BPTT),
        _SUPERVISED,
    ),
    MethodEntry(
        "div", "div;N[;cut_bptt[;cut_div_chain]]", "div;N[;cut_bptt[;cut_div_chain]]",
        "`DivertedChainBranchOne(N)` (needs a reference stepper)",
        (N, CUT_BPTT,
         MethodField("cut_div_chain", "cut_div_chain", parse_flag_field, format_flag, False)),
        _rollout(c.DivertedChainBranchOne, "cut_bptt", "cut_div_chain"), needs_ref_stepper=True,
    ),
    MethodEntry(
        "mix", "mix;N;P[;cut_bptt]", "mix;N;P[;cut_bptt]",
        "`MixChainPostPhysics(N, P)` (needs a reference stepper)",
        (N, MethodField("P", "num_post_physics_steps", parse_count), CUT_BPTT),
        _rollout(c.MixChainPostPhysics, "num_post_physics_steps", "cut_bptt"),
        needs_ref_stepper=True,
    ),
    MethodEntry(
        "res", "res;N[;cut_bptt[;cut_prev[;cut_next]]]",
        "res;N[;cut_bptt[;cut_prev[;cut_next]]]",
        "`Residuum(N)`, residuum `u_next - P(u_prev)` (needs a reference stepper)",
        (N, CUT_BPTT,
         MethodField("cut_prev", "cut_prev", parse_flag_field, format_flag, False),
         MethodField("cut_next", "cut_next", parse_flag_field, format_flag, False)),
        _rollout(c.Residuum, "cut_bptt", "cut_prev", "cut_next"), needs_residuum=True,
    ),
    MethodEntry(
        "tf", "tf;N;SCHEDULE[;cut_bptt]", "tf;N;SCHEDULE[;cut_bptt]",
        "`TeacherForcing(N)`, `SCHEDULE` a probability or `step:p` pairs such as "
        "`200:1.0,400:0.5,600:0.0`",
        (N, MethodField("SCHEDULE", "teacher_forcing", parse_schedule_field, format_schedule),
         CUT_BPTT),
        _teacher_forcing,
    ),
    MethodEntry(
        "gtf", "gtf;N;ALPHA[;EVERY[;cut_bptt]]", "gtf;N;ALPHA[;EVERY[;cut_bptt]]",
        "`GeneralizedTeacherForcing(N, forcing_alpha=ALPHA, forcing_every=EVERY)`: after "
        "every `EVERY`-th step (default 1) the state becomes "
        "`ALPHA * truth + (1 - ALPHA) * state`; `ALPHA` a number in `[0, 1]` or "
        "`step:alpha` pairs like `SCHEDULE`",
        (N, MethodField("ALPHA", "forcing_alpha", parse_schedule_field, format_schedule),
         MethodField("EVERY", "forcing_every", parse_count, str, 1), CUT_BPTT),
        _generalized_teacher_forcing,
    ),
    MethodEntry(
        "pf", "pf;N;K[;random[;cut_bptt]]", "pf;N;K[;random[;cut_bptt]]",
        "`Pushforward(N, num_pushforward_steps=K)`: `K` steps without gradient, then `N` "
        "supervised ones; `random`: the depth drawn per update from `0 ... K`",
        (N, MethodField("K", "num_pushforward_steps", parse_count),
         MethodField("random", "random_pushforward", parse_flag_field, format_flag, False),
         CUT_BPTT),
        _rollout(c.Pushforward, "num_pushforward_steps", "random_pushforward", "cut_bptt"),
    ),
    MethodEntry(
        "cur", "cur;N;STEP:LENGTH,...[;cut_bptt]", "cur;N;LENGTHS[;cut_bptt]",
        "`RolloutCurriculum(Supervised(N), LENGTHS)`, `LENGTHS` `step:length` pairs such as "
        "`500:1,1000:2,1500:4` (lengths `1 ... N`)",
        (N, MethodField("LENGTHS", "rollout_lengths", parse_lengths_field, format_lengths),
         CUT_BPTT),
        _curriculum,
    ),
    MethodEntry(
        "mmd", "mmd;N;WEIGHT", "mmd;N;WEIGHT",
        "`Composite([Supervised(1), InvariantMeasureMMD(N)], [1, WEIGHT])`: one-step "
        "training plus the invariant-measure MMD of `N`-step rollouts",
        (N, MethodField("WEIGHT", "mmd_weight", parse_weight, format_float)),
        _mmd,
    ),
    MethodEntry(
        "sinkhorn", "sinkhorn;N;WEIGHT", "sinkhorn;N;WEIGHT",
        "`Composite([Supervised(1), InvariantMeasureSinkhorn(N)], [1, WEIGHT])`: one-step "
        "training plus the debiased Sinkhorn divergence of `N`-step rollouts",
        (N, MethodField("WEIGHT", "mmd_weight", parse_weight, format_float)),
        _sinkhorn,
    ),
    MethodEntry(
        "crps", "crps;M[;N]", "crps;M[;N]",
        "`CRPSEnsemble(N, num_members=M)`: `M` members of a `NoiseInputStepper` (`C` noise "
        "channels) per window, `N` steps each (default 1), trained with the fair CRPS; "
        "sampled with 1 NFE per member and step",
        (MethodField("M", "num_members", parse_count),
         dataclasses.replace(N, default=1)),
        _crps, stepper=_noise_input_stepper, check=_two_members,
    ),
    MethodEntry(
        "refiner", "refiner;K[;MIN_NOISE_STD]", "refiner;K[;MIN_NOISE_STD]",
        "`PDERefiner(K, MIN_NOISE_STD)`: a one-step prediction refined `K` times by "
        "denoising at noise levels `MIN_NOISE_STD ** (k / K)` (default `1e-3`); `K + 1` NFE",
        (MethodField("K", "num_refinement_steps", parse_count),
         MethodField("MIN_NOISE_STD", "min_noise_std", parse_noise_std, format_float, 1e-3)),
        _refiner, stepper=_refiner_stepper, **_FLOW,
    ),
    MethodEntry(
        "fm", "fm;NUM_SAMPLING_STEPS[;euler|midpoint|heun]", "fm;K[;SOLVER]",
        "`FlowMatching()`; the emulator samples with `K` steps of `euler`, `midpoint` or "
        "`heun`",
        (K, MethodField("SOLVER", "solver", parse_solver, str, "euler")),
        lambda method, teacher, teacher_method: c.FlowMatching(),
        stepper=_flow_matching_stepper, **_FLOW,
    ),
    MethodEntry(
        "si", "si;NUM_SAMPLING_STEPS[;EPS]", "si;K[;EPS]",
        "`StochasticInterpolant()`: flow matching from the current state (noise scale 1, "
        "`beta(s) = s^2`); the emulator samples with `K` Euler-Maruyama steps (`K` NFE) of "
        "the diffusion `EPS (1 - s)` or, for `follmer`, the paper's Foellmer diffusion, "
        "chosen after training (default: the trained `1 - s`)",
        (K, MethodField("EPS", "sampling_noise_scale", parse_noise_scale, format_noise_scale,
                        None)),
        lambda method, teacher, teacher_method: c.StochasticInterpolant(),
        stepper=_interpolant_stepper, **_FLOW,
    ),
    MethodEntry(
        "lsd", "lsd;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR]", "lsd;K[;TEACHER]",
        "`LagrangianSelfDistillation()`; the emulator samples with `K` flow-map steps "
        "(`K` NFE)",
        (K, OPTIONAL_TEACHER),
        lambda method, teacher, teacher_method: c.LagrangianSelfDistillation(teacher=teacher),
        **_FEW_STEP,
    ),
    MethodEntry(
        "meanflow", "meanflow;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR]",
        "meanflow;K[;TEACHER]", "`MeanFlow()`; `K` average-velocity steps (`K` NFE)",
        (K, OPTIONAL_TEACHER),
        lambda method, teacher, teacher_method: c.MeanFlow(),
        **_FEW_STEP,
    ),
    MethodEntry(
        "shortcut", "shortcut;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR][;ema=DECAY]",
        "shortcut;K[;TEACHER][;ema=DECAY]",
        "`ShortcutModel()`; `K` shortcut steps, `K` a power of two (`K` NFE); `ema=0.999`: "
        "EMA target, sampled with the average",
        (K, OPTIONAL_TEACHER,
         MethodField("DECAY", "ema_decay", parse_decay_field, repr, None, EMA_PREFIX)),
        lambda method, teacher, teacher_method: c.ShortcutModel(),
        optimizer=_ema_optimizer, check=_dyadic_steps, **_FEW_STEP,
    ),
    MethodEntry(
        "sg", "sg;NUM_SAMPLING_STEPS;TEACHER_RESULTS_DIR", "sg;K;TEACHER",
        "`SemigroupDistillation()` of a flow map on the teacher; `K` map steps (`2K` NFE)",
        (K, TEACHER),
        lambda method, teacher, teacher_method: c.SemigroupDistillation(velocity_space=True),
        optimizer=_flow_map_optimizer, **dict(_FEW_STEP, stepper=_flow_map_stepper),
    ),
    MethodEntry(
        "pd", "pd;NUM_SAMPLING_STEPS;TEACHER_RESULTS_DIR", "pd;K;TEACHER",
        "`ProgressiveDistillation()`: one student step of size `1/K` imitates `N/K` steps of "
        "the teacher's `N`; `K` NFE",
        (K, TEACHER),
        _progressive, teacher_kinds=("fm", "pd"), window_length=_fm_windows, **_FEW_STEP,
    ),
)}

# Registered after the others: any of them may be the emulator it thermalizes.
METHODS["therm"] = MethodEntry(
    "therm", "therm;K;EMULATOR_RESULTS_DIR[;THRESHOLD]", "therm;K;EMULATOR[;THRESHOLD]",
    "`ThermalizerDiffusion()`: a `Thermalizer` with `K` noise levels (denoiser: the network "
    "with `C + 1` inputs; classifier: `K` outputs, averaged over space) learns the run's "
    "single states; evaluated as `ThermalizedStepper(emulator, thermalizer, "
    "threshold=THRESHOLD)` (default `K // 10`) around the final network (first seed) of "
    "`EMULATOR`, a finished run on the same data; per step one classifier call, plus "
    "`k̂` denoiser calls where it denoises",
    (MethodField("K", "num_noise_steps", parse_count),
     MethodField("EMULATOR_RESULTS_DIR", "teacher", parse_emulator),
     MethodField("THRESHOLD", "threshold", parse_level, str, None)),
    lambda method, teacher, teacher_method: c.ThermalizerDiffusion(),
    stepper=_thermalized_stepper, optimizer=_thermalizer_optimizer,
    check=_threshold_below_levels, teacher_kinds=tuple(METHODS),
    teacher_role="EMULATOR_RESULTS_DIR", teacher_runs="emulator run",
    teacher_part=_whole_stepper, same_data_teacher=True, models_states=True,
)

KINDS = tuple(METHODS)
FEW_STEP_KINDS = tuple(kind for kind, entry in METHODS.items() if entry.few_step)
# the methods whose results folder can teach `pd` (step counts from their own spec)
PD_TEACHER_KINDS = METHODS["pd"].teacher_kinds


def pd_fine_steps(method: TrainMethod, teacher_method: TrainMethod) -> int:
    """Teacher steps per student step of `pd;K;TEACHER`: `N / K` for a teacher with
    `N` sampling steps. Raises `ConfigError` unless the teacher is an `fm` or `pd`
    run and `N` is a multiple of `K` larger than `K`."""
    if teacher_method.kind not in METHODS[method.kind].teacher_kinds:
        raise ConfigError(
            "training.method",
            "a TEACHER folder of an fm or pd run for pd",
            repr(f"{teacher_method.kind};{teacher_method.num_sampling_steps}"),
            "name the results folder of an fm;N run (or of an earlier pd;N stage)",
        )
    teacher_steps, student_steps = teacher_method.num_sampling_steps, method.num_sampling_steps
    if teacher_steps % student_steps or teacher_steps <= student_steps:
        raise ConfigError(
            "training.method",
            f"a student step count K that divides the teacher's N={teacher_steps} "
            f"sampling steps and is smaller (the student takes one step where the "
            f"teacher takes N/K)",
            repr(f"{method.kind};{method.num_sampling_steps}"),
            f"use K = {teacher_steps // 2} (one halving) or another divisor of "
            f"{teacher_steps} below it",
        )
    return teacher_steps // student_steps
