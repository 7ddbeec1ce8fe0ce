"""Many chaotic systems, one forecaster: trained on a mixture, tested zero-shot.

Issue 22 end to end, CPU-sized:

1. **One catalogue** (`tx.systems.generate_catalogue`, generated once per run into
    `--cache` or a temporary folder and reused by every comparison below): the seven
    built-in systems (`Lorenz63`, `Rossler`, `Thomas`, `Halvorsen`, `SprottB`, `Chen`,
    `Lorenz96_5`), each with its default parameters and `--perturbations` parameter
    perturbations, plus the skew products of `SKEW_PAIRS` (driver, response pairs
    that pass the validity filter; `Rossler` driven by `Lorenz63`, for example, is
    rejected as unbounded, `Rossler` driving `Thomas` often as non-stationary), 3 channels per
    system (fixed channel selection). It is split by base system: `HELD_OUT`
    (`Thomas`, `SprottB`, `Halvorsen`) and the five skew products built from one of
    them form the test split (8 held-out systems, a perturbation counting as its
    system), so the zero-shot systems are never seen in training, not even as the
    driver or response of a skew product; 8 systems (4 bases, 4 skew products)
    remain for training.
2. **One forecaster**: `tx.networks.PatchForecaster` (context 32, prediction 8,
    patch 8, width 32, 2 layers, 4 heads) trained with `ConfigurationTrainer` on the
    training split as a `tx.data.SystemMixture` (equal weight per system) with
    `RandomAffine`, `RandomConvexCombination` and `DelayEmbedding` stacked around the
    supervised loss, each with probability 0.2. The augmentations transform windows of
    states `(B, W, C)`, so the loss sees states, and `_StatesToBlocks` (below) cuts
    them into the blocks of 8 states and histories of 4 blocks the forecaster reads
    (`Supervised(1, num_input_steps=4)` on blocks: the MSE of the next 8 states).
    Adam with a cosine-decayed learning rate, `--updates` updates of `--batch-size`
    windows.
3. **Zero-shot** (`tx.systems.zero_shot_table`): 4 windows of every test trajectory,
    context 32, forecast 64 states on a sliding context, sMAPE (%) at horizons 8, 16,
    32, 64, the valid prediction time (steps until the running sMAPE passes 30 %);
    median over a system's windows, then median over systems. Against the table's
    baselines `repeat_last` and `context_mean`, and against an **expert per held-out
    system**: a forecaster of the same size trained, with the same number of updates,
    on new trajectories of that system alone (the same parameter variants as its test
    trajectories, new initial conditions drawn from an independently seeded
    reference trajectory: its own data, never the test trajectories).
4. **Augmentations on vs off**, `--seeds` seeds each (mean ± std over seeds of the
    median zero-shot sMAPE at the first two horizons).
5. **Cost**: seconds per update of the mixture + augmentation pipeline against
    single-system training of the same network (the same trainer, batch and number of
    updates on the training trajectories of `Lorenz63` alone, no augmentation); the
    optimizer is created once per configuration and the trainer called again, so the
    timed calls reuse the compiled update; median over `--repeats` calls.

Targets of issue 22, printed as PASS/FAIL lines (`check_targets`): the median zero-shot
sMAPE at the first two horizons is at least 20 % below both naive baselines; the
forecaster is within 1.5x of the experts (median over systems of the per-system ratio,
an aim); the pipeline costs at most 1.1x single-system training per update (an aim).

The sizes are CPU sizes (tens of systems, a context of 32 states): the whole run is
dominated by compilation and by the 6 + 8 trainings, so it is kept to 3000 updates each
(`benchmarks/results/bench_many_systems_3000.md`; `--updates 1500` gives
`bench_many_systems.md`, where the second horizon misses the baseline target).

Run: `python benchmarks/bench_many_systems.py` (about 25-30 minutes on 2 CPU cores shared
with other jobs; `--cache DIR` keeps the catalogue for the next run; `--quick` is a
smoke test, a few minutes on a loaded machine, mostly compilation). `--rollout-steps R`
trains the forecaster and the experts on `R` calls unrolled per window
(`Supervised(R, num_input_steps=4)` on blocks, windows of `32 + 8 R` states; default 1,
the committed results), so the loss sees blocks forecast from the model's own blocks;
`--skip-ablation` trains only the augmented forecaster (seed 0) and `--skip-cost` skips
the timing, to shorten such a run. Writes
`benchmarks/results/bench_many_systems.md` and the numbers as `.json` beside it (the
committed `.md` adds a hand-written "Reading it honestly" section after the run).
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax

import trainax_fm as tx
from trainax_fm import systems as S
from trainax_fm.configuration import (
    DelayEmbedding,
    RandomAffine,
    RandomConvexCombination,
    Supervised,
)
from trainax_fm.configuration._base import call_configuration
from trainax_fm.configuration._wrapper import AbstractWrapperConfiguration

HELD_OUT = ("Thomas", "SprottB", "Halvorsen")
# (driver, response): each passes the default validity filter at the catalogue's
# settings (checked by `generate_catalogue`, which fails otherwise).
SKEW_PAIRS = (
    # Training: built from training bases only.
    ("Lorenz63", "Chen"),
    ("Rossler", "Lorenz63"),
    ("Rossler", "Chen"),
    ("Lorenz63", "Lorenz96_5"),
    # Held out: each uses a held-out base.
    ("Lorenz63", "SprottB"),
    ("Rossler", "SprottB"),
    ("Halvorsen", "Lorenz63"),
    ("SprottB", "Lorenz63"),
    ("Halvorsen", "Chen"),
)
CONTEXT, PREDICTION, PATCH = 32, 8, 8
FORECAST = 8 * PREDICTION
HORIZONS = (8, 16, 32, 64)
FIRST = HORIZONS[:2]
NUM_WINDOWS = 4
TARGET_BELOW_BASELINES = 0.20
TARGET_EXPERT_RATIO = 1.5
TARGET_COST_RATIO = 1.1


class _StatesToBlocks(AbstractWrapperConfiguration):
    """Windows of states `(B, W, C)` cut into blocks of `block` states `(B, W/block,
    block*C)` (time-major, the layout of `num_output_steps=block`) for the wrapped
    configuration. So window augmentations, which act on states, can sit outside and
    a forecaster of `block` states per call inside."""

    configuration: Supervised
    block: int = eqx.field(static=True)

    @property
    def required_window_length(self) -> int:
        return self.configuration.required_window_length * self.block

    def _loss(self, stepper, data, inputs):
        batch, length, channels = data.shape
        blocks = data.reshape(batch, length // self.block, self.block * channels)
        return call_configuration(self.configuration, stepper, blocks, inputs)


def loss_configuration(augment: bool, probability: float, rollout_steps: int = 1):
    """`rollout_steps` calls unrolled per window: with 2 the loss also sees the second
    block forecast from the model's own first block, as the zero-shot rollout does."""
    blocks = _StatesToBlocks(
        Supervised(rollout_steps, num_input_steps=CONTEXT // PREDICTION), PREDICTION
    )
    if not augment:
        return blocks
    return DelayEmbedding(
        RandomConvexCombination(RandomAffine(blocks, probability), probability),
        probability,
        max_delay=2,
    )


def new_forecaster(seed: int, args) -> tx.networks.PatchForecaster:
    return tx.networks.PatchForecaster(
        3, CONTEXT, PREDICTION, PATCH, width=args.width, num_layers=args.layers,
        num_heads=4, key=jax.random.key(seed),
    )


def optimizer(args):
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, args.learning_rate, max(1, args.updates // 20), args.updates, args.learning_rate / 20
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def trainer_for(source, configuration, args, optimizer_, *, updates=None):
    return tx.trainer.ConfigurationTrainer(
        source, configuration, optimizer=optimizer_,
        num_training_steps=updates or args.updates, batch_size=args.batch_size,
    )


def train(trainer, seed: int, args):
    """A trained forecaster and the wall time of its training. Calling one trainer
    (one optimizer) again reuses its compiled update; the first call compiles."""
    start = time.perf_counter()
    result = trainer.train(new_forecaster(seed, args), jax.random.key(1000 + seed),
                           spawn_tqdm=False)
    jax.block_until_ready(result.loss_history)
    seconds = time.perf_counter() - start
    losses = np.asarray(result.loss_history)
    if not np.all(np.isfinite(losses)):
        raise RuntimeError("training diverged (non-finite loss); lower --learning-rate.")
    tail = max(1, len(losses) // 20)
    return result.stepper, seconds, float(np.mean(losses[:tail])), float(np.mean(losses[-tail:]))


# --- data ----------------------------------------------------------------------------


def catalogue_settings(args) -> dict:
    return {
        "systems": list(S.builtin_system_names()),
        "skew_pairs": [list(p) for p in SKEW_PAIRS],
        "held_out": list(HELD_OUT),
        "num_trajectories_per_system": args.trajectories,
        "num_time_steps": args.time_steps,
        "num_perturbations": args.perturbations,
        "seed": args.seed,
    }


def make_catalogue(folder: Path, args) -> tuple[S.Catalogue, float, bool]:
    """The catalogue in `folder`: reused if one with the same settings is there."""
    settings = catalogue_settings(args)
    record = folder / "bench_settings.json"
    if record.exists() and json.loads(record.read_text()) == settings:
        try:
            return S.load_catalogue(folder), 0.0, True
        except (ValueError, OSError):
            pass
    start = time.perf_counter()
    catalogue = S.generate_catalogue(
        settings["systems"], folder,
        skew_pairs=[tuple(p) for p in SKEW_PAIRS],
        held_out=HELD_OUT,
        num_trajectories_per_system=args.trajectories,
        num_time_steps=args.time_steps,
        num_perturbations=args.perturbations,
        seed=args.seed,
        num_workers=args.workers,
    )
    seconds = time.perf_counter() - start
    record.write_text(json.dumps(settings))
    return catalogue, seconds, False


def variant_system(entry) -> S.ODESystem:
    """The ODE system (with the variant's parameters) behind a catalogue entry."""
    bases = entry["base_systems"]
    if len(bases) == 1:
        system = S.get_system(bases[0])
    else:
        system = S.skew_product(S.get_system(bases[0]), S.get_system(bases[1]))
    return system.with_parameters(entry["parameters"])


def expert_data(catalogue: S.Catalogue, system: str, args) -> np.ndarray:
    """New trajectories of a held-out system: for each of its variants in the test
    split, `--expert-trajectories` trajectories from initial conditions on an
    independently seeded reference trajectory, with the catalogue's channel
    selection. Its own data, never its test trajectories."""
    variants = {}
    for entry in catalogue.entries("test"):
        if entry["system"] == system:
            variants.setdefault(entry["perturbation"], entry)
    settings = catalogue.metadata["settings"]
    integrate = {k: settings[k] for k in ("method", "rtol", "atol")}
    system_index = catalogue.system_names.index(system)
    trajectories = []
    for perturbation, entry in sorted(variants.items()):
        variant = variant_system(entry)
        # A seed stream of its own (7919 marks the experts), so no test initial
        # condition is drawn again.
        rng = np.random.default_rng([args.seed, 7919, system_index, perturbation])
        initial, _ = S.on_attractor_initial_conditions(
            variant, args.expert_trajectories, rng=rng,
            num_transient_steps=settings["num_transient_steps"],
            num_reference_steps=settings["num_reference_steps"], **integrate,
        )
        selection = tuple(tuple(channel) for channel in entry["channels"])
        lead = max(delay for _, delay in selection)
        for start in initial:
            trajectory = S.integrate_system(variant, start, args.time_steps + lead, **integrate)
            trajectories.append(S.apply_channel_selection(trajectory, selection).astype(np.float32))
    return np.stack(trajectories)


# --- scoring -------------------------------------------------------------------------


def zero_shot(model, test, labels, *, baselines=True) -> S.ZeroShotTable:
    return S.zero_shot_table(
        model, test, labels, context_length=CONTEXT, prediction_length=PREDICTION,
        forecast_length=FORECAST, horizons=HORIZONS, num_windows=NUM_WINDOWS,
        baselines=baselines,
    )


def first_smape(table: S.ZeroShotTable, model="forecaster", system="median") -> list[float]:
    return [table.value(model, system, f"smape@{h}") for h in FIRST]


def mean_std(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def time_updates(pipelines, args) -> dict[str, list[float]]:
    """Seconds per update of `--repeats` calls of one trainer per pipeline, after a
    compiling call; the pipelines take turns, so a change of the machine's load
    falls on all of them alike."""
    trainers = {
        name: trainer_for(source, configuration, args, optax.adam(1e-3),
                          updates=args.timing_updates)
        for name, (source, configuration) in pipelines.items()
    }
    model = new_forecaster(0, args)
    times = {name: [] for name in trainers}
    for repeat in range(args.repeats + 1):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            result = trainer.train(model, jax.random.key(repeat), spawn_tqdm=False)
            jax.block_until_ready(result.loss_history)
            if repeat:  # the first call compiles
                times[name].append((time.perf_counter() - start) / args.timing_updates)
    return times


def check_targets(summary) -> list[str]:
    lines = []
    for h in FIRST:
        ours = summary["zero_shot_median"]["forecaster"][f"smape@{h}"]
        for baseline in ("repeat_last", "context_mean"):
            theirs = summary["zero_shot_median"][baseline][f"smape@{h}"]
            below = 1.0 - ours / theirs
            met = below >= TARGET_BELOW_BASELINES
            lines.append(
                f"zero-shot sMAPE@{h}: forecaster {ours:.3g} vs {baseline} {theirs:.3g}: "
                f"{100 * below:+.0f}% below (target >= {100 * TARGET_BELOW_BASELINES:.0f}%) "
                f"-> {'PASS' if met else 'FAIL'}"
            )
    for h in FIRST:
        ratio = summary["expert_ratio_median"][f"smape@{h}"]
        lines.append(
            f"forecaster / expert sMAPE@{h}, median over held-out systems: {ratio:.2f}x "
            f"(aim <= {TARGET_EXPERT_RATIO}x) -> "
            f"{'PASS' if ratio <= TARGET_EXPERT_RATIO else 'FAIL'}"
        )
    if summary["cost"] is None:
        lines.append("update time: not measured (--skip-cost)")
        return lines
    ratio = summary["cost"]["ratio"]
    lines.append(
        f"update time, mixture + 3 augmentations / single system: {ratio:.2f}x "
        f"(aim <= {TARGET_COST_RATIO}x) -> {'PASS' if ratio <= TARGET_COST_RATIO else 'FAIL'}"
    )
    return lines


# --- the run -------------------------------------------------------------------------


def run(args, folder: Path) -> dict:
    clock = time.perf_counter()
    catalogue, generation_s, reused = make_catalogue(folder, args)
    print(f"catalogue {catalogue} ({'reused' if reused else f'{generation_s:.0f} s'})",
          flush=True)
    train_data = catalogue.load("train")
    test_data = catalogue.load("test")
    train_labels = [e["system"] for e in catalogue.entries("train")]
    test_labels = [e["system"] for e in catalogue.entries("test")]
    held_out_systems = list(dict.fromkeys(test_labels))
    mixture = tx.data.SystemMixture(train_data, train_labels, key=jax.random.key(args.seed))

    # Augmentations on and off, over seeds; on with seed 0 is "the forecaster".
    runs = {"on": [], "off": []}
    models = {}
    for augment in (True, False):
        name = "on" if augment else "off"
        if not augment and args.skip_ablation:
            continue
        trainer = trainer_for(
            mixture, loss_configuration(augment, args.probability, args.rollout_steps), args,
            optimizer(args),
        )
        for seed in range(1 if args.skip_ablation else args.seeds):
            model, seconds, first, last = train(trainer, seed, args)
            table = zero_shot(model, test_data, test_labels)
            runs[name].append({
                "seed": seed, "train_s": seconds, "loss_first": first, "loss_last": last,
                **{f"smape@{h}": v for h, v in zip(FIRST, first_smape(table))},
            })
            models[name, seed] = table
            print(f"augmentations {name}, seed {seed}: {seconds:.0f} s, loss {first:.3g} -> "
                  f"{last:.3g}, median sMAPE@{FIRST} = {first_smape(table)}", flush=True)
    table = models["on", 0]

    # One expert per held-out system, same network, same number of updates.
    experts = {}
    expert_optimizer = optimizer(args)
    # The experts train on the same unrolled loss as the forecaster.
    expert_configuration = loss_configuration(False, 0.0, args.rollout_steps)
    for system in held_out_systems:
        data = expert_data(catalogue, system, args)
        trainer = trainer_for(data, expert_configuration, args, expert_optimizer)
        model, seconds, first, last = train(trainer, 0, args)
        mask = [label == system for label in test_labels]
        expert_table = zero_shot(
            model, test_data[np.asarray(mask)], [system] * sum(mask), baselines=False
        )
        experts[system] = {
            "train_trajectories": int(data.shape[0]), "train_s": seconds,
            "loss_first": first, "loss_last": last,
            **{f"smape@{h}": expert_table.value("forecaster", system, f"smape@{h}")
               for h in HORIZONS},
            "vpt": expert_table.value("forecaster", system, "vpt"),
        }
        print(f"expert {system}: {data.shape[0]} trajectories, {seconds:.0f} s, "
              f"sMAPE@{FIRST} = {[experts[system][f'smape@{h}'] for h in FIRST]}", flush=True)

    per_system = {}
    for system in held_out_systems:
        per_system[system] = {
            model: {
                **{f"smape@{h}": table.value(model, system, f"smape@{h}") for h in HORIZONS},
                "vpt": table.value(model, system, "vpt"),
            }
            for model in table.models
        }
        per_system[system]["expert"] = {
            k: experts[system][k] for k in [f"smape@{h}" for h in HORIZONS] + ["vpt"]
        }
    ratios = {
        f"smape@{h}": float(np.median([
            per_system[s]["forecaster"][f"smape@{h}"] / per_system[s]["expert"][f"smape@{h}"]
            for s in held_out_systems
        ]))
        for h in HORIZONS
    }
    medians = {
        model: {
            **{f"smape@{h}": table.value(model, "median", f"smape@{h}") for h in HORIZONS},
            "vpt": table.value(model, "median", "vpt"),
        }
        for model in table.models
    }
    medians["expert"] = {
        k: float(np.median([per_system[s]["expert"][k] for s in held_out_systems]))
        for k in [f"smape@{h}" for h in HORIZONS] + ["vpt"]
    }

    # Cost per update: the pipeline against one system without augmentation.
    cost = None
    if not args.skip_cost:
        single = train_data[np.asarray([label == "Lorenz63" for label in train_labels])]
        rollout = args.rollout_steps
        times = time_updates({
            "single": (single, loss_configuration(False, 0.0, rollout)),
            "mixture": (mixture, loss_configuration(False, 0.0, rollout)),
            "mixture_augmented": (mixture, loss_configuration(True, args.probability, rollout)),
        }, args)
        plain, mixed, augmented = times["single"], times["mixture"], times["mixture_augmented"]
        cost = {
            "single_system_s": statistics.median(plain),
            "mixture_s": statistics.median(mixed),
            "mixture_augmented_s": statistics.median(augmented),
            "samples": {"single": plain, "mixture": mixed, "mixture_augmented": augmented},
        }
        cost["ratio"] = cost["mixture_augmented_s"] / cost["single_system_s"]
        print(f"cost per update: {cost}", flush=True)

    return {
        "settings": {k: v for k, v in vars(args).items() if k not in ("output",)},
        "catalogue": {
            "shape": list(catalogue.shape), "generation_s": generation_s, "reused": reused,
            "train_systems": list(dict.fromkeys(train_labels)),
            "held_out_systems": held_out_systems,
            "train_trajectories": catalogue.num_trajectories("train"),
            "test_trajectories": catalogue.num_trajectories("test"),
            "rejections": dict(catalogue.rejections),
            "rejections_by_system": {k: dict(v) for k, v in catalogue.rejections_by_system.items()},
        },
        "zero_shot_markdown": table.to_markdown(precision=3),
        "zero_shot_per_system": per_system,
        "zero_shot_median": medians,
        "expert_ratio_median": ratios,
        "experts": experts,
        "augmentation_runs": runs,
        "cost": cost,
        "total_s": time.perf_counter() - clock,
    }


def fmt(value, digits=3) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def markdown(summary, command: str) -> str:
    cat = summary["catalogue"]
    s = summary["settings"]
    models = ["forecaster", "expert", "repeat_last", "context_mean"]
    lines = [
        "# Many systems, one forecaster: zero-shot on held-out chaotic systems (issue 22)",
        "",
        f"Command: `{command}`",
        "",
        f"jax {jax.__version__}, device {jax.devices()[0].device_kind} "
        f"({jax.default_backend()}), Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores shared with other jobs. Total run "
        f"{summary['total_s'] / 60:.1f} min.",
        "",
        "## Catalogue",
        "",
        f"`(S, T, C) = {tuple(cat['shape'])}`, {s['trajectories']} trajectories per system "
        f"variant, {s['perturbations']} parameter perturbations per system, generated in "
        f"{cat['generation_s']:.0f} s{' (reused)' if cat['reused'] else ''}.",
        f"Training systems ({len(cat['train_systems'])}, {cat['train_trajectories']} "
        f"trajectories): {', '.join(cat['train_systems'])}.",
        f"Held-out systems ({len(cat['held_out_systems'])}, {cat['test_trajectories']} "
        f"trajectories; held-out bases {', '.join(HELD_OUT)} and every skew product "
        f"using one): {', '.join(cat['held_out_systems'])}.",
        "Rejected variants by reason: "
        + (", ".join(f"{k} {v}" for k, v in cat["rejections"].items() if v) or "none")
        + ".",
        "",
        f"Forecaster: PatchForecaster(context {CONTEXT}, prediction {PREDICTION}, patch "
        f"{PATCH}, width {s['width']}, {s['layers']} layer(s), 4 heads), "
        f"{s['updates']} updates of batch {s['batch_size']}, {s['rollout_steps']} call(s) "
        f"unrolled per window (`Supervised({s['rollout_steps']}, num_input_steps=4)` on "
        f"blocks of 8 states), Adam, peak learning rate "
        f"{s['learning_rate']} (warmup + cosine), gradient clipping 1. Augmentations "
        f"RandomAffine, RandomConvexCombination, DelayEmbedding(max_delay=2), each with "
        f"probability {s['probability']}. Experts: the same network and updates, on "
        f"{s['expert_trajectories']} new trajectories per variant of their system.",
        "",
        "## Zero-shot, per held-out system (sMAPE in %, vpt in steps)",
        "",
        "Median over 4 windows per trajectory; forecast 64 states from a context of 32.",
        "",
        "| system | model | " + " | ".join(f"sMAPE@{h}" for h in HORIZONS) + " | vpt |",
        "|---|---|" + "---:|" * (len(HORIZONS) + 1),
    ]
    rows = dict(summary["zero_shot_per_system"], median=summary["zero_shot_median"])
    for system, entry in rows.items():
        for model in models:
            values = entry[model]
            lines.append(
                f"| {system} | {model} | "
                + " | ".join(fmt(values[f"smape@{h}"]) for h in HORIZONS)
                + f" | {fmt(values['vpt'])} |"
            )
    ratios = summary["expert_ratio_median"]
    lines += [
        "",
        "Forecaster / expert sMAPE, median over held-out systems of the per-system ratio: "
        + ", ".join(f"@{h}: {ratios[f'smape@{h}']:.2f}x" for h in HORIZONS) + ".",
        "",
        "## Augmentations on vs off",
        "",
        (
            "Not run (`--skip-ablation`): augmentations on, seed 0 only (std 0)."
            if s.get("skip_ablation") else
            f"Median zero-shot sMAPE (%) over held-out systems, mean ± std over "
            f"{s['seeds']} seeds (forecaster seeds 0..{s['seeds'] - 1}, same data)."
        ),
        "",
        "| augmentations | " + " | ".join(f"sMAPE@{h}" for h in FIRST)
        + " | final training loss | train s |",
        "|---|" + "---:|" * (len(FIRST) + 2),
    ]
    for name, runs in summary["augmentation_runs"].items():
        if not runs:  # --skip-ablation
            continue
        cells = []
        for key in [f"smape@{h}" for h in FIRST] + ["loss_last", "train_s"]:
            mean, std = mean_std([r[key] for r in runs])
            cells.append(f"{fmt(mean)} ± {fmt(std, 2)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cost = summary["cost"]
    if cost is not None:
        lines += [
            "",
            "## Cost per update",
            "",
            f"Median over {s['repeats']} calls of {s['timing_updates']} updates each, after "
            "a compiling call (one trainer per row, its optimizer created once).",
            "",
            "| pipeline | ms per update | ratio |",
            "|---|---:|---:|",
            f"| single system (Lorenz63), no augmentation | "
            f"{1e3 * cost['single_system_s']:.2f} | 1.00 |",
            f"| mixture, no augmentation | {1e3 * cost['mixture_s']:.2f} | "
            f"{cost['mixture_s'] / cost['single_system_s']:.2f} |",
            f"| mixture + 3 augmentations | {1e3 * cost['mixture_augmented_s']:.2f} | "
            f"{cost['ratio']:.2f} |",
        ]
    lines += [
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in summary["targets"]],
        *[f"- {line}" for line in summary["augmentation_verdict"]],
        "",
        "## The zero-shot table of `zero_shot_table` (augmentations on, seed 0)",
        "",
        summary["zero_shot_markdown"],
    ]
    return "\n".join(lines) + "\n"


def augmentation_verdict(summary) -> list[str]:
    lines = []
    if not summary["augmentation_runs"]["off"]:
        return ["augmentations on vs off: not run (--skip-ablation)"]
    for h in FIRST:
        on = mean_std([r[f"smape@{h}"] for r in summary["augmentation_runs"]["on"]])
        off = mean_std([r[f"smape@{h}"] for r in summary["augmentation_runs"]["off"]])
        difference = off[0] - on[0]
        beyond = abs(difference) > on[1] + off[1]
        lines.append(
            f"augmentations sMAPE@{h}: on {on[0]:.3g} ± {on[1]:.2g} vs off {off[0]:.3g} ± "
            f"{off[1]:.2g}: {'better' if difference > 0 else 'worse'} by {abs(difference):.3g} "
            f"({'beyond' if beyond else 'within'} the sum of the seed stds, {on[1] + off[1]:.2g})"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--probability", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trajectories", type=int, default=4,
                        help="trajectories per system variant in the catalogue")
    parser.add_argument("--perturbations", type=int, default=1)
    parser.add_argument("--time-steps", type=int, default=256)
    parser.add_argument("--expert-trajectories", type=int, default=8,
                        help="new trajectories per variant for each expert")
    parser.add_argument("--timing-updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rollout-steps", type=int, default=1,
                        help="forecaster calls unrolled per training window (also the experts)")
    parser.add_argument("--skip-ablation", action="store_true",
                        help="train only the augmented forecaster, seed 0 (no off runs)")
    parser.add_argument("--skip-cost", action="store_true",
                        help="skip the cost-per-update timing")
    parser.add_argument("--cache", default=None,
                        help="catalogue folder, reused when its settings match")
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--output", default="benchmarks/results/bench_many_systems.md")
    args = parser.parse_args()
    if args.quick:
        args.updates, args.seeds, args.trajectories, args.perturbations = 10, 2, 1, 0
        args.time_steps, args.expert_trajectories = 120, 1
        args.timing_updates, args.repeats, args.width, args.layers = 5, 2, 16, 1
    if args.rollout_steps < 1:
        parser.error(f"--rollout-steps must be >= 1, got {args.rollout_steps}.")
    window = (CONTEXT // PREDICTION + args.rollout_steps) * PREDICTION
    if window > args.time_steps:
        parser.error(
            f"--rollout-steps {args.rollout_steps} needs training windows of {window} states "
            f"(context {CONTEXT} + {args.rollout_steps} blocks of {PREDICTION}), longer than "
            f"--time-steps {args.time_steps}; lower --rollout-steps or raise --time-steps."
        )
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.cache) if args.cache else Path(temporary) / "catalogue"
        summary = run(args, folder)
    summary["command"] = command
    summary["jax"] = jax.__version__
    summary["device"] = str(jax.devices()[0])
    summary["targets"] = check_targets(summary)
    summary["augmentation_verdict"] = augmentation_verdict(summary)
    for line in summary["targets"] + summary["augmentation_verdict"]:
        print(line)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=float))
    output.write_text(markdown(summary, command))
    print(f"wrote {output} and {output.with_suffix('.json')}")


if __name__ == "__main__":
    main()
