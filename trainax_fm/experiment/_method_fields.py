"""The fields of the training-method grammar: integers, flags, probabilities, weights,
solvers, results folders, EMA decays and `step:value` schedules, each parsed strictly (a
`ConfigError` that quotes the spec) and formatted back in its one canonical spelling."""

import dataclasses
import re
from typing import Any, Callable, Union

from ._errors import ConfigError

SOLVERS = ("euler", "midpoint", "heun")
EMA_PREFIX = "ema="
FLAG_VALUES = {"true": True, "True": True, "false": False, "False": False}
INT = re.compile(r"[0-9]+")
FLOAT = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

Schedule = Union[float, tuple[tuple[int, ...], tuple[float, ...]]]
LengthSchedule = tuple[tuple[int, ...], tuple[int, ...]]


def field_error(spec: str, what: str, fix: str, field: str = "training.method") -> ConfigError:
    """The error of a method spec whose field is not `what`; `fix` says how to mend it."""
    return ConfigError(field, what, repr(spec), fix)


def parse_int(token: str, name: str, spec: str, usage: str) -> int:
    if not INT.fullmatch(token) or int(token) < 1:
        raise field_error(
            spec,
            f"`{name}` to be a positive integer (in {usage!r})",
            f"write a whole number >= 1 for {name}, e.g. {usage.split(';')[0]};5",
        )
    return int(token)


def parse_flag(token: str, name: str, spec: str, usage: str) -> bool:
    if token not in FLAG_VALUES:
        raise field_error(
            spec,
            f"the flag `{name}` to be one of true, false, True, False (in {usage!r}); "
            f"found {token!r}",
            f"write {name} as true or false",
        )
    return FLAG_VALUES[token]


def parse_count(token: str, name: str, spec: str, usage: str, parsed: dict) -> int:
    """`parse_int` in the signature of a table field (`parsed`: the fields before it)."""
    return parse_int(token, name, spec, usage)


def parse_flag_field(token: str, name: str, spec: str, usage: str, parsed: dict) -> bool:
    """`parse_flag` in the signature of a table field."""
    return parse_flag(token, name, spec, usage)


def parse_solver(token: str, name: str, spec: str, usage: str, parsed: dict) -> str:
    if token not in SOLVERS:
        raise field_error(
            spec,
            f"a solver in {SOLVERS}, found {token!r}",
            f"write it as {usage!r}",
        )
    return token


def parse_weight(token: str, name: str, spec: str, usage: str, parsed: dict) -> float:
    if not FLOAT.fullmatch(token) or not float(token) > 0:
        raise field_error(
            spec,
            f"a positive number {name} of the regulariser term (in {usage!r}), "
            f"found {token!r}",
            f"write it like '{spec.split(';')[0]};8;0.1'",
        )
    return float(token)


FOLLMER = "follmer"


def parse_noise_scale(token: str, name: str, spec: str, usage: str, parsed: dict):
    """A sampling diffusion: a number `>= 0` (its scale) or `follmer`."""
    if token == FOLLMER:
        return FOLLMER
    if not FLOAT.fullmatch(token):
        raise field_error(
            spec,
            f"a number >= 0 or {FOLLMER!r} for the sampling diffusion {name} (in "
            f"{usage!r}), found {token!r}",
            "write it like 'si;16;1.0' (0: the probability-flow ODE after the first "
            "step) or 'si;16;follmer'",
        )
    return float(token)


def parse_noise_std(token: str, name: str, spec: str, usage: str, parsed: dict) -> float:
    if not FLOAT.fullmatch(token) or not 0.0 < float(token) < 1.0:
        raise field_error(
            spec,
            f"a noise level {name} in (0, 1) (in {usage!r}), found {token!r}",
            "write it like 'refiner;3;1e-3'",
        )
    return float(token)


def format_noise_scale(value) -> str:
    return value if value == FOLLMER else format_float(value)


def parse_teacher(token: str, name: str, spec: str, usage: str, parsed: dict) -> str:
    kind = spec.split(";")[0]
    if token.startswith(EMA_PREFIX):
        raise field_error(
            spec,
            f"a results folder after the step count of {kind!r}; `ema=DECAY` is an "
            "option of shortcut models only",
            f"write it as {usage!r}",
        )
    if not token.strip():
        raise field_error(
            spec,
            "the results folder of a finished fm run after the step count",
            f"write it as {usage!r}, e.g. '{kind};1;results/teacher'",
        )
    return token


def parse_emulator(token: str, name: str, spec: str, usage: str, parsed: dict) -> str:
    """The results folder of the emulator a thermalizer is trained for."""
    if not token.strip():
        raise field_error(
            spec,
            f"the results folder of a finished emulator run as {name} (in {usage!r})",
            "write it like 'therm;100;results/emulator' (a run on the same data)",
        )
    return token


def parse_level(token: str, name: str, spec: str, usage: str, parsed: dict) -> int:
    """A noise level `>= 0` (a thermalizer's threshold)."""
    if not INT.fullmatch(token):
        raise field_error(
            spec,
            f"`{name}` to be a whole number >= 0 (in {usage!r}), found {token!r}",
            "write it like 'therm;100;results/emulator;10'",
        )
    return int(token)


