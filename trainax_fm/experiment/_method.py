r"""The training-method grammar: one short string names a training methodology.

The grammar extends APEBench's train strings (`"one"`, `"sup;5"`, `"div;5;true"`) to
every configuration the runner can build. Fields are separated by `;`, without
spaces. `N` is a positive integer, a *flag* is one of `true`, `false`, `True`,
`False`; optional trailing fields default to `false`.

| spec | configuration | needs |
| --- | --- | --- |
| `one` | `Supervised(1)`: one-step training | |
| `sup;N[;cut_bptt]` | `Supervised(N)`: N-step unrolled rollout against data | |
| `div;N[;cut_bptt[;cut_div_chain]]` | `DivertedChainBranchOne(N)` | reference stepper |
| `mix;N;P[;cut_bptt]` | `MixChainPostPhysics(N, P)`: N network then P reference steps | reference stepper |
| `res;N[;cut_bptt[;cut_prev[;cut_next]]]` | `Residuum(N)` | residuum |
| `tf;N;SCHEDULE[;cut_bptt]` | `TeacherForcing(N, teacher_forcing_probability=SCHEDULE)` | |
| `pf;N;K[;random[;cut_bptt]]` | `Pushforward(N, num_pushforward_steps=K, random_pushforward=random)` | |
| `cur;N;LENGTHS[;cut_bptt]` | `RolloutCurriculum(Supervised(N), LENGTHS)` | |
| `mmd;N;WEIGHT` | `Composite([Supervised(1), InvariantMeasureMMD(N)], [1, WEIGHT])` | |
| `fm;K[;SOLVER]` | `FlowMatching()`; the emulator samples with K steps of SOLVER | |
| `lsd;K[;TEACHER]` | `LagrangianSelfDistillation()`; K map steps per physical step | |
| `meanflow;K[;TEACHER]` | `MeanFlow()`; K average-velocity steps | |
| `shortcut;K[;TEACHER][;ema=DECAY]` | `ShortcutModel()`; K shortcut steps (K a power of two) | |
| `sg;K;TEACHER` | `SemigroupDistillation()` of `FlowMap(teacher)`; K map steps | a teacher |
| `pd;K;TEACHER` | `ProgressiveDistillation()`: one student step imitates N/K teacher steps | a teacher |

The few-step flow maps (`lsd`, `meanflow`, `shortcut`) train a step-size-conditioned
velocity `u(x, y, t, d)` and sample with K Euler-form steps `x + d u` (K network
evaluations); `sg` samples with K flow-map steps (2K evaluations). `TEACHER` is the
results folder of a finished `fm` run on the same data (a path without `;`): `lsd`
then distils that velocity (Lagrangian distillation, target `teacher(X_(s,t))`),
`meanflow` and `shortcut` start from it (the step-size channel zero-initialised, so
training begins at the teacher's Euler step), `sg` builds its flow map on it.
`ema=DECAY` (a number in `[0, 1)`) gives the shortcut model an EMA target: the
self-consistency targets use an exponential moving average of the weights, and the
emulator samples with the average ([`trainax_fm.flow.EMAFlowMatchingStepper`][]).

`pd;K;TEACHER` is one stage of progressive distillation: the teacher (an `fm;N` run,
or an earlier `pd;N` run) samples with `N` steps, the student (started from the
teacher's weights) learns to take one step of size `1/K` where the teacher takes
`N/K` (`N` a multiple of `K` larger than `K`), and samples with `K` steps (`K` NFE).
Chaining runs halves the step count stage by stage, each stage a results folder:
`pd;8;results/fm16`, then `pd;4;results/pd8`, and so on.

`SCHEDULE` is a probability (`0.5`) or `step:p` pairs (`200:1.0,400:0.5,600:0.0`:
`p=1` before update 200, `0.5` before 400, `0` afterwards). `LENGTHS` is the rollout
length of the curriculum in `step:length` pairs of the same form (`500:1,1000:2,1500:4`
with `N = 4`: one step before update 500, two before 1000, four afterwards), every
length in `1 ... N`. `pf` unrolls `K` steps without gradient before the `N` supervised
steps (`random`: a depth drawn per update from `0 ... K`). `mmd` adds `WEIGHT` (> 0)
times the invariant-measure MMD between `N`-step rollouts and the data to one-step
training. Training noise is not a method but an option of every method:
`[training] input_noise = 0.1` wraps the configuration in
`InputNoise(configuration, 0.1)`. `SOLVER` is `euler`
(default), `midpoint` or `heun`; the emulator of `fm;K;heun` costs `2K` network
evaluations per physical step.

Every spec has one canonical spelling, produced by
`format_method(parse_method(spec))`: lower-case flags, integers without leading
zeros, probabilities as Python floats, and trailing fields that equal their default
dropped (`"sup;5;False"` becomes `"sup;5"`; `"div;5;false;true"` keeps its middle
`false`). Parsing the canonical spelling gives the same method back.
"""

