"""Long, stable rollouts: the training methods against drift, side by side.

Two chaotic systems, both standardised with the training data's mean and standard
deviation:

- **Kuramoto-Sivashinsky** (`exponax.stepper.KuramotoSivashinsky`, ETDRK2, domain
    length 64, 64 points, `dt = 0.5` per emulator step), trajectories started from
    random truncated Fourier series after a transient of 200 steps;
- **Lorenz-96** (`tx.sample_data.lorenz96_rk4`, 40 variables, `F = 8`,
    `dt = 0.05`), a periodic ring treated as a 1D field.

One small residual periodic ConvNet (`u + net(u)`, 4 convolutions of width 24 and
kernel 5, GELU, ~6k parameters) is trained on each with every method, for the same
number of updates (Adam, cosine-decayed learning rate, batch 32), 3 seeds each
(trained together with `train_seeds`):

- `one-step`: `Supervised(1)`;
- `unrolled`: `Supervised(4)`;
- `pushforward`: `Pushforward(1, num_pushforward_steps=K, random_pushforward=True)`
    (`--pushforward-steps K`, 16 by default);
- `noise`: `InputNoise(Supervised(1), relative_std=...)` (`--noise`, 0.03 by default);
- `curriculum`: `RolloutCurriculum(Supervised(4), "N/4:1,N/2:2,3N/4:3,N:4")`;
- `mmd`: `Composite([Supervised(1), InvariantMeasureMMD(8)], [1, lambda])`;
- `gtf`: `GeneralizedTeacherForcing(8, forcing_alpha=linear 0.9 -> 0.3)`: an
    8-step rollout whose inputs are pulled towards the truth, `alpha` annealed;
- `amse`: `Supervised(1, time_level_loss=AMSELoss())` (decorrelation plus spectral
    amplitude error);
- `spectral`: `Composite([Supervised(1), Supervised(1, SpectralAmplitudeLoss())], [1, 1])`;
- `pf-symmetry`: `SymmetryAugmentation(pushforward)`: random periodic shifts of every
    window around the pushforward configuration;
- `refiner`: PDE-Refiner, `PDERefiner(K, min_noise_std)` (`--refiner-steps K`, 3 by
    default; `--refiner-min-noise`, 1e-3) on a `tx.flow.PDERefinerStepper` whose
    network is the same ConvNet on the inputs `[u_noisy, u, k/K]` (`RefinerConvNet`:
    the residual form `u + net` at the prediction step `k = 0`, the noise `net` alone
    at the refinement steps); it rolls out with `K + 1` network evaluations per step
    and a key (fixed per seed);
- `thermalized`: the `one-step` emulator (the same training, reused when `one-step`
    runs too) plus a `tx.flow.Thermalizer` per seed (a DDPM of single training states
    with `--thermalizer-levels K` levels, conv denoiser and noise-level classifier of
    width 32, `ThermalizerDiffusion()`, `--thermalizer-updates` updates, batch 64),
    rolled out as `tx.flow.ThermalizedStepper(emulator, thermalizer,
    threshold=--threshold, every=--every)`; `--threshold auto` takes the largest over
    the seeds of the 99th percentile of the levels the classifier gives the training
    states; `pf-thermalized`: the same around the `pushforward` emulator.

Each trained stepper rolls out the 16 test trajectories (unseen initial states) for
`--rollout-steps` steps (>= 1000). Reported per method (mean ± standard deviation
over the seeds):

- `nRMSE@1`, `nRMSE@10`: `tx.metrics.nrmse` after 1 and 10 steps;
- `HCT`: `tx.metrics.high_correlation_time` of the batch-mean Pearson correlation
    (threshold 0.8), in steps;
- `dist`: `tx.metrics.long_run_distribution_distance` of the states after a burn-in
    of 200 steps against the reference's (over the rollouts that stayed bounded);
- `spec`: `tx.metrics.long_run_spectrum_error`, same states;
- `blow-up`: `tx.metrics.blow_up_fraction` (non-finite or beyond 10x the reference);
- `train s`: wall time of the training of all 3 seeds (one compiled program, on the
    shared 2-core CPU, compile included; emulator plus thermalizer for the thermalized
    rows, the thermalizer's share listed under the table);
- under the table, for the thermalized rows: the mean number of interventions per
    test trajectory and the rollout's wall time against the emulator's alone.

Target of issue 12, checked and printed per system (`check_targets`): a method improves
a long-run statistic (`dist`, `spec` or `blow-up`) over `one-step` by at least 30 %
and by more than the sum of the two seed standard deviations (PASS/FAIL line under
each table).

`--methods one-step,noise --seeds 2 --systems ks` runs a subset (for sweeps, with
`--output` elsewhere).

Run: `python benchmarks/bench_stability.py` (about an hour on 2 heavily shared CPU cores;
`--quick` for a smoke test). Writes `benchmarks/results/stability.md`, the summary as
`stability.json` beside it, and with `--plot PNG` a figure of the long-run metrics
(`--plot PNG --from-json JSON` redraws it from a saved summary). Needs the `pde` extra
(exponax) and matplotlib for the figure.
"""

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import exponax
import jax
import jax.numpy as jnp
import numpy as np
import optax

