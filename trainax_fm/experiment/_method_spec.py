r"""The training-method grammar: one short string names a training methodology.

The grammar extends APEBench's train strings (`"one"`, `"sup;5"`, `"div;5;true"`) to
every configuration the runner can build. Fields are separated by `;`, without
spaces. `N` is a positive integer, a *flag* is one of `true`, `false`, `True`,
`False`; optional trailing fields default to `false`.

| `method` | Configuration |
| --- | --- |
| `one` | one-step supervised, `Supervised(1)` |
| `sup;N[;cut_bptt]` | `Supervised(N)` |
| `div;N[;cut_bptt[;cut_div_chain]]` | `DivertedChainBranchOne(N)` (needs a reference stepper) |
| `mix;N;P[;cut_bptt]` | `MixChainPostPhysics(N, P)` (needs a reference stepper) |
| `res;N[;cut_bptt[;cut_prev[;cut_next]]]` | `Residuum(N)`, residuum `u_next - P(u_prev)` (needs a reference stepper) |
| `tf;N;SCHEDULE[;cut_bptt]` | `TeacherForcing(N)`, `SCHEDULE` a probability or `step:p` pairs such as `200:1.0,400:0.5,600:0.0` |
| `gtf;N;ALPHA[;EVERY[;cut_bptt]]` | `GeneralizedTeacherForcing(N, forcing_alpha=ALPHA, forcing_every=EVERY)`: after every `EVERY`-th step (default 1) the state becomes `ALPHA * truth + (1 - ALPHA) * state`; `ALPHA` a number in `[0, 1]` or `step:alpha` pairs like `SCHEDULE` |
| `pf;N;K[;random[;cut_bptt]]` | `Pushforward(N, num_pushforward_steps=K)`: `K` steps without gradient, then `N` supervised ones; `random`: the depth drawn per update from `0 ... K` |
| `cur;N;LENGTHS[;cut_bptt]` | `RolloutCurriculum(Supervised(N), LENGTHS)`, `LENGTHS` `step:length` pairs such as `500:1,1000:2,1500:4` (lengths `1 ... N`) |
| `mmd;N;WEIGHT` | `Composite([Supervised(1), InvariantMeasureMMD(N)], [1, WEIGHT])`: one-step training plus the invariant-measure MMD of `N`-step rollouts |
| `sinkhorn;N;WEIGHT` | `Composite([Supervised(1), InvariantMeasureSinkhorn(N)], [1, WEIGHT])`: one-step training plus the debiased Sinkhorn divergence of `N`-step rollouts |
| `crps;M[;N]` | `CRPSEnsemble(N, num_members=M)`: `M` members of a `NoiseInputStepper` (`C` noise channels) per window, `N` steps each (default 1), trained with the fair CRPS; sampled with 1 NFE per member and step |
| `refiner;K[;MIN_NOISE_STD]` | `PDERefiner(K, MIN_NOISE_STD)`: a one-step prediction refined `K` times by denoising at noise levels `MIN_NOISE_STD ** (k / K)` (default `1e-3`); `K + 1` NFE |
| `fm;K[;SOLVER]` | `FlowMatching()`; the emulator samples with `K` steps of `euler`, `midpoint` or `heun` |
| `si;K[;EPS]` | `StochasticInterpolant()`: flow matching from the current state (noise scale 1, `beta(s) = s^2`); the emulator samples with `K` Euler-Maruyama steps (`K` NFE) of the diffusion `EPS (1 - s)` or, for `follmer`, the paper's Foellmer diffusion, chosen after training (default: the trained `1 - s`) |
| `lsd;K[;TEACHER]` | `LagrangianSelfDistillation()`; the emulator samples with `K` flow-map steps (`K` NFE) |
| `meanflow;K[;TEACHER]` | `MeanFlow()`; `K` average-velocity steps (`K` NFE) |
| `shortcut;K[;TEACHER][;ema=DECAY]` | `ShortcutModel()`; `K` shortcut steps, `K` a power of two (`K` NFE); `ema=0.999`: EMA target, sampled with the average |
| `sg;K;TEACHER` | `SemigroupDistillation()` of a flow map on the teacher; `K` map steps (`2K` NFE) |
| `pd;K;TEACHER` | `ProgressiveDistillation()`: one student step of size `1/K` imitates `N/K` steps of the teacher's `N`; `K` NFE |
| `therm;K;EMULATOR[;THRESHOLD]` | `ThermalizerDiffusion()`: a `Thermalizer` with `K` noise levels (denoiser: the network with `C + 1` inputs; classifier: `K` outputs, averaged over space) learns the run's single states; evaluated as `ThermalizedStepper(emulator, thermalizer, threshold=THRESHOLD)` (default `K // 10`) around the final network (first seed) of `EMULATOR`, a finished run on the same data; per step one classifier call, plus `k̂` denoiser calls where it denoises |

The table is `METHODS` (`_method.py`), one `MethodEntry` per kind; `methods_table()`
writes it (the CLI guide shows the same table).

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

`therm;K;EMULATOR_RESULTS_DIR[;THRESHOLD]` trains a thermalizer
([`trainax_fm.flow.Thermalizer`][], `K` noise levels, learning normalised states) on
the run's training states for the emulator of `EMULATOR_RESULTS_DIR` (a finished run
of any other method on the same `[data]`; the final network of its first seed, kept
frozen); the run's emulator is
[`trainax_fm.flow.ThermalizedStepper`][]`(emulator, thermalizer, threshold=THRESHOLD)`,
`THRESHOLD` an integer level in `0 ... K - 1` (default `K // 10`).

`si;K[;EPS]` trains a stochastic interpolant from the current state to the next
([`trainax_fm.configuration.StochasticInterpolant`][]) and samples with `K`
Euler-Maruyama steps whose diffusion `EPS (1 - s)` (`EPS >= 0`, or `follmer` for the
Föllmer diffusion of Chen et al.) is chosen after training; without `EPS` it is the
trained one, `1 - s`
([`trainax_fm.flow.StochasticInterpolantStepper`][]).

`SCHEDULE` is a probability (`0.5`) or `step:p` pairs (`200:1.0,400:0.5,600:0.0`:
`p=1` before update 200, `0.5` before 400, `0` afterwards). `LENGTHS` is the rollout
length of the curriculum in `step:length` pairs of the same form (`500:1,1000:2,1500:4`
with `N = 4`: one step before update 500, two before 1000, four afterwards), every
length in `1 ... N`. `pf` unrolls `K` steps without gradient before the `N` supervised
steps (`random`: a depth drawn per update from `0 ... K`). `mmd` adds `WEIGHT` (> 0)
times the invariant-measure MMD between `N`-step rollouts and the data to one-step
training; `sinkhorn` the same with the debiased Sinkhorn divergence (entropic
optimal transport, blur `0.1` per entry, 100 iterations) in place of the MMD. Training noise is not a method but an option of every method:
`[training] input_noise = 0.1` wraps the configuration in
`InputNoise(configuration, 0.1)`. `SOLVER` is `euler`
(default), `midpoint` or `heun`; the emulator of `fm;K;heun` costs `2K` network
evaluations per physical step.

Every spec has one canonical spelling, produced by
`format_method(parse_method(spec))`: lower-case flags, integers without leading
zeros, probabilities as Python floats, and trailing fields that equal their default
dropped (`"sup;5;False"` becomes `"sup;5"`; `"div;5;false;true"` keeps its middle
`false`). Parsing the canonical spelling gives the same method back.
"""  # noqa: E501  (markdown table rows cannot be wrapped)