import dataclasses
import difflib
import re
from typing import Optional, Union

from ._errors import ConfigError

KINDS = ("one", "sup", "div", "mix", "res", "tf", "pf", "cur", "mmd", "fm", "lsd", "meanflow",
         "shortcut", "sg", "pd")
FEW_STEP_KINDS = ("lsd", "meanflow", "shortcut", "sg", "pd")
# the methods whose results folder can teach `pd` (step counts from their own spec)
PD_TEACHER_KINDS = ("fm", "pd")
EMA_PREFIX = "ema="
SOLVERS = ("euler", "midpoint", "heun")
FLAG_VALUES = {"true": True, "True": True, "false": False, "False": False}
_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

_USAGE = {
    "one": "one",
    "sup": "sup;N[;cut_bptt]",
    "div": "div;N[;cut_bptt[;cut_div_chain]]",
    "mix": "mix;N;P[;cut_bptt]",
    "res": "res;N[;cut_bptt[;cut_prev[;cut_next]]]",
    "tf": "tf;N;SCHEDULE[;cut_bptt]",
    "pf": "pf;N;K[;random[;cut_bptt]]",
    "cur": "cur;N;STEP:LENGTH,...[;cut_bptt]",
    "mmd": "mmd;N;WEIGHT",
    "fm": "fm;NUM_SAMPLING_STEPS[;euler|midpoint|heun]",
    "lsd": "lsd;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR]",
    "meanflow": "meanflow;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR]",
    "shortcut": "shortcut;NUM_SAMPLING_STEPS[;TEACHER_RESULTS_DIR][;ema=DECAY]",
    "sg": "sg;NUM_SAMPLING_STEPS;TEACHER_RESULTS_DIR",
    "pd": "pd;NUM_SAMPLING_STEPS;TEACHER_RESULTS_DIR",
}

