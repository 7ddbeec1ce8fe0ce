"""The experiment configuration: schema, strict validation, defaults, TOML I/O.

A configuration is a TOML file; every key is optional (defaults below), every key
that is present is checked strictly: unknown keys, wrong types and out-of-range values
raise a [`trainax_fm.experiment.ConfigError`][] naming the field (`training.batch_size`),
what was expected, what was found and a fix. Integers must be written as integers
(`20`, not `20.0`); numbers may be written as integers (`1` for `1.0`). The runner
writes the configuration it used, with every default filled in, to
`results/<name>/config.toml`; loading that file gives the same configuration back.

```toml
name = "advection_quick"   # results go to <results>/<name>/
seed = 0                   # network initialisation, minibatch order, FM sampling noise
num_seeds = 1              # >1: train seeds in parallel (eqx.filter_vmap over keys)
description = ""

[data]                     # see trainax_fm.experiment._data for every source
source = "advection"       # "advection" | "lorenz" | "lorenz96" | "exponax:<scenario>" | "file:<path>"
                           # | on disk: "npy:<path>" | "hdf5:<path>#<data set>" | "zarr:<path>"
seed = 0                   # seed of the generated train/test data
num_train_samples = 50
num_test_samples = 30
temporal_horizon = 51      # snapshots per train trajectory, initial condition included
num_points = 32            # advection/exponax: grid points (per axis)
cfl = 0.75                 # advection only
highest_init_mode = 5      # advection only

[network]
spec = "Conv;26;10;relu"   # default "MLP;64;3;tanh" for ODE data (lorenz, (S, T, C) files)
normalize = false          # true | "residual" (predict normalised increments); default
                           # "residual" for lorenz (but not flow matching), else false

[training]
method = "one"             # one | sup;N[;cut_bptt] | div;N[;cut_bptt[;cut_div_chain]] |
                           # mix;N;P[;cut_bptt] | res;N[;...] | tf;N;SCHEDULE |
                           # gtf;N;ALPHA[;EVERY[;cut_bptt]] |
                           # pf;N;K[;random[;cut_bptt]] | cur;N;STEP:LENGTH,... | mmd;N;WEIGHT |
                           # sinkhorn;N;WEIGHT | crps;M[;N] |
                           # fm;K[;solver] | lsd;K[;TEACHER] | meanflow;K[;TEACHER] |
                           # shortcut;K[;TEACHER][;ema=DECAY] | sg;K;TEACHER | pd;K;TEACHER |
                           # therm;K;EMULATOR_RESULTS_DIR[;THRESHOLD]
                           # (TEACHER: results folder of an fm run; for pd an fm or pd run;
                           # EMULATOR_RESULTS_DIR: a finished run on the same [data])
optimizer = "adam"
learning_rate = 0.001
lr_schedule = "constant"   # "constant" | "cosine" (decays to 0 at num_training_steps)
warmup_steps = 0           # linear warm-up from 0 to learning_rate
grad_clip_norm = 0.0       # > 0: clip the global gradient norm
on_nonfinite = "raise"     # at a NaN/Inf loss: "raise" stops (the last good checkpoint
                           # stays), "skip" leaves the update out and carries on
num_training_steps = 1000
batch_size = 20
record_loss_every = 1      # loss.png resolution
checkpoint_every = 200     # updates between checkpoints (resume continues exactly)
steps_per_dispatch = 1     # updates per compiled call (fixed, so resuming is bit-exact)
input_noise = 0.0          # > 0: InputNoise around the method (std relative to the data's)
symmetry_shifts = false    # true: SymmetryAugmentation around the method (each window
                           # shifted periodically at random; periodic grids only)
time_level_loss = "mse"    # rollout methods' loss per state: "mse" | "amse" (adjusted
                           # MSE, Subich et al. 2025) | "mse+spectral" (MSE plus the
                           # spectral-amplitude loss)

[evaluation]
num_rollout_steps = 50     # autoregressive steps on the test trajectories
nrmse_aggregate_steps = 50 # K of the geometric-mean nRMSE (default: num_rollout_steps)
correlation_threshold = 0.8

[validation]               # held-out trajectories, best model, early stopping
num_samples = 0            # training trajectories held out for validation (0: none)
every = 200                # updates between validations (and after the last update)
metrics = "loss;nrmse@1;nrmse@10"  # ';'-separated (or an array ["loss", "nrmse@10"]):
                                   # loss, nrmse@K
monitor = ""               # the metric that picks the best model ("": the first)
mode = "min"               # "min" | "max"
patience = 0               # stop after this many validations without improvement (0: never)
min_delta = 0.0            # the least change that counts as an improvement
evaluate = "best"          # test metrics of the "best" or the "final" network

[logging]
every = 100                # updates between train records in log.jsonl/train.csv (0: no log)
formats = "jsonl;csv"      # ';'-separated (or an array ["jsonl", "csv"]): jsonl, csv,
                           # tensorboard
rollout_plot_every = 0     # validations (not updates) between rollout pictures in
                           # rollouts/: every k-th validation draws one (0: none)
```

Source-specific `[data]` keys (defaults): advection `num_points` (32), `cfl` (0.75),
`highest_init_mode` (5); lorenz `dt` (0.01), `num_warmup_steps` (500); lorenz96
`num_points` (40), `dt` (0.05), `forcing` (8.0), `num_warmup_steps` (1000); exponax
scenarios `num_points`, `dt`, `domain_extent`, `num_warmup_steps`, `ic_cutoff`
(+ `diffusivity` for diffusion and Burgers), defaults per scenario; files
`test_source` (`""`: hold out the last `num_test_samples` trajectories), sizes
default to what the file holds. A key of another source is an error.
"""  # noqa: E501  (a TOML example line with its aligned comment)