import trainax_fm as tx
from trainax_fm import flow
from trainax_fm._stepper._protocol import needs_key
from trainax_fm.configuration import (
    Composite,
    InputNoise,
    GeneralizedTeacherForcing,
    InvariantMeasureMMD,
    PDERefiner,
    Pushforward,
    RolloutCurriculum,
    Supervised,
    SymmetryAugmentation,
)

BURN_IN = 200
TARGET_IMPROVEMENT = 0.3
LONG_RUN_COLUMNS = ("dist", "spec", "blow-up")
# Thermalized rows: `method -> the method whose emulator the thermalizer wraps`.
THERMALIZED = {"thermalized": "one-step", "pf-thermalized": "pushforward"}
THRESHOLD_QUANTILE = 0.99


class ResidualConvNet(eqx.Module):
    """`u -> u + net(u)` with periodic 1D convolutions."""

    layers: tuple

    def __init__(self, key, width=24, depth=4, kernel_size=5, in_channels=1):
        keys = jax.random.split(key, depth)
        channels = [in_channels] + [width] * (depth - 1) + [1]
        self.layers = tuple(
            eqx.nn.Conv1d(
                channels[i], channels[i + 1], kernel_size, padding=kernel_size // 2,
                padding_mode="CIRCULAR", key=keys[i],
            )
            for i in range(depth)
        )

    def __call__(self, u):
        h = u
        for layer in self.layers[:-1]:
            h = jax.nn.gelu(layer(h))
        return u + self.layers[-1](h)


class RefinerConvNet(eqx.Module):
    """The layers of `ResidualConvNet` on PDE-Refiner's inputs `[u_noisy, u, k/K]`: at
    the prediction step (`k = 0`) the residual form `u + net(x)` of the other methods,
    at the refinement steps the predicted noise `net(x)` alone."""

    layers: tuple

    def __init__(self, key, width=24, depth=4, kernel_size=5):
        self.layers = ResidualConvNet(key, width, depth, kernel_size, in_channels=3).layers

    def __call__(self, x):
        u, level = x[1:2], x[2:3]
        h = x
        for layer in self.layers[:-1]:
            h = jax.nn.gelu(layer(h))
        return self.layers[-1](h) + jnp.where(level == 0, u, jnp.zeros_like(u))


def refiner_stepper(num_refinement_steps, min_noise_std):
    """The stepper factory `key -> PDERefinerStepper` of the `refiner` method."""

    def make(key):
        return flow.PDERefinerStepper(
            flow.ConditionalVelocity(RefinerConvNet(key)), num_refinement_steps, min_noise_std
        )

    return make