Schedule = Union[float, tuple[tuple[int, ...], tuple[float, ...]]]
LengthSchedule = tuple[tuple[int, ...], tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class TrainMethod:
    """A parsed training-method spec (see the module docstring for the grammar).

    **Arguments:**

    - `kind`: one of `one`, `sup`, `div`, `mix`, `res`, `tf`, `pf`, `cur`, `mmd`, `fm`,
        `lsd`, `meanflow`, `shortcut`, `sg`, `pd`.
    - `num_rollout_steps`: network steps in the training rollout (1 for `one`, `fm`;
        the largest length for `cur`; the MMD rollout for `mmd`).
    - `cut_bptt`: stop gradients along the main chain (`sup`, `div`, `mix`, `res`, `tf`,
        `pf`, `cur`).
    - `cut_div_chain`: stop gradients through the reference branch (`div`).
    - `num_post_physics_steps`: reference steps after the network steps (`mix`).
    - `cut_prev`, `cut_next`: stop gradients through the previous/next state of the
        residuum (`res`).
    - `teacher_forcing`: a probability or `((s1, ..., sk), (p1, ..., pk))` (`tf`).
    - `num_pushforward_steps`: steps unrolled without gradient first (`pf`).
    - `random_pushforward`: draw the pushforward depth per update from `0 ... K` (`pf`).
    - `rollout_lengths`: `((s1, ..., sk), (R1, ..., Rk))`, the curriculum (`cur`).
    - `mmd_weight`: the weight of the MMD term next to one-step training (`mmd`).
    - `num_sampling_steps`: flow integration (or map) steps per physical step (`fm`,
        `lsd`, `meanflow`, `shortcut`, `sg`, `pd`).
    - `solver`: `euler`, `midpoint` or `heun` (`fm`).
    - `teacher`: the results folder of the `fm` run to distil or start from (`lsd`,
        `meanflow`, `shortcut`; required for `sg`; an `fm` or `pd` run for `pd`), or
        `None`.
    - `ema_decay`: the decay of the shortcut model's EMA target (`shortcut`), or
        `None` (no EMA: the targets use the current weights).
    """

    kind: str
    num_rollout_steps: int = 1
    cut_bptt: bool = False
    cut_div_chain: bool = False
    num_post_physics_steps: int = 0
    cut_prev: bool = False
    cut_next: bool = False
    teacher_forcing: Optional[Schedule] = None
    num_pushforward_steps: int = 0
    random_pushforward: bool = False
    rollout_lengths: Optional[LengthSchedule] = None
    mmd_weight: float = 0.0
    num_sampling_steps: int = 0
    solver: str = "euler"
    teacher: Optional[str] = None
    ema_decay: Optional[float] = None

    @property
    def needs_ref_stepper(self) -> bool:
        """Whether the configuration compares against a reference simulator."""
        return self.kind in ("div", "mix")

    @property
    def needs_residuum(self) -> bool:
        """Whether the configuration needs a residuum function."""
        return self.kind == "res"

    @property
    def is_flow_matching(self) -> bool:
        """Whether the emulator is a stochastic flow-matching (or flow-map) stepper."""
        return self.kind == "fm" or self.kind in FEW_STEP_KINDS

    @property
    def required_window_length(self) -> int:
        """Snapshots per training window of the configuration this method trains with."""
        if self.kind == "pd":  # its configuration needs the loaded teacher; windows as fm
            return TrainMethod("fm", num_sampling_steps=1).required_window_length
        return self.configuration().required_window_length

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
        from .. import configuration as c

        if self.kind in ("one", "sup"):
            return c.Supervised(self.num_rollout_steps, cut_bptt=self.cut_bptt)
        if self.kind == "div":
            return c.DivertedChainBranchOne(
                self.num_rollout_steps,
                cut_bptt=self.cut_bptt,
                cut_div_chain=self.cut_div_chain,
            )
        if self.kind == "mix":
            return c.MixChainPostPhysics(
                self.num_rollout_steps, self.num_post_physics_steps, cut_bptt=self.cut_bptt
            )
        if self.kind == "res":
            return c.Residuum(
                self.num_rollout_steps,
                cut_bptt=self.cut_bptt,
                cut_prev=self.cut_prev,
                cut_next=self.cut_next,
            )
        if self.kind == "tf":
            schedule = self.teacher_forcing
            if isinstance(schedule, tuple):
                schedule = format_schedule(schedule)
            return c.TeacherForcing(
                self.num_rollout_steps,
                teacher_forcing_probability=schedule,
                cut_bptt=self.cut_bptt,
            )
        if self.kind == "pf":
            return c.Pushforward(
                self.num_rollout_steps,
                num_pushforward_steps=self.num_pushforward_steps,
                random_pushforward=self.random_pushforward,
                cut_bptt=self.cut_bptt,
            )
        if self.kind == "cur":
            return c.RolloutCurriculum(
                c.Supervised(self.num_rollout_steps, cut_bptt=self.cut_bptt),
                format_lengths(self.rollout_lengths),
            )
        if self.kind == "mmd":
            return c.Composite(
                [c.Supervised(1), c.InvariantMeasureMMD(self.num_rollout_steps)],
                [1.0, self.mmd_weight],
            )
        if self.kind == "fm":
            return c.FlowMatching()
        if self.kind == "lsd":
            return c.LagrangianSelfDistillation(teacher=teacher)
        if self.kind == "meanflow":
            return c.MeanFlow()
        if self.kind == "shortcut":
            return c.ShortcutModel()
        if self.kind == "sg":
            return c.SemigroupDistillation(velocity_space=True)
        if self.kind == "pd":
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
                num_fine_steps=pd_fine_steps(self, teacher_method),
                teacher_method=teacher_method.solver,
                step_sampler=c.FixedStepTimeSampler(1.0 / self.num_sampling_steps),
            )
        raise AssertionError(self.kind)  # pragma: no cover