def parse_decay_field(token: str, name: str, spec: str, usage: str, parsed: dict) -> float:
    """`parse_decay` in the signature of a table field."""
    return parse_decay(token, spec, usage)


def parse_schedule_field(token: str, name: str, spec: str, usage: str, parsed: dict):
    """`parse_schedule` in the signature of a table field."""
    return parse_schedule(token, spec)


def parse_lengths_field(token: str, name: str, spec: str, usage: str, parsed: dict):
    """`parse_lengths` in the signature of a table field, lengths up to the rollout."""
    return parse_lengths(token, parsed["num_rollout_steps"], spec)


def format_flag(value: bool) -> str:
    return "true" if value else "false"


def format_float(value: float) -> str:
    return repr(float(value))


def parse_probability(token: str, spec: str) -> float:
    if not FLOAT.fullmatch(token) or not 0.0 <= float(token) <= 1.0:
        raise field_error(
            spec,
            f"a probability in [0, 1] in the schedule, found {token!r}",
            "write a number such as 0.5, or step:probability pairs such as "
            "'200:1.0,400:0.5'",
        )
    return float(token)


def parse_step_pairs(token: str, spec: str, value_name: str, example: str, parse_value):
    """`((s1, ..., sk), (v1, ..., vk))` of `s1:v1,...,sk:vk` with whole-number,
    strictly increasing steps; `parse_value(text)` converts (and checks) a value."""
    steps, values = [], []
    for part in token.split(","):
        pieces = part.split(":")
        if len(pieces) != 2 or not INT.fullmatch(pieces[0]):
            raise field_error(
                spec,
                f"schedule entries `step:{value_name}` with a whole-number step, found {part!r}",
                f"write the schedule like {example!r}",
            )
        steps.append(int(pieces[0]))
        values.append(parse_value(pieces[1]))
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise field_error(
            spec,
            f"strictly increasing schedule steps, found {steps}",
            f"sort the step:{value_name} pairs by step and remove duplicates",
        )
    return (tuple(steps), tuple(values))


def parse_decay(token: str, spec: str, usage: str) -> float:
    if not FLOAT.fullmatch(token) or not float(token) < 1.0:
        raise field_error(
            spec,
            f"an EMA decay in [0, 1) after `ema=` (in {usage!r}), found {token!r}",
            "write it like ema=0.999",
        )
    return float(token)


def parse_schedule(token: str, spec: str = "") -> Schedule:
    """Parse a teacher-forcing schedule token (`0.5` or `200:1.0,400:0.5`).

    **Returns:**

    - A float, or `((s1, ..., sk), (p1, ..., pk))` with strictly increasing steps.
    """
    spec = spec or token
    if ":" not in token:
        return parse_probability(token, spec)
    return parse_step_pairs(
        token, spec, "probability", "200:1.0,400:0.5,600:0.0",
        lambda text: parse_probability(text, spec),
    )


def parse_lengths(token: str, maximum: int, spec: str) -> LengthSchedule:
    """Parse a rollout-length curriculum (`500:1,1000:2,1500:4`), lengths in `1 ... maximum`.

    **Returns:**

    - `((s1, ..., sk), (R1, ..., Rk))` with strictly increasing steps.
    """

    def length(text):
        if not INT.fullmatch(text) or not 1 <= int(text) <= maximum:
            raise field_error(
                spec,
                f"curriculum lengths in 1 ... {maximum} (N, the largest rollout), "
                f"found {text!r}",
                f"write whole numbers from 1 to {maximum}, or raise N",
            )
        return int(text)

    return parse_step_pairs(token, spec, "length", f"500:1,1000:2,1500:{maximum}", length)


def format_lengths(lengths: LengthSchedule) -> str:
    """The canonical text of a curriculum returned by `parse_lengths`."""
    return ",".join(f"{s}:{n}" for s, n in zip(*lengths))


def format_schedule(schedule: Schedule) -> str:
    """The canonical text of a schedule returned by `parse_schedule`."""
    if isinstance(schedule, tuple):
        return ",".join(f"{s}:{float(p)!r}" for s, p in zip(*schedule))
    return repr(float(schedule))


# `MethodField.default` of a field every spec must write
REQUIRED = object()




@dataclasses.dataclass(frozen=True)
class MethodField:
    """One field of a method spec after its kind.

    **Arguments:**

    - `name`: the field's name in the grammar (`N`, `cut_bptt`, `TEACHER` ...), quoted by
        errors.
    - `attribute`: the [`trainax_fm.experiment.TrainMethod`][] attribute it sets.
    - `parse`: `parse(token, name, spec, usage, parsed)` returns the value of a token or
        raises a `ConfigError`; `parsed` holds the attributes of the fields before it.
    - `format`: the canonical text of a value.
    - `default`: the value of an omitted field, `REQUIRED` for a field every spec writes.
    - `prefix`: a keyword field (`ema=DECAY`) is written `prefix + value` after the
        positional fields and only when its value is not the default; `""` for a
        positional field, whose trailing defaults are dropped.
    """

    name: str
    attribute: str
    parse: Callable[[str, str, str, str, dict], Any]
    format: Callable[[Any], str] = str
    default: Any = REQUIRED
    prefix: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