class ConvStack(eqx.Module):
    """Periodic 1D convolutions `in_channels -> out_channels` (GELU), the thermalizer's
    denoiser and noise-level classifier."""

    layers: tuple

    def __init__(self, in_channels, out_channels, key, width=32, depth=4, kernel_size=5):
        keys = jax.random.split(key, depth)
        sizes = [in_channels] + [width] * (depth - 1) + [out_channels]
        self.layers = tuple(
            eqx.nn.Conv1d(
                a, b, kernel_size, padding=kernel_size // 2, padding_mode="CIRCULAR", key=k
            )
            for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)


def make_thermalizer(num_levels):
    def make(key):
        # The classifier returns K channels, averaged over space into K logits.
        classifier = ConvStack(1, num_levels, jax.random.fold_in(key, 1))
        return tx.flow.Thermalizer(ConvStack(2, 1, key), classifier, num_noise_steps=num_levels)

    return make


def train_thermalizers(train, args, key):
    """One thermalizer per seed on the training states; `(thermalizers, seconds, threshold)`."""
    trainer = tx.trainer.ConfigurationTrainer(
        train,
        tx.configuration.ThermalizerDiffusion(),
        optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, args.thermalizer_updates)),
        num_training_steps=args.thermalizer_updates,
        batch_size=64,
    )
    start = time.perf_counter()
    result = trainer.train_seeds(
        make_thermalizer(args.thermalizer_levels), key, args.seeds, spawn_tqdm=False
    )
    jax.block_until_ready(result.loss_history)
    seconds = time.perf_counter() - start
    if args.threshold != "auto":
        return result.stepper, seconds, int(args.threshold)
    # The paper's choice: data states sit at the classifier's lowest levels; states
    # estimated above (almost) all of them are taken to have drifted.
    states = train.reshape(-1, *train.shape[2:])
    states = states[:: max(1, states.shape[0] // 2048)]
    levels = eqx.filter_jit(
        lambda t: jax.vmap(jax.vmap(lambda m, x: m.estimate_noise_level(x), (None, 0)),
                           (0, None))(t, states)
    )(result.stepper)
    threshold = int(np.max(np.quantile(np.asarray(levels), THRESHOLD_QUANTILE, axis=1)))
    return result.stepper, seconds, min(threshold, args.thermalizer_levels - 1)


def ks_trajectories(key, num_trajectories, num_steps):
    ks = exponax.stepper.KuramotoSivashinsky(1, 64.0, 64, 0.5)
    ic = exponax.ic.RandomTruncatedFourierSeries(1, cutoff=5, max_one=True)
    u = exponax.build_ic_set(ic, num_points=64, num_samples=num_trajectories, key=key)
    step = jax.jit(jax.vmap(ks))

    @jax.jit
    def run(u0):
        warm = jax.lax.fori_loop(0, 200, lambda i, v: step(v), u0)
        _, states = jax.lax.scan(lambda v, _: (step(v), v), warm, None, length=num_steps)
        return jnp.swapaxes(states, 0, 1)

    return run(u)


def lorenz96_trajectories(key, num_trajectories, num_steps):
    return tx.sample_data.lorenz96_rk4(
        num_trajectories, num_points=40, temporal_horizon=num_steps, key=key
    )


def methods(num_updates, noise, mmd_weight, pushforward_steps, refiner_steps=3,
            refiner_min_noise=1e-3):
    quarter = num_updates // 4
    schedule = f"{quarter}:1,{2 * quarter}:2,{3 * quarter}:3,{num_updates}:4"
    pushforward = Pushforward(
        1, num_pushforward_steps=pushforward_steps, random_pushforward=True
    )
    return {
        "one-step": Supervised(1),
        "unrolled": Supervised(4),
        "pushforward": pushforward,
        "noise": InputNoise(Supervised(1), noise),
        "curriculum": RolloutCurriculum(Supervised(4), schedule),
        "mmd": Composite([Supervised(1), InvariantMeasureMMD(8)], [1.0, mmd_weight]),
        "gtf": GeneralizedTeacherForcing(
            8, forcing_alpha=optax.linear_schedule(0.9, 0.3, num_updates)
        ),
        "amse": Supervised(1, time_level_loss=tx.loss.AMSELoss()),
        "spectral": Composite(
            [Supervised(1), Supervised(1, time_level_loss=tx.loss.SpectralAmplitudeLoss())],
            [1.0, 1.0],
        ),
        "pf-symmetry": SymmetryAugmentation(pushforward),
        "refiner": PDERefiner(refiner_steps, refiner_min_noise),
        # The emulators of the thermalized rows; the thermalizer is added in `run_system`.
        "thermalized": Supervised(1),
        "pf-thermalized": pushforward,
    }


def stepper_factory(configuration):
    """What a method trains: `ResidualConvNet`, or for PDE-Refiner its stepper on the
    same layers."""
    if isinstance(configuration, PDERefiner):
        return refiner_stepper(configuration.num_refinement_steps, configuration.min_noise_std)
    return ResidualConvNet


def evaluate(steppers, test, num_steps, num_seeds, wrap=None):
    """Metrics of every seed's stepper on the test trajectories `(S, T, 1, N)`.

    `wrap(seed, stepper)`, if given, turns seed `seed`'s stepper into the one rolled
    out (a `ThermalizedStepper`: its rows also report the mean number of interventions
    per trajectory and the rollout's wall time).
    """
    ics, reference = test[:, 0], test[:, 1 : num_steps + 1]

    @eqx.filter_jit
    def rollout(stepper, key):
        if isinstance(stepper, tx.flow.ThermalizedStepper):
            report = stepper.rollout(ics, num_steps, batched=True)
            return report.trajectory, report.num_interventions
        # PDE-Refiner draws refinement noise: a fixed key per seed.
        key = key if needs_key(stepper) else None
        return tx.rollout(stepper, ics, num_steps, batched=True, key=key), None

    rows = []
    for seed in range(num_seeds):
        stepper = jax.tree_util.tree_map(
            lambda x: x[seed] if eqx.is_array(x) else x, steppers
        )
        if wrap is not None:
            stepper = wrap(seed, stepper)
        start = time.perf_counter()
        prediction, interventions = jax.block_until_ready(
            rollout(stepper, jax.random.key(1000 + seed))
        )
        rollout_seconds = time.perf_counter() - start
        nrmse = tx.metrics.nrmse(prediction[:, :10], reference[:, :10], batched=True)
        correlation = tx.metrics.pearson_correlation(prediction, reference, batched=True)
        blown = np.asarray(
            jax.vmap(lambda p, r: tx.metrics.blow_up_fraction(p, r))(prediction, reference)
        )
        bounded = blown == 0
        row = {
            "nRMSE@1": float(nrmse[0]),
            "nRMSE@10": float(nrmse[9]),
            "HCT": float(tx.metrics.high_correlation_time(correlation)),
            "blow-up": float(blown.mean()),
            "dist": float("nan"),
            "spec": float("nan"),
        }
        if wrap is not None:
            row["rollout s"] = rollout_seconds
        if interventions is not None:
            row["interventions"] = float(np.mean(interventions))
        if bounded.any():
            kept, ref = prediction[bounded], reference[bounded]
            row["dist"] = float(tx.metrics.long_run_distribution_distance(
                kept, ref, burn_in=BURN_IN, batched=True))
            row["spec"] = float(tx.metrics.long_run_spectrum_error(
                kept, ref, burn_in=BURN_IN, batched=True))
        rows.append(row)
    return rows


def run_system(name, trajectories_fn, args, key):
    data_key, test_key, train_key = jax.random.split(key, 3)
    train = trajectories_fn(data_key, args.train_trajectories, args.train_steps)
    test = trajectories_fn(test_key, 16, args.rollout_steps + 1)
    mean, std = jnp.mean(train), jnp.std(train)
    train, test = (train - mean) / std, (test - mean) / std
    results = {}
    configurations = methods(args.updates, args.noise, args.mmd_weight, args.pushforward_steps,
                             args.refiner_steps, args.refiner_min_noise)
    emulators = {}
    for method in args.methods.split(","):
        if method in THERMALIZED:
            results[method] = run_thermalized(method, train, test, args, train_key, emulators)
            continue
        configuration = configurations[method]
        trainer = tx.trainer.ConfigurationTrainer(
            train,
            configuration,
            optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, args.updates)),
            num_training_steps=args.updates,
            batch_size=32,
        )
        start = time.perf_counter()
        result = trainer.train_seeds(
            stepper_factory(configuration), train_key, args.seeds, spawn_tqdm=False
        )
        jax.block_until_ready(result.loss_history)
        seconds = time.perf_counter() - start
        emulators[method] = (result.stepper, seconds)
        rows = evaluate(result.stepper, test, args.rollout_steps, args.seeds)
        results[method] = (rows, seconds)
        print(name, method, f"{seconds:.1f}s", summarise(rows), flush=True)
    return results