def _error(spec: str, what: str, fix: str, field: str = "training.method") -> ConfigError:
    return ConfigError(field, what, repr(spec), fix)


def _parse_int(token: str, name: str, spec: str, usage: str) -> int:
    if not _INT.fullmatch(token) or int(token) < 1:
        raise _error(
            spec,
            f"`{name}` to be a positive integer (in {usage!r})",
            f"write a whole number >= 1 for {name}, e.g. {usage.split(';')[0]};5",
        )
    return int(token)


def _parse_flag(token: str, name: str, spec: str, usage: str) -> bool:
    if token not in FLAG_VALUES:
        raise _error(
            spec,
            f"the flag `{name}` to be one of true, false, True, False (in {usage!r}); "
            f"found {token!r}",
            f"write {name} as true or false",
        )
    return FLAG_VALUES[token]


def _parse_probability(token: str, spec: str) -> float:
    if not _FLOAT.fullmatch(token) or not 0.0 <= float(token) <= 1.0:
        raise _error(
            spec,
            f"a probability in [0, 1] in the schedule, found {token!r}",
            "write a number such as 0.5, or step:probability pairs such as "
            "'200:1.0,400:0.5'",
        )
    return float(token)


def _parse_step_pairs(token: str, spec: str, value_name: str, example: str, parse_value):
    """`((s1, ..., sk), (v1, ..., vk))` of `s1:v1,...,sk:vk` with whole-number,
    strictly increasing steps; `parse_value(text)` converts (and checks) a value."""
    steps, values = [], []
    for part in token.split(","):
        pieces = part.split(":")
        if len(pieces) != 2 or not _INT.fullmatch(pieces[0]):
            raise _error(
                spec,
                f"schedule entries `step:{value_name}` with a whole-number step, found {part!r}",
                f"write the schedule like {example!r}",
            )
        steps.append(int(pieces[0]))
        values.append(parse_value(pieces[1]))
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise _error(
            spec,
            f"strictly increasing schedule steps, found {steps}",
            f"sort the step:{value_name} pairs by step and remove duplicates",
        )
    return (tuple(steps), tuple(values))


def _parse_decay(token: str, spec: str, usage: str) -> float:
    if not _FLOAT.fullmatch(token) or not float(token) < 1.0:
        raise _error(
            spec,
            f"an EMA decay in [0, 1) after `ema=` (in {usage!r}), found {token!r}",
            "write it like ema=0.999",
        )
    return float(token)


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


def parse_schedule(token: str, spec: str = "") -> Schedule:
    """Parse a teacher-forcing schedule token (`0.5` or `200:1.0,400:0.5`).

    **Returns:**

    - A float, or `((s1, ..., sk), (p1, ..., pk))` with strictly increasing steps.
    """
    spec = spec or token
    if ":" not in token:
        return _parse_probability(token, spec)
    return _parse_step_pairs(
        token, spec, "probability", "200:1.0,400:0.5,600:0.0",
        lambda text: _parse_probability(text, spec),
    )


def parse_lengths(token: str, maximum: int, spec: str) -> LengthSchedule:
    """Parse a rollout-length curriculum (`500:1,1000:2,1500:4`), lengths in `1 ... maximum`.

    **Returns:**

    - `((s1, ..., sk), (R1, ..., Rk))` with strictly increasing steps.
    """

    def length(text):
        if not _INT.fullmatch(text) or not 1 <= int(text) <= maximum:
            raise _error(
                spec,
                f"curriculum lengths in 1 ... {maximum} (N, the largest rollout), "
                f"found {text!r}",
                f"write whole numbers from 1 to {maximum}, or raise N",
            )
        return int(text)

    return _parse_step_pairs(token, spec, "length", f"500:1,1000:2,1500:{maximum}", length)


