"""Cost per update of each training methodology, as a ratio against one-step training.

Every method trains the same small residual periodic ConvNet of `bench_stability.py`
(4 convolutions of width 24) on standardised 1D Kuramoto-Sivashinsky windows (64
points), batch 32, Adam, one update per dispatch. A method that needs another stepper
around the network (a noise input for CRPS ensembles, a time input for flow-type
methods) gets one more input channel, as in `bench_flow.py`; the thermalizer trains a
denoiser and a 1000-level noise classifier of the same size on single states.

For each method: the seconds of a first `train` call of one update (compilation, unless
an earlier round left the program in JAX's caches) and steady
updates per second (a second call of `--updates` updates, which reuses the compiled
update). Rounds visit the methods in alternating order; the table reports the
medians over rounds and the ratio of each method's update time to `one-step`'s
(`cost = one-step updates/s / method updates/s`, so 2.0 means twice as expensive).

Run: `python benchmarks/bench_method_cost.py [--rounds 3] [--updates 200]
[--methods one-step,crps]`. Writes `benchmarks/results/bench_method_cost.md`.
"""

import argparse
import datetime
import statistics
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from bench_stability import ResidualConvNet, ks_trajectories

import trainax_fm as tx
from trainax_fm.configuration import (
    Composite,
    CRPSEnsemble,
    FlowMatching,
    GeneralizedTeacherForcing,
    InvariantMeasureMMD,
    InvariantMeasureSinkhorn,
    PDERefiner,
    Pushforward,
    StochasticInterpolant,
    Supervised,
    SymmetryAugmentation,
    ThermalizerDiffusion,
)

BATCH = 32


class ExtraInputResidual(eqx.Module):
    """`[u, extra] -> u + net([u, extra])`: the benchmark ConvNet with one more input
    channel (noise or flow time) and the residual on the state's channel."""

    network: ResidualConvNet

    def __init__(self, key):
        network = ResidualConvNet(key)
        first = network.layers[0]
        wider = eqx.nn.Conv1d(2, first.out_channels, first.kernel_size,
                              padding=first.padding, padding_mode="CIRCULAR",
                              key=jax.random.fold_in(key, 1))
        self.network = eqx.tree_at(lambda n: n.layers[0], network, wider)

    def __call__(self, u):
        h = u
        for layer in self.network.layers[:-1]:
            h = jax.nn.gelu(layer(h))
        return u[:1] + self.network.layers[-1](h)


class ConvStack(eqx.Module):
    """Periodic 1D convolutions `in_channels -> out_channels` (width 24, GELU), for the
    thermalizer's denoiser and its noise-level classifier."""

    layers: tuple

    def __init__(self, in_channels, out_channels, key, width=24, depth=4):
        keys = jax.random.split(key, depth)
        sizes = [in_channels] + [width] * (depth - 1) + [out_channels]
        self.layers = tuple(
            eqx.nn.Conv1d(a, b, 5, padding=2, padding_mode="CIRCULAR", key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)


def thermalizer(key):
    # The paper's K = 1000 noise levels; the classifier returns K channels (averaged
    # over space).
    classifier = ConvStack(1, 1000, jax.random.fold_in(key, 1))
    return tx.flow.Thermalizer(ConvStack(2, 1, key), classifier, num_noise_steps=1000)


def velocity(key):
    """A flow network `[x, y, s] -> v` of the same size."""
    return tx.flow.ConditionalVelocity(ConvStack(3, 1, key))


def methods():
    """`name -> (configuration, stepper factory of a key)`."""
    plain = ResidualConvNet
    return {
        "one-step": (Supervised(1), plain),
        "unrolled-4": (Supervised(4), plain),
        "pushforward-16": (
            Pushforward(1, num_pushforward_steps=16, random_pushforward=True), plain),
        "gtf-8": (GeneralizedTeacherForcing(8, forcing_alpha=0.5), plain),
        "amse": (Supervised(1, time_level_loss=tx.loss.AMSELoss()), plain),
        "spectral": (Composite(
            [Supervised(1), Supervised(1, time_level_loss=tx.loss.SpectralAmplitudeLoss())],
            [1.0, 1.0]), plain),
        "symmetry": (SymmetryAugmentation(Supervised(1)), plain),
        "crps-4": (CRPSEnsemble(1, num_members=4),
                   lambda key: tx.NoiseInputStepper(ExtraInputResidual(key), 1)),
        "mmd-8": (Composite([Supervised(1), InvariantMeasureMMD(8)], [1.0, 0.1]), plain),
        "sinkhorn-8": (
            Composite([Supervised(1), InvariantMeasureSinkhorn(8)], [1.0, 0.1]), plain),
        "thermalizer": (ThermalizerDiffusion(), thermalizer),
        "flow-matching": (FlowMatching(), velocity),
        "stochastic-interpolant": (StochasticInterpolant(), velocity),
        "refiner-3": (PDERefiner(3), lambda key: tx.flow.PDERefinerStepper(velocity(key), 3)),
    }


def measure(data, configuration, make_stepper, updates):
    # One optimizer object: equal static parts let the second call reuse the compiled
    # update (a fresh `optax.adam` would be a new closure and compile again).
    optimizer = optax.adam(1e-3)

    def seconds(num_steps):
        trainer = tx.trainer.ConfigurationTrainer(
            data, configuration, optimizer=optimizer, num_training_steps=num_steps,
            batch_size=BATCH, steps_per_dispatch=1,
        )
        start = time.perf_counter()
        jax.block_until_ready(trainer.train(stepper, key, spawn_tqdm=False).stepper)
        return time.perf_counter() - start

    key = jax.random.PRNGKey(0)
    stepper = make_stepper(jax.random.PRNGKey(1))
    compile_s = seconds(1)
    return compile_s, updates / seconds(updates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--methods", default=",".join(methods()))
    parser.add_argument("--output", default="benchmarks/results/bench_method_cost.md")
    args = parser.parse_args()
    table = methods()
    chosen = args.methods.split(",")
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(table)}")
    if "one-step" not in chosen:
        chosen.insert(0, "one-step")
    data = ks_trajectories(jax.random.PRNGKey(0), 32, 40)
    data = (data - jnp.mean(data)) / jnp.std(data)
    results = {name: [] for name in chosen}
    for round_index in range(args.rounds):
        order = chosen if round_index % 2 == 0 else chosen[::-1]
        for name in order:
            configuration, make_stepper = table[name]
            results[name].append(measure(data, configuration, make_stepper, args.updates))
            print(round_index, name, results[name][-1], flush=True)
    base = statistics.median(speed for _, speed in results["one-step"])
    lines = [
        "# bench_method_cost: cost per update against one-step training",
        "",
        f"`python benchmarks/bench_method_cost.py --rounds {args.rounds} --updates "
        f"{args.updates}` ({datetime.date.today()}, jax {jax.__version__}, "
        f"{jax.devices()[0].device_kind}; medians over {args.rounds} rounds; residual "
        f"ConvNet, 1D KS 64 points, batch {BATCH}).",
        "",
        "| method | first call s | updates/s | cost vs one-step |",
        "|---|---|---|---|",
    ]
    for name in chosen:
        compile_s = statistics.median(c for c, _ in results[name])
        speed = statistics.median(s for _, s in results[name])
        lines.append(f"| {name} | {compile_s:.1f} | {speed:.1f} | {base / speed:.2f}x |")
    text = "\n".join(lines) + "\n"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
