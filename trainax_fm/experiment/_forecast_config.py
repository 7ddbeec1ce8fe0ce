"""The configuration of a many-system forecasting experiment (`trainax-fm zero-shot`).

One TOML file describes the whole workflow: which systems to generate, which base
systems to hold out, the forecaster, its training on the mixture of the training
systems and the zero-shot evaluation on the held-out ones. Every key is optional; every
key that is present is checked strictly (unknown keys, wrong types, out-of-range values
raise a [`trainax_fm.experiment.ConfigError`][] naming the field and the fix).

```toml
name = "chaotic_zero_shot"  # results go to <results>/<name>/
seed = 0                    # forecaster initialisation, mixture, minibatches, augmentations

[catalogue]                 # trainax_fm.systems.generate_catalogue
systems = ["Lorenz63", "Rossler", "Thomas", "Halvorsen", "SprottB", "Chen", "Lorenz96_5"]
skew_pairs = ["Rossler:Lorenz63"]  # "DRIVER:RESPONSE" skew products
num_perturbations = 1       # perturbed parameter sets per system (besides the original)
num_trajectories = 2        # trajectories per (perturbed) system
num_time_steps = 256        # stored samples per trajectory (after the transient)
num_channels = 3            # every system stored with this many channels
seed = 0                    # same seed, same files

[split]
held_out = ["Thomas", "Halvorsen"]  # base systems tested zero-shot (with their skew products)

[forecaster]                # trainax_fm.networks.PatchForecaster
context_length = 32         # states in; a multiple of prediction_length
prediction_length = 8       # states out per call
patch_length = 8
width = 32
num_layers = 2
num_heads = 2

[training]
num_training_steps = 2000
batch_size = 32
learning_rate = 0.001       # Adam, cosine decay with warm-up
warmup_steps = 100
num_rollout_steps = 1       # calls unrolled per training window
augmentations = ["affine", "convex", "delay"]  # any of these; [] for none
augmentation_probability = 0.2
mixture_weights = []        # "SYSTEM:WEIGHT" entries (unlisted systems get 0); [] weighs
                            # every system equally

[evaluation]
horizons = [8, 16, 32]      # cumulative horizons of the scores, in states
num_forecasts = 4           # forecast windows per held-out trajectory
smape_threshold = 30.0      # valid prediction time: first step above this sMAPE (%)
```
"""

from typing import Any

from ._errors import ConfigError, describe_value
from ._schema import NAME_PATTERN, Field, check_table

TOP_FIELDS = {
    "name": Field("str", "zero_shot", pattern=NAME_PATTERN, doc="the results folder name"),
    "seed": Field("int", 0, minimum=0, doc="seed of initialisation, mixture and minibatches"),
    "description": Field("str", "", doc="free text"),
}
CATALOGUE_FIELDS = {
    "systems": Field(
        "names", "Lorenz63;Rossler;Thomas;Halvorsen;SprottB;Chen;Lorenz96_5",
        example=["Lorenz63", "Rossler"],
        doc="built-in systems (trainax_fm.systems.builtin_systems()) or dysts names",
    ),
    "skew_pairs": Field("names", "Rossler:Lorenz63", example=["Rossler:Lorenz63"],
                        doc="skew products written DRIVER:RESPONSE"),
    "num_perturbations": Field("int", 1, minimum=0),
    "num_trajectories": Field("int", 2, minimum=1, doc="trajectories per (perturbed) system"),
    "num_time_steps": Field("int", 256, minimum=2),
    "num_channels": Field("int", 3, minimum=1),
    "seed": Field("int", 0, minimum=0, doc="seed of the generated catalogue"),
}
SPLIT_FIELDS = {
    "held_out": Field("names", "Thomas;Halvorsen", example=["Thomas"],
                      doc="base systems tested zero-shot, with every skew product using one"),
}
FORECASTER_FIELDS = {
    "context_length": Field("int", 32, minimum=1),
    "prediction_length": Field("int", 8, minimum=1),
    "patch_length": Field("int", 8, minimum=1),
    "width": Field("int", 32, minimum=1),
    "num_layers": Field("int", 2, minimum=1),
    "num_heads": Field("int", 2, minimum=1),
}
AUGMENTATIONS = ("affine", "convex", "delay")
TRAINING_FIELDS = {
    "num_training_steps": Field("int", 2000, minimum=1),
    "batch_size": Field("int", 32, minimum=1),
    "learning_rate": Field("float", 1e-3, minimum=0.0, exclusive_minimum=True),
    "warmup_steps": Field("int", 100, minimum=0),
    "num_rollout_steps": Field("int", 1, minimum=1),
    "augmentations": Field("names", "affine;convex;delay", example=["affine"],
                           doc="any of affine, convex, delay; [] for none"),
    "augmentation_probability": Field("float", 0.2, minimum=0.0, maximum=1.0),
    "mixture_weights": Field("names", "", example=["Lorenz63:2"],
                             doc="SYSTEM:WEIGHT entries (unlisted systems get 0); [] weighs "
                             "every system equally"),
}
EVALUATION_FIELDS = {
    "horizons": Field("floats", (8.0, 16.0, 32.0), example=[8, 16],
                      doc="cumulative horizons of the scores, in states"),
    "num_forecasts": Field("int", 4, minimum=1, doc="forecast windows per trajectory"),
    "smape_threshold": Field("float", 30.0, minimum=0.0, exclusive_minimum=True),
}
SECTIONS = {
    "catalogue": CATALOGUE_FIELDS,
    "split": SPLIT_FIELDS,
    "forecaster": FORECASTER_FIELDS,
    "training": TRAINING_FIELDS,
    "evaluation": EVALUATION_FIELDS,
}