import os
from pathlib import Path
from typing import Any, Optional, Union

from . import _toml
from .._loop._validate import parse_metrics
from ..data._spec import parse_spec
from ..hook._log_writers import check_formats
from ._data import DISK_PREFIXES, data_fields, source_kind
from ._errors import ConfigError, describe_value
from ._method import METHODS, TrainMethod
from ._method_spec import format_method, parse_method
from ._network import format_network, parse_network
from ._schema import NAME_PATTERN, Field, check_table
from ._wording import term

TOP_FIELDS = {
    "name": Field("str", "experiment", pattern=NAME_PATTERN,
                  doc="the results folder name"),
    "seed": Field("int", 0, minimum=0, doc="seed of initialisation and minibatch order"),
    "num_seeds": Field("int", 1, minimum=1, doc="seeds trained in parallel"),
    "description": Field("str", "", doc="free text"),
}
SECTIONS = ("data", "network", "training", "evaluation", "validation", "logging")

NETWORK_FIELDS = {
    "spec": Field("str", None, doc="e.g. \"Conv;26;10;relu\" or \"MLP;64;3;tanh\""),
    # `true`/`false` are read as "state"/"none" (see `validate_config`).
    "normalize": Field("str", None, choices=("none", "state", "residual"), example="residual",
                       doc="statistics of the training data: true, false or \"residual\" "
                       "(default: \"residual\" for lorenz without flow matching, else false)"),
}
TRAINING_FIELDS = {
    "method": Field("str", "one", doc="e.g. \"one\", \"sup;5\", \"div;5;true\""),
    "optimizer": Field("str", "adam", choices=("adam",)),
    "learning_rate": Field("float", 1e-3, minimum=0.0, exclusive_minimum=True),
    "lr_schedule": Field("str", "constant", choices=("constant", "cosine")),
    "warmup_steps": Field("int", 0, minimum=0, doc="linear warm-up updates"),
    "grad_clip_norm": Field("float", 0.0, minimum=0.0, example=1.0,
                            doc="clip the global gradient norm to this value; 0 disables clipping"),
    "on_nonfinite": Field(
        "str", "raise", choices=("raise", "skip"),
        doc="\"raise\": stop at a NaN/Inf loss or gradient; \"skip\": leave that update "
        "out and carry on",
    ),
    "num_training_steps": Field("int", 1000, minimum=1),
    "batch_size": Field("int", 20, minimum=1),
    "record_loss_every": Field("int", 1, minimum=1),
    "checkpoint_every": Field("int", 200, minimum=1),
    "steps_per_dispatch": Field("int", 1, minimum=1, maximum=1024),
    "input_noise": Field("float", 0.0, minimum=0.0, example=0.1,
                         doc="training noise relative to the data's std (0: none)"),
    "symmetry_shifts": Field("bool", False,
                             doc="random periodic shifts of every window (periodic grids)"),
    "time_level_loss": Field(
        "str", "mse", choices=("mse", "amse", "mse+spectral"),
        doc="the loss per predicted state of rollout methods: \"mse\", \"amse\" "
        "(adjusted MSE) or \"mse+spectral\" (MSE plus the spectral-amplitude loss)",
    ),
}
EVALUATION_FIELDS = {
    "num_rollout_steps": Field("int", 50, minimum=1),
    "nrmse_aggregate_steps": Field("int", None, minimum=1, example=10,
                                   doc="default: num_rollout_steps"),
    "correlation_threshold": Field("float", 0.8, minimum=0.0, maximum=1.0,
                                   exclusive_minimum=True),
}

