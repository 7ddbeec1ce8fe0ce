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
from typing import Optional

from ._errors import ConfigError
from ._method_fields import (
    FLOAT,
    LengthSchedule,
    Schedule,
    field_error,
    format_lengths,
    format_schedule,
    parse_decay,
    parse_flag,
    parse_int,
    parse_lengths,
    parse_schedule,
)

KINDS = ("one", "sup", "div", "mix", "res", "tf", "pf", "cur", "mmd", "fm", "lsd", "meanflow",
         "shortcut", "sg", "pd")
FEW_STEP_KINDS = ("lsd", "meanflow", "shortcut", "sg", "pd")
# the methods whose results folder can teach `pd` (step counts from their own spec)
PD_TEACHER_KINDS = ("fm", "pd")
EMA_PREFIX = "ema="
SOLVERS = ("euler", "midpoint", "heun")

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
        from ._method_configuration import build_configuration

        return build_configuration(self, teacher, teacher_method)


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
        raise field_error(
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
        raise field_error(
            spec,
            f"{required}" + (f" to {required + optional}" if optional else "")
            + f" field(s) after {kind!r} (form {usage!r}); found {len(args)}",
            f"write it as {usage!r}",
        )
    if kind == "one":
        return TrainMethod("one")
    steps = parse_int(
        args[0], "NUM_SAMPLING_STEPS" if kind == "fm" or kind in FEW_STEP_KINDS else "N",
        spec, usage,
    )
    if kind == "fm":
        solver = args[1] if len(args) > 1 else "euler"
        if solver not in SOLVERS:
            raise field_error(
                spec,
                f"a solver in {SOLVERS}, found {solver!r}",
                f"write it as {usage!r}",
            )
        return TrainMethod("fm", num_sampling_steps=steps, solver=solver)
    if kind in FEW_STEP_KINDS:
        rest = args[1:]
        ema_decay = None
        if kind == "shortcut" and rest and rest[-1].startswith(EMA_PREFIX):
            ema_decay = parse_decay(rest[-1][len(EMA_PREFIX):], spec, usage)
            rest = rest[:-1]
        if len(rest) > 1:
            raise field_error(
                spec,
                f"one results folder and at most one `ema=DECAY` after the step count "
                f"(form {usage!r}); found {rest!r}",
                f"write it as {usage!r}, e.g. 'shortcut;2;results/teacher;ema=0.999'",
            )
        teacher = rest[0] if rest else None
        if teacher is not None and teacher.startswith(EMA_PREFIX):
            raise field_error(
                spec,
                f"a results folder after the step count of {kind!r}; `ema=DECAY` is an "
                "option of shortcut models only",
                f"write it as {usage!r}",
            )
        if teacher is not None and not teacher.strip():
            raise field_error(
                spec,
                "the results folder of a finished fm run after the step count",
                f"write it as {usage!r}, e.g. '{kind};1;results/teacher'",
            )
        if kind == "shortcut" and steps & (steps - 1):
            raise field_error(
                spec,
                f"a power of two of sampling steps for a shortcut model, found {steps}",
                "write 1, 2, 4, 8, ... (the model is trained on dyadic step sizes)",
            )
        return TrainMethod(kind, num_sampling_steps=steps, teacher=teacher,
                           ema_decay=ema_decay)
    if kind == "mix":
        post = parse_int(args[1], "P", spec, usage)
        flags = [parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod(
            "mix", steps, cut_bptt=bool(flags and flags[0]), num_post_physics_steps=post
        )
    if kind == "pf":
        depth = parse_int(args[1], "K", spec, usage)
        names = ["random", "cut_bptt"]
        flags = {n: parse_flag(t, n, spec, usage) for n, t in zip(names, args[2:])}
        return TrainMethod(
            "pf", steps, cut_bptt=flags.get("cut_bptt", False), num_pushforward_steps=depth,
            random_pushforward=flags.get("random", False),
        )
    if kind == "cur":
        lengths = parse_lengths(args[1], steps, spec)
        flags = [parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod("cur", steps, cut_bptt=bool(flags and flags[0]),
                           rollout_lengths=lengths)
    if kind == "mmd":
        if not FLOAT.fullmatch(args[1]) or not float(args[1]) > 0:
            raise field_error(
                spec,
                f"a positive number WEIGHT of the MMD term (in {usage!r}), found {args[1]!r}",
                "write it like 'mmd;8;0.1'",
            )
        return TrainMethod("mmd", steps, mmd_weight=float(args[1]))
    if kind == "tf":
        schedule = parse_schedule(args[1], spec)
        flags = [parse_flag(t, "cut_bptt", spec, usage) for t in args[2:]]
        return TrainMethod("tf", steps, cut_bptt=bool(flags and flags[0]), teacher_forcing=schedule)
    names = {"sup": ["cut_bptt"], "div": ["cut_bptt", "cut_div_chain"],
             "res": ["cut_bptt", "cut_prev", "cut_next"]}[kind]
    flags = {n: parse_flag(t, n, spec, usage) for n, t in zip(names, args[1:])}
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
