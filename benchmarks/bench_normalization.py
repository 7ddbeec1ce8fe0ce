"""What a `NormalizedStepper` costs per update, against the bare network.

Two workloads, each trained with the bare network and with
`NormalizedStepper(network, Normalizer.fit(data), residual=...)` on the same data:

- `quickstart`: the 2-parameter periodic convolution of the quickstart (advection,
  30 points, 1-step supervised, batch 20): updates run in loops of many per dispatch,
  so this shows the normalisation's arithmetic on the lightest update.
- `convnet`: a 5-layer 1D ConvNet (width 16) with 5-step supervised rollouts, batch 20,
  one update per dispatch.

Per variant: the median over `--repeats` interleaved timings of a warm call of N
updates (compiled once before). Run: `python benchmarks/bench_normalization.py`
(about a minute on 2 CPU cores); `--quick` for a smoke run.
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import optax

import trainax_fm as tx


class ConvNet(eqx.Module):
    layers: tuple

    def __init__(self, width: int, depth: int, key):
        keys = jax.random.split(key, depth)
        sizes = [1] + [width] * (depth - 1) + [1]
        self.layers = tuple(
            eqx.nn.Conv1d(a, b, 3, padding=1, padding_mode="CIRCULAR", key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def workloads(quick: bool):
    data = tx.sample_data.advection_1d_periodic(num_samples=20, key=jax.random.key(0))
    data = data * 3.0 + 1.0  # physical units away from N(0, 1)
    quickstart = eqx.nn.Conv1d(1, 1, 3, padding=1, padding_mode="CIRCULAR", use_bias=False,
                               key=jax.random.key(1))
    steps = 200 if quick else 5_000
    yield "quickstart", data, quickstart, dict(num_rollout_steps=1), steps
    convnet = ConvNet(16, 5, jax.random.key(2))
    yield "convnet", data, convnet, dict(num_rollout_steps=5, steps_per_dispatch=1), (
        20 if quick else 200
    )


def timed(trainer, stepper) -> float:
    begin = time.perf_counter()
    result = trainer.train(stepper, jax.random.key(3), spawn_tqdm=False)
    jax.block_until_ready(result.loss_history)
    return time.perf_counter() - begin


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(
        "| workload | updates | bare steps/s | normalised steps/s | time ratio "
        "| residual steps/s | time ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, data, network, keywords, steps in workloads(args.quick):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=steps, batch_size=20,
            **keywords,
        )
        normalizer = tx.Normalizer.fit(data, increments=True)
        variants = {
            "bare": network,
            "normalised": tx.NormalizedStepper(network, normalizer),
            "residual": tx.NormalizedStepper(network, normalizer, residual=True),
        }
        times = {v: [] for v in variants}
        for stepper in variants.values():
            timed(trainer, stepper)  # compile
        for _ in range(args.repeats):
            for variant, stepper in variants.items():
                times[variant].append(timed(trainer, stepper))
        rate = {v: steps / statistics.median(t) for v, t in times.items()}
        print(
            f"| {name} | {steps} | {rate['bare']:,.0f} | {rate['normalised']:,.0f} | "
            f"{rate['bare'] / rate['normalised']:.2f} | {rate['residual']:,.0f} | "
            f"{rate['bare'] / rate['residual']:.2f} |"
        )


if __name__ == "__main__":
    main()