VALIDATION_FIELDS = {
    "num_samples": Field("int", 0, minimum=0, example=10,
                         doc="training trajectories held out for validation (0: none)"),
    "every": Field("int", 200, minimum=1, doc="updates between validations"),
    "metrics": Field("names", "loss;nrmse@1;nrmse@10", example=["loss", "nrmse@10"],
                     doc="';'-separated or an array: loss, nrmse@K"),
    "monitor": Field("str", "", doc="the metric that picks the best model (\"\": the first)"),
    "mode": Field("str", "min", choices=("min", "max")),
    "patience": Field("int", 0, minimum=0, doc="0: no early stopping"),
    "min_delta": Field("float", 0.0, minimum=0.0),
    "evaluate": Field("str", "best", choices=("best", "final"),
                      doc="which network the test metrics use"),
}
LOGGING_FIELDS = {
    "every": Field("int", 100, minimum=0, doc="updates between log records (0: no log)"),
    "formats": Field("names", "jsonl;csv", example=["jsonl", "csv"],
                     doc="';'-separated or an array: jsonl, csv, tensorboard"),
    "rollout_plot_every": Field(
        "int", 0, minimum=0, example=1,
        doc="validations (not updates) between rollout pictures, so it needs "
        "[validation] num_samples > 0; 0: no rollout pictures",
    ),
}


def split_list(text: str) -> tuple[str, ...]:
    """The entries of a ';'-separated list setting."""
    return tuple(part.strip() for part in text.split(";") if part.strip())


def _check_validation(validation: dict) -> None:
    try:
        metrics = parse_metrics(split_list(validation["metrics"]))
    except ValueError as error:
        raise ConfigError("validation.metrics", "';'-separated metrics: loss, nrmse@K",
                          repr(validation["metrics"]), str(error)) from None
    names = metrics.builtin_names
    if not names:
        raise ConfigError("validation.metrics", "at least one metric",
                          repr(validation["metrics"]), 'e.g. metrics = "loss;nrmse@10"')
    if validation["monitor"] and validation["monitor"] not in names:
        raise ConfigError("validation.monitor", f"one of the metrics {list(names)}",
                          repr(validation["monitor"]), "monitor a metric you compute")


def _check_logging(logging: dict) -> None:
    try:
        check_formats(split_list(logging["formats"]))
    except ValueError as error:
        raise ConfigError("logging.formats", "';'-separated: jsonl, csv, tensorboard",
                          repr(logging["formats"]), str(error)) from None


def default_network_spec(ode: bool) -> str:
    """The default `[network] spec`: an MLP for ODE states, a ConvNet for fields."""
    return "MLP;64;3;tanh" if ode else "Conv;26;10;relu"


def default_normalization(source: str, method: TrainMethod) -> str:
    """The default `[network] normalize` of a data source and training method.

    Lorenz-63 states reach |z| ~ 40 while one step of `dt = 0.01` moves them by a few
    tenths: an MLP on the raw states learns nothing in thousands of updates (flat
    predictions), one predicting normalised increments reaches nRMSE@1 ~ 4e-4. Flow
    matching samples states, not increments, so it keeps the raw states. A
    thermalizer (`therm`) is a diffusion model of single states, whose noise levels
    assume states of unit scale: it learns normalised states.
    """
    if METHODS[method.kind].models_states:
        return "state"
    if source == "lorenz" and not method.is_flow_matching:
        return "residual"
    return "none"