import difflib

from ._errors import ConfigError
from ._method import KINDS, METHODS, TrainMethod
from ._method_fields import field_error

def methods_table() -> str:
    """The Markdown table of every method kind (the docs show it), one row per entry."""
    rows = ["| `method` | Configuration |", "| --- | --- |"]
    rows += [f"| `{entry.form}` | {entry.summary} |" for entry in METHODS.values()]
    return "\n".join(rows)


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
    if kind not in METHODS:
        close = difflib.get_close_matches(kind.lower(), KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise field_error(
            spec,
            "a method starting with one of " + ", ".join(KINDS),
            hint + "valid forms: " + "; ".join(repr(e.usage) for e in METHODS.values()),
        )
    entry = METHODS[kind]
    usage = entry.usage
    args = parts[1:]
    required = [f for f in entry.fields if f.required]
    optional = [f for f in entry.fields if not f.required and not f.prefix]
    keywords = [f for f in entry.fields if f.prefix]
    most = len(entry.fields)
    if not len(required) <= len(args) <= most:
        raise field_error(
            spec,
            f"{len(required)}" + (f" to {most}" if most > len(required) else "")
            + f" field(s) after {kind!r} (form {usage!r}); found {len(args)}",
            f"write it as {usage!r}",
        )
    values = {}
    for field, token in zip(required, args):
        values[field.attribute] = field.parse(token, field.name, spec, usage, values)
    rest = args[len(required):]
    # keyword fields close the spec, one at most each, after the positional ones
    for field in reversed(keywords):
        if rest and rest[-1].startswith(field.prefix):
            values[field.attribute] = field.parse(
                rest[-1][len(field.prefix):], field.name, spec, usage, values)
            rest = rest[:-1]
    if len(rest) > len(optional):  # only a kind with keyword fields gets here
        raise field_error(
            spec,
            f"one results folder and at most one `ema=DECAY` after the step count "
            f"(form {usage!r}); found {rest!r}",
            f"write it as {usage!r}, e.g. 'shortcut;2;results/teacher;ema=0.999'",
        )
    for field, token in zip(optional, rest):
        values[field.attribute] = field.parse(token, field.name, spec, usage, values)
    method = TrainMethod(kind, **values)
    entry.check(method, spec, usage)
    return method


def format_method(method: TrainMethod) -> str:
    """The canonical spec string of a method.

    **Arguments:**

    - `method`: a [`trainax_fm.experiment.TrainMethod`][].

    **Returns:**

    - The canonical spec; `parse_method(format_method(m)) == m`.
    """
    fields = METHODS[method.kind].fields
    positional = [(f, getattr(method, f.attribute)) for f in fields if not f.prefix]
    # trailing fields that equal their default are dropped; earlier ones are kept
    while positional and not positional[-1][0].required and (
        positional[-1][1] == positional[-1][0].default
    ):
        positional = positional[:-1]
    parts = [method.kind] + [field.format(value) for field, value in positional]
    for field in fields:
        value = getattr(method, field.attribute)
        if field.prefix and value != field.default:
            parts.append(field.prefix + field.format(value))
    return ";".join(parts)


def canonical_method(spec: str) -> str:
    """`format_method(parse_method(spec))`: the canonical spelling of a spec."""
    return format_method(parse_method(spec))