def run_thermalized(method, train, test, args, train_key, emulators):
    """A thermalized row: `(rows, seconds)`, seconds of the emulator plus the thermalizer."""
    base = THERMALIZED[method]
    if base not in emulators:
        # The same configuration, data and key as the `base` row: the same emulators.
        configuration = methods(
            args.updates, args.noise, args.mmd_weight, args.pushforward_steps
        )[base]
        trainer = tx.trainer.ConfigurationTrainer(
            train,
            configuration,
            optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, args.updates)),
            num_training_steps=args.updates,
            batch_size=32,
        )
        start = time.perf_counter()
        result = trainer.train_seeds(ResidualConvNet, train_key, args.seeds, spawn_tqdm=False)
        jax.block_until_ready(result.loss_history)
        emulators[base] = (result.stepper, time.perf_counter() - start)
    steppers, seconds = emulators[base]
    thermalizers, thermalizer_seconds, threshold = train_thermalizers(
        train, args, jax.random.fold_in(train_key, 1)
    )

    def wrap(seed, emulator):
        thermalizer = jax.tree_util.tree_map(
            lambda x: x[seed] if eqx.is_array(x) else x, thermalizers
        )
        return tx.flow.ThermalizedStepper(
            emulator, thermalizer, threshold=threshold, every=args.every
        )

    rows = evaluate(steppers, test, args.rollout_steps, args.seeds, wrap=wrap)
    # The emulator alone, timed the same way (after compilation), for the inference cost.
    plain = evaluate(steppers, test, args.rollout_steps, 2, wrap=lambda seed, e: e)
    for row in rows:
        row["plain rollout s"] = plain[-1]["rollout s"]
        row["thermalizer s"] = thermalizer_seconds
        row["threshold"] = float(threshold)
    print(method, f"{seconds:.1f}s + thermalizer {thermalizer_seconds:.1f}s, threshold "
          f"{threshold}", summarise(rows), flush=True)
    return rows, seconds + thermalizer_seconds