def _check_sections(raw: dict) -> None:
    for key, value in raw.items():
        if key in SECTIONS and not isinstance(value, dict):
            raise ConfigError(key, f"a [{key}] table", describe_value(value),
                              f"write the {key} settings under a [{key}] header")
        if key not in SECTIONS and key not in TOP_FIELDS:
            import difflib

            close = difflib.get_close_matches(key, list(TOP_FIELDS) + list(SECTIONS), n=1)
            raise ConfigError(
                key,
                "a known top-level key (" + ", ".join(TOP_FIELDS) + ") or table ("
                + ", ".join(f"[{s}]" for s in SECTIONS) + ")",
                f"the unknown key {key!r}",
                (f"did you mean {close[0]!r}? " if close else "") + "remove or rename it",
            )


def validate_config(raw: dict, *, base_dir: Optional[Union[str, os.PathLike]] = None) -> dict:
    """Check a configuration and fill in every default.

    **Arguments:**

    - `raw`: the configuration as a nested dict (as read from TOML); missing keys
        and tables take their defaults.
    - `base_dir`: the directory relative `file:` paths are resolved against
        (default: the working directory).

    **Returns:**

    - A new dict `{name, seed, num_seeds, description, data, network, training,
        evaluation, validation, logging}` with every key filled, `file:` paths made absolute and the
        method and network specs in canonical spelling.

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] naming the first offending field.
    """
    if not isinstance(raw, dict):
        raise ConfigError("", "a table of settings", describe_value(raw))
    _check_sections(raw)
    top = check_table({k: v for k, v in raw.items() if k in TOP_FIELDS}, TOP_FIELDS, "")

    raw_data = raw.get("data", {})
    source = raw_data.get("source", "advection") if isinstance(raw_data, dict) else None
    source_kind(source)
    data = check_table(raw_data, data_fields(source), "data", context=f" for source {source!r}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for key in ("source", "test_source"):
        value = data.get(key)
        if value and value.startswith(("file:",) + DISK_PREFIXES):
            if value.startswith("file:"):
                location, with_path = value[len("file:"):], lambda p: f"file:{p}"
            else:
                source_kind(value, f"data.{key}")  # a readable spec, or a ConfigError
                parsed = parse_spec(value)
                location, with_path = parsed.path, parsed.with_path
            path = Path(location).expanduser()
            if not path.is_absolute():
                path = (base / path).resolve()
            data[key] = with_path(path)
    if data.get("test_source") and source_kind(data["test_source"], "data.test_source") not in (
        "file", "disk"
    ):
        raise ConfigError("data.test_source", "a file source (file:, npy:, hdf5:, zarr:, well:)",
                          repr(data["test_source"]), "or leave it empty to split")

    raw_network = raw.get("network", {})
    if isinstance(raw_network, dict) and isinstance(raw_network.get("normalize"), bool):
        raw_network = {**raw_network, "normalize": "state" if raw_network["normalize"] else "none"}
    network = check_table(raw_network, NETWORK_FIELDS, "network")
    if network["spec"] is None:
        # For files the default depends on the rank of the data (resolved on loading).
        if source_kind(source) not in ("file", "disk"):
            network["spec"] = default_network_spec(source == "lorenz")
    else:
        network["spec"] = format_network(parse_network(network["spec"]))

    training = check_table(raw.get("training", {}), TRAINING_FIELDS, "training")
    method = parse_method(training["method"])
    training["method"] = format_method(method)
    if network["normalize"] is None:
        network["normalize"] = default_normalization(source, method)
    if METHODS[method.kind].models_states and network["normalize"] == "residual":
        raise ConfigError(
            "network.normalize", f"\"state\" or \"none\" for {method.kind!r} (it learns the "
            "distribution of single states, not increments)", '"residual"',
            'set normalize = "state" (the default) or "none"',
        )
    if training["warmup_steps"] >= training["num_training_steps"]:
        raise ConfigError(
            "training.warmup_steps",
            f"fewer warm-up steps than num_training_steps = {training['num_training_steps']}",
            str(training["warmup_steps"]),
            "lower warmup_steps",
        )

    evaluation = check_table(
        raw.get("evaluation", {}), EVALUATION_FIELDS, "evaluation",
        derived={"nrmse_aggregate_steps": lambda t: t["num_rollout_steps"]},
    )
    if evaluation["nrmse_aggregate_steps"] > evaluation["num_rollout_steps"]:
        raise ConfigError(
            "evaluation.nrmse_aggregate_steps",
            f"at most num_rollout_steps = {evaluation['num_rollout_steps']}",
            str(evaluation["nrmse_aggregate_steps"]),
            "lower nrmse_aggregate_steps or raise num_rollout_steps",
        )

    validation = check_table(raw.get("validation", {}), VALIDATION_FIELDS, "validation")
    _check_validation(validation)
    logging = check_table(raw.get("logging", {}), LOGGING_FIELDS, "logging")
    _check_logging(logging)

    kind = source_kind(source)
    if kind == "disk":
        for field, value in (("num_seeds", top["num_seeds"]),
                             ("training.steps_per_dispatch", training["steps_per_dispatch"])):
            if value != 1:
                raise ConfigError(field, "1 for data on disk", str(value),
                                  "or load the data into memory with a file: source")
    from_file = kind in ("file", "disk")  # no reference simulator, no residuum
    if method.needs_ref_stepper and from_file:
        raise ConfigError(
            "training.method",
            f"a method without reference simulator for data from a file ({training['method']!r} "
            "needs one)",
            repr(training["method"]),
            "use one, sup, tf or fm with file data, or a generated source",
        )
    if method.needs_residuum and from_file:
        raise ConfigError(
            "training.method",
            "a method without residuum for data from a file (res needs one)",
            repr(training["method"]),
            "use one, sup, tf or fm with file data, or a generated source",
        )
    window = method.required_window_length
    horizon = data.get("temporal_horizon")
    if horizon is not None and horizon < window:
        raise ConfigError(
            "data.temporal_horizon",
            f"at least {window} snapshots for method {training['method']!r}",
            str(horizon),
            f"set temporal_horizon = {window} or more, or shorten the rollout",
        )
    return {**top, "data": data, "network": network, "training": training,
            "evaluation": evaluation, "validation": validation, "logging": logging}


def default_config(source: str = "advection", **top: Any) -> dict:
    """The full default configuration for a data source.

    **Arguments:**

    - `source`: the `[data] source`.
    - `**top`: top-level overrides, e.g. `name="demo"`.

    **Returns:**

    - A validated configuration dict.
    """
    return validate_config({**top, "data": {"source": source}})


def load_config(path: Union[str, os.PathLike]) -> dict:
    """Read and validate a TOML configuration file.

    **Arguments:**

    - `path`: the `.toml` file; relative `file:` sources are resolved against its
        directory.

    **Returns:**

    - The validated configuration with every default filled in.

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] (also for unreadable TOML), naming the
        file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", "an existing configuration file", repr(str(path)),
                          f"check the path, or start from `{term('default_config')}`")
    try:
        raw = _toml.loads(path.read_text(encoding="utf-8"))
    except (_toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError("", "valid TOML", f"a syntax error ({error})",
                          "see https://toml.io", source=str(path)) from None
    try:
        return validate_config(raw, base_dir=path.parent)
    except ConfigError as error:
        raise error.with_source(str(path)) from None


def config_to_toml(config: dict) -> str:
    """The TOML text of a configuration (as written to `config.toml`)."""
    return _toml.dumps(config)


def save_config(path: Union[str, os.PathLike], config: dict) -> Path:
    """Write a configuration to `path` atomically as TOML."""
    return _toml.write_text_atomic(path, config_to_toml(config))


def config_differences(a: dict, b: dict) -> list[str]:
    """Dotted paths of the fields that differ between two configurations."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [f"{key}.{p}" for p in config_differences(va, vb)]
        elif va != vb:
            out.append(f"{key} ({va!r} vs {vb!r})")
    return out