def format_lengths(lengths: LengthSchedule) -> str:
    """The canonical text of a curriculum returned by `parse_lengths`."""
    return ",".join(f"{s}:{n}" for s, n in zip(*lengths))


def format_schedule(schedule: Schedule) -> str:
    """The canonical text of a schedule returned by `parse_schedule`."""
    if isinstance(schedule, tuple):
        return ",".join(f"{s}:{float(p)!r}" for s, p in zip(*schedule))
    return repr(float(schedule))


def parse_method(spec: str) -> TrainMethod:
    """Parse a training-method spec such as `"sup;5"` or `"div;10;true;false"`.

    **Arguments:**

    - `spec`: the spec string (grammar in the module docstring).

    **Returns:**

    - A [`trainax_fm.experiment.TrainMethod`][].

    **Raises:**

    - `ConfigError` (field `training.method`) for an unknown method, a wrong number
        of fields, a non-integer count or a flag other than true/false.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            "training.method",
            "a method string such as 'one', 'sup;5' or 'div;5;true'",
            repr(spec),
            "quote the method in the TOML file: method = \"sup;5\"",
        )
    parts = spec.split(";")
    kind = parts[0]
    if kind not in KINDS:
        close = difflib.get_close_matches(kind.lower(), KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise _error(
            spec,
            "a method starting with one of " + ", ".join(KINDS),
            hint + "valid forms: " + "; ".join(repr(u) for u in _USAGE.values()),
        )
    usage = _USAGE[kind]
    args = parts[1:]
    required = {"one": 0, "sup": 1, "div": 1, "mix": 2, "res": 1, "tf": 2, "pf": 2, "cur": 2,
                "mmd": 2, "fm": 1, "lsd": 1, "meanflow": 1, "shortcut": 1, "sg": 2, "pd": 2}[kind]
    optional = {"one": 0, "sup": 1, "div": 2, "mix": 1, "res": 3, "tf": 1, "pf": 2, "cur": 1,
                "mmd": 0, "fm": 1, "lsd": 1, "meanflow": 1, "shortcut": 2, "sg": 0, "pd": 0}[kind]
    if not required <= len(args) <= required + optional:
        raise _error(
            spec,
            f"{required}" + (f" to {required + optional}" if optional else "")
            + f" field(s) after {kind!r} (form {usage!r}); found {len(args)}",
            f"write it as {usage!r}",
        )
    if kind == "one":
        return TrainMethod("one")
    steps = _parse_int(
        args[0], "NUM_SAMPLING_STEPS" if kind == "fm" or kind in FEW_STEP_KINDS else "N",
        spec, usage,
    )
    if kind == "fm":
        solver = args[1] if len(args) > 1 else "euler"
        if solver not in SOLVERS:
            raise _error(
                spec,
                f"a solver in {SOLVERS}, found {solver!r}",
                f"write it as {usage!r}",
            )
        return TrainMethod("fm", num_sampling_steps=steps, solver=solver)
    if kind in FEW_STEP_KINDS:
        rest = args[1:]
        ema_decay = None
        if kind == "shortcut" and rest and rest[-1].startswith(EMA_PREFIX):
            ema_decay = _parse_decay(rest[-1][len(EMA_PREFIX):], spec, usage)
            rest = rest[:-1]
        if len(rest) > 1:
            raise _error(
                spec,
                f"one results folder and at most one `ema=DECAY` after the step count "
                f"(form {usage!r}); found {rest!r}",
                f"write it as {usage!r}, e.g. 'shortcut;2;results/teacher;ema=0.999'",
            )
        teacher = rest[0] if rest else None
        if teacher is not None and teacher.startswith(EMA_PREFIX):
            raise _error(
                spec,
                f"a results folder after the step count of {kind!r}; `ema=DECAY` is an "
                "option of shortcut models only",
                f"write it as {usage!r}",
            )
        if teacher is not None and not teacher.strip():
            raise _error(
                spec,
                "the results folder of a finished fm run after the step count",
                f"write it as {usage!r}, e.g. '{kind};1;results/teacher'",
            )
        if kind == "shortcut" and steps & (steps - 1):
            raise _error(
                spec,
                f"a power of two of sampling steps for a shortcut model, found {steps}",
                "write 1, 2, 4, 8, ... (the model is trained on dyadic step sizes)",
            )
        return TrainMethod(kind, num_sampling_steps=steps, teacher=teacher,
                           ema_decay=ema_decay)
    if kind == "mix":
        post = _parse_int(args[1], "P", spec, usage)
        flags = [_parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod(
            "mix", steps, cut_bptt=bool(flags and flags[0]), num_post_physics_steps=post
        )
    if kind == "pf":
        depth = _parse_int(args[1], "K", spec, usage)
        names = ["random", "cut_bptt"]
        flags = {n: _parse_flag(t, n, spec, usage) for n, t in zip(names, args[2:])}
        return TrainMethod(
            "pf", steps, cut_bptt=flags.get("cut_bptt", False), num_pushforward_steps=depth,
            random_pushforward=flags.get("random", False),
        )
    if kind == "cur":
        lengths = parse_lengths(args[1], steps, spec)
        flags = [_parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod("cur", steps, cut_bptt=bool(flags and flags[0]),
                           rollout_lengths=lengths)
    if kind == "mmd":
        if not _FLOAT.fullmatch(args[1]) or not float(args[1]) > 0:
            raise _error(
                spec,
                f"a positive number WEIGHT of the MMD term (in {usage!r}), found {args[1]!r}",
                "write it like 'mmd;8;0.1'",
            )
        return TrainMethod("mmd", steps, mmd_weight=float(args[1]))
    if kind == "tf":
        schedule = parse_schedule(args[1], spec)
        flags = [_parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod("tf", steps, cut_bptt=bool(flags and flags[0]), teacher_forcing=schedule)
    names = {"sup": ["cut_bptt"], "div": ["cut_bptt", "cut_div_chain"],
             "res": ["cut_bptt", "cut_prev", "cut_next"]}[kind]
    flags = {n: _parse_flag(t, n, spec, usage) for n, t in zip(names, args[1:])}
    return TrainMethod(kind, steps, **flags)


def _flags(values: list) -> list:
    """Text of trailing flags with the trailing defaults (false) dropped."""
    while values and not values[-1]:
        values = values[:-1]
    return ["true" if v else "false" for v in values]


def format_method(method: TrainMethod) -> str:
    """The canonical spec string of a method.

    **Arguments:**

    - `method`: a [`trainax_fm.experiment.TrainMethod`][].

    **Returns:**

    - The canonical spec; `parse_method(format_method(m)) == m`.
    """
    kind = method.kind
    if kind == "one":
        return "one"
    if kind == "fm":
        parts = ["fm", str(method.num_sampling_steps)]
        if method.solver != "euler":
            parts.append(method.solver)
        return ";".join(parts)
    if kind in FEW_STEP_KINDS:
        parts = [kind, str(method.num_sampling_steps)]
        parts += [method.teacher] if method.teacher is not None else []
        parts += [f"{EMA_PREFIX}{method.ema_decay!r}"] if method.ema_decay is not None else []
        return ";".join(parts)
    parts = [kind, str(method.num_rollout_steps)]
    if kind == "sup":
        parts += _flags([method.cut_bptt])
    elif kind == "div":
        parts += _flags([method.cut_bptt, method.cut_div_chain])
    elif kind == "res":
        parts += _flags([method.cut_bptt, method.cut_prev, method.cut_next])
    elif kind == "mix":
        parts += [str(method.num_post_physics_steps)] + _flags([method.cut_bptt])
    elif kind == "tf":
        parts += [format_schedule(method.teacher_forcing)] + _flags([method.cut_bptt])
    elif kind == "pf":
        parts += [str(method.num_pushforward_steps)] + _flags(
            [method.random_pushforward, method.cut_bptt]
        )
    elif kind == "cur":
        parts += [format_lengths(method.rollout_lengths)] + _flags([method.cut_bptt])
    elif kind == "mmd":
        parts += [repr(float(method.mmd_weight))]
    return ";".join(parts)


def canonical_method(spec: str) -> str:
    """`format_method(parse_method(spec))`: the canonical spelling of a spec."""
    return format_method(parse_method(spec))