def summarise(rows):
    out = {}
    for column in rows[0]:
        values = np.array([r[column] for r in rows])
        out[column] = (np.nanmean(values), np.nanstd(values), int(np.isnan(values).sum()))
    return out


COLUMNS = ["nRMSE@1", "nRMSE@10", "HCT", "dist", "spec", "blow-up"]


def summary_table(results):
    """`{method: {column: [mean, std, seeds missing], "train s": seconds}}`."""
    table = {}
    for method, (rows, seconds) in results.items():
        entry = {c: [float(v) for v in values] for c, values in summarise(rows).items()}
        entry["train s"] = seconds
        table[method] = entry
    return table


def check_targets(table, baseline="one-step"):
    """The issue's target on one system's summary table; printable lines.

    Target: a method improves a long-run statistic over one-step training by at least
    30 % and by more than the sum of the two seed standard deviations. `dist` and
    `spec` are only compared when every seed of both methods kept bounded rollouts:
    otherwise they describe different subsets of the test trajectories.
    """
    if baseline not in table:
        return [f"target: needs the {baseline!r} method -> NOT CHECKED"]
    base = table[baseline]
    best = None
    lines = []
    for method, entry in table.items():
        if method == baseline:
            continue
        for column in LONG_RUN_COLUMNS:
            (b_mean, b_std, b_missing), (m_mean, m_std, m_missing) = base[column], entry[column]
            if b_missing or m_missing or not b_mean > 0:
                continue
            improvement = (b_mean - m_mean) / b_mean
            beyond_spread = b_mean - m_mean > b_std + m_std
            met = improvement >= TARGET_IMPROVEMENT and beyond_spread
            line = (
                f"{method} {column}: {m_mean:.3g} ± {m_std:.2g} vs {baseline} "
                f"{b_mean:.3g} ± {b_std:.2g}: {100 * improvement:+.0f}% "
                f"(difference {b_mean - m_mean:.3g} "
                f"{'>' if beyond_spread else '<='} sum of stds {b_std + m_std:.3g})"
            )
            lines.append(f"{line} -> {'PASS' if met else 'fail'}")
            if best is None or (met, improvement) > best[0]:
                best = ((met, improvement), line)
    if best is None:
        return lines + ["target: no comparable long-run statistic -> FAIL"]
    verdict = "PASS" if best[0][0] else "FAIL"
    return lines + [f"target (>= 30 % beyond the seed spread): best {best[1]} -> {verdict}"]