def split_names(text: str) -> tuple[str, ...]:
    """The entries of a `';'`-separated names setting."""
    return tuple(part.strip() for part in text.split(";") if part.strip())


def parse_pairs(text: str, path: str, kind: type, example: str) -> tuple[tuple[str, Any], ...]:
    """`"A:B;C:D"` as `(("A", kind("B")), ("C", kind("D")))`, or a `ConfigError`."""
    pairs = []
    for entry in split_names(text):
        left, colon, right = entry.partition(":")
        try:
            value = kind(right.strip())
        except ValueError:
            value = None
        if not colon or not left.strip() or value is None or value == "":
            raise ConfigError(path, f"entries written {example}", repr(entry),
                              f"write it as {example!r}")
        pairs.append((left.strip(), value))
    return tuple(pairs)


def _check_forecaster(forecaster: dict) -> None:
    context, prediction = forecaster["context_length"], forecaster["prediction_length"]
    if context % prediction:
        raise ConfigError(
            "forecaster.context_length", f"a multiple of prediction_length ({prediction})",
            str(context), f"set context_length = {max(1, context // prediction) * prediction}",
        )
    if context % forecaster["patch_length"] or prediction % forecaster["patch_length"]:
        raise ConfigError(
            "forecaster.patch_length",
            f"a divisor of context_length ({context}) and prediction_length ({prediction})",
            str(forecaster["patch_length"]), "choose e.g. patch_length = prediction_length",
        )
    width, heads = forecaster["width"], forecaster["num_heads"]
    if width % heads or (width // heads) % 2:
        raise ConfigError(
            "forecaster.num_heads",
            f"a divisor of width ({width}) leaving an even head size (rotary positions "
            "rotate pairs of features)", str(heads), "choose e.g. num_heads = 1 with an "
            "even width",
        )


def _check_cross_fields(config: dict) -> None:
    catalogue, training = config["catalogue"], config["training"]
    systems = split_names(catalogue["systems"])
    if not systems:
        raise ConfigError("catalogue.systems", "at least one system", "none",
                          'e.g. systems = ["Lorenz63", "Rossler"]')
    for driver, response in parse_pairs(catalogue["skew_pairs"], "catalogue.skew_pairs", str,
                                        "DRIVER:RESPONSE"):
        for name in (driver, response):
            if name not in systems:
                raise ConfigError("catalogue.skew_pairs", f"systems of catalogue.systems "
                                  f"{list(systems)}", repr(name), "add it to catalogue.systems")
    held_out = split_names(config["split"]["held_out"])
    if not held_out:
        raise ConfigError("split.held_out", "at least one base system to test zero-shot",
                          "none", f"e.g. held_out = [{systems[-1]!r}]")
    for name in held_out:
        if name not in systems:
            raise ConfigError("split.held_out", f"one of catalogue.systems {list(systems)}",
                              repr(name), "hold out a system the catalogue generates")
    if set(held_out) >= set(systems):
        raise ConfigError("split.held_out", "a strict subset of catalogue.systems",
                          describe_value(list(held_out)), "leave systems to train on")
    for name in split_names(training["augmentations"]):
        if name not in AUGMENTATIONS:
            raise ConfigError("training.augmentations", f"entries of {list(AUGMENTATIONS)}",
                              repr(name), "remove it or write one of those")
    for name, weight in parse_pairs(training["mixture_weights"], "training.mixture_weights",
                                    float, "SYSTEM:WEIGHT"):
        if weight < 0:
            raise ConfigError("training.mixture_weights", "weights >= 0", f"{name}:{weight}",
                              "use a non-negative weight")
    horizons = config["evaluation"]["horizons"]
    if not horizons or any(h != int(h) or h < 1 for h in horizons):
        raise ConfigError("evaluation.horizons", "a non-empty list of positive integers",
                          describe_value(list(horizons)), "e.g. horizons = [8, 16, 32]")
    window = config["forecaster"]["context_length"] + max(horizons)
    if window > catalogue["num_time_steps"]:
        raise ConfigError(
            "catalogue.num_time_steps",
            f"at least context_length + the longest horizon ({window})",
            str(catalogue["num_time_steps"]), f"set num_time_steps = {window} or more",
        )


def validate_forecast_config(raw: Any) -> dict:
    """Check a many-system forecasting configuration and fill in every default.

    **Arguments:**

    - `raw`: the parsed TOML document (a dict).

    **Returns:**

    - The complete configuration, one dict per section, horizons as integers.

    **Raises:**

    - [`trainax_fm.experiment.ConfigError`][] naming the first invalid field.
    """
    if not isinstance(raw, dict):
        raise ConfigError("", "a TOML document (a table)", describe_value(raw))
    top = {key: value for key, value in raw.items() if key not in SECTIONS}
    config = check_table(top, TOP_FIELDS, "", context=f" or a section {list(SECTIONS)}")
    for section, fields in SECTIONS.items():
        config[section] = check_table(raw.get(section, {}), fields, section)
    _check_forecaster(config["forecaster"])
    _check_cross_fields(config)
    config["evaluation"]["horizons"] = tuple(int(h) for h in config["evaluation"]["horizons"])
    return config