def plot(summaries, path):
    """Bars of the long-run metrics per method, one row of panels per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("dist", "long-run distribution distance"), ("spec", "long-run spectrum error"),
              ("blow-up", "blow-up fraction")]
    figure, axes = plt.subplots(len(summaries), 3, figsize=(13, 3.2 * len(summaries)),
                                squeeze=False)
    for row, (system, table) in enumerate(summaries.items()):
        methods = list(table)
        for column, (key, title) in enumerate(panels):
            axis = axes[row, column]
            means = [table[m][key][0] for m in methods]
            spreads = [table[m][key][1] for m in methods]
            axis.bar(methods, means, yerr=spreads, capsize=3,
                     color=["tab:gray"] + ["tab:blue"] * (len(methods) - 1))
            axis.set_title(f"{system}: {title}", fontsize=9)
            axis.tick_params(axis="x", labelrotation=35, labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def format_table(name, results):
    columns = COLUMNS
    lines = [
        f"### {name}",
        "",
        "| method | " + " | ".join(columns) + " | train s |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for method, (rows, seconds) in results.items():
        cells = []
        for column in columns:
            mean, spread, missing = summarise(rows)[column]
            digits = ".0f" if column == "HCT" else (".2f" if column == "blow-up" else ".3g")
            cell = f"{mean:{digits}} ± {spread:{digits}}"
            if missing:
                cell += f" ({missing} seed(s) all blown up)"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    notes = [thermalized_note(method, rows) for method, (rows, _) in results.items()
             if "interventions" in rows[0]]
    return "\n".join(lines + ([""] + notes if notes else []))


def thermalized_note(method, rows):
    """Threshold, interventions and inference cost of a thermalized row (one line)."""
    interventions = np.array([r["interventions"] for r in rows])
    # Seed 0's rollout includes the compilation; the others reuse it.
    rollout = float(np.median([r["rollout s"] for r in rows[1:] or rows]))
    plain = rows[0]["plain rollout s"]
    per_seed = ", ".join(f"{r['blow-up']:.2f}" for r in rows)
    return (
        f"- {method}: emulator of `{THERMALIZED[method]}` + thermalizer trained in "
        f"{rows[0]['thermalizer s']:.0f} s ({len(rows)} seeds), "
        f"threshold {rows[0]['threshold']:.0f}; "
        f"{interventions.mean():.1f} ± {interventions.std():.1f} interventions per test "
        f"trajectory (blow-up per seed: {per_seed}); "
        f"rollout of the 16 test trajectories {rollout:.2f} s vs "
        f"{plain:.2f} s for the emulator alone ({rollout / plain:.1f}x)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--rollout-steps", type=int, default=1200)
    parser.add_argument("--train-trajectories", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.03)
    parser.add_argument("--mmd-weight", type=float, default=0.1)
    parser.add_argument("--pushforward-steps", type=int, default=16)
    parser.add_argument("--refiner-steps", type=int, default=3)
    parser.add_argument("--refiner-min-noise", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--thermalizer-levels", type=int, default=100,
                        help="K, the thermalizer's noise levels")
    parser.add_argument("--thermalizer-updates", type=int, default=3000)
    parser.add_argument("--threshold", default="auto",
                        help="the ThermalizedStepper's threshold: an int level or 'auto'")
    parser.add_argument("--every", type=int, default=1,
                        help="the thermalized rollout checks the level every N steps")
    parser.add_argument("--systems", default="ks,lorenz96")
    parser.add_argument("--methods", default=",".join(methods(4, 0.1, 0.1, 1)),
                        help="comma-separated subset of the methods")
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--output", default="benchmarks/results/stability.md")
    parser.add_argument("--plot", default=None, help="write a figure to this PNG")
    parser.add_argument("--from-json", default=None, help="only redraw the figure")
    args = parser.parse_args()
    if args.from_json:
        plot(json.loads(Path(args.from_json).read_text()), args.plot)
        return
    unknown = set(args.methods.split(",")) - set(methods(4, 0.1, 0.1, 1))
    if unknown:
        parser.error(
            f"--methods: unknown {sorted(unknown)}; "
            f"choose from {list(methods(4, 0.1, 0.1, 1))}"
        )
    if args.threshold != "auto" and not args.threshold.isdigit():
        parser.error(f"--threshold: an integer level or 'auto', got {args.threshold!r}")
    if args.quick:
        args.updates, args.rollout_steps, args.train_steps = 40, 260, 30
        args.thermalizer_updates = 40
    systems = {"Kuramoto-Sivashinsky": ks_trajectories, "Lorenz-96": lorenz96_trajectories}
    chosen = {"ks": "Kuramoto-Sivashinsky", "lorenz96": "Lorenz-96"}
    tables, summaries = [], {}
    for short in args.systems.split(","):
        name = chosen[short]
        results = run_system(name, systems[name], args, jax.random.key(0))
        summaries[name] = summary_table(results)
        targets = check_targets(summaries[name])
        tables.append(format_table(name, results) + "\n\n" + "\n".join(f"- {t}" for t in targets))
    header = (
        "# bench_stability\n\n"
        f"`python benchmarks/bench_stability.py --updates {args.updates} --rollout-steps "
        f"{args.rollout_steps} --noise {args.noise} --mmd-weight {args.mmd_weight} "
        f"--pushforward-steps {args.pushforward_steps} --refiner-steps {args.refiner_steps} "
        f"--refiner-min-noise {args.refiner_min_noise} --seeds {args.seeds}"
        + (f" --thermalizer-levels {args.thermalizer_levels} --thermalizer-updates "
           f"{args.thermalizer_updates} --threshold {args.threshold} --every {args.every}"
           if set(args.methods.split(",")) & set(THERMALIZED) else "")
        + "` "
        f"(jax {jax.__version__}, {jax.default_backend()}, {args.seeds} seeds, "
        f"mean ± std over seeds; long-run metrics after a burn-in of {BURN_IN} steps).\n"
    )
    text = header + "\n" + "\n\n".join(tables) + "\n"
    if not args.quick:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        Path(args.output).with_suffix(".json").write_text(json.dumps(summaries, indent=1))
    if args.plot:
        plot(summaries, args.plot)
    print(text)


if __name__ == "__main__":
    main()
