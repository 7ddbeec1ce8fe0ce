"""Cost per update of PDE-Refiner against one-step supervised training, same network.

`SupervisedTrainer(num_rollout_steps=1)` trains `ResidualConvNet` of
`bench_stability.py` (4 periodic convolutions of width 24, kernel 5) and
`PDERefinerTrainer` (K = 1 and 3) the same layers with three input channels
(`RefinerConvNet`: `[u_noisy, u, k/K]`), on random data `(32, 50, 1, 64)`, batch 32.
Each trainer runs once to compile, then `--repeats` times (interleaved) for `--updates`
updates; the median wall time per update is printed with its ratio to one-step training.

Run from the repository root: `python benchmarks/bench_refiner_cost.py` (about a minute
on 2 CPU cores). Needs the `pde` extra (exponax, for `bench_stability.py`).
"""

import argparse
import importlib.util
import pathlib
import statistics
import time

import jax
import optax

import trainax_fm as tx

_HERE = pathlib.Path(__file__).resolve().parent
_SPEC = importlib.util.spec_from_file_location("bench_stability", _HERE / "bench_stability.py")
bench_stability = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_stability)


def seconds_per_update(runs, num_updates, repeats):
    """Median seconds per update of every `name -> (trainer, stepper)`, the repeats
    interleaved so that a change in the machine's load hits every trainer alike."""
    for trainer, stepper in runs.values():
        trainer.train(stepper, jax.random.key(1), spawn_tqdm=False)  # compile
    times = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, (trainer, stepper) in runs.items():
            start = time.perf_counter()
            result = trainer.train(stepper, jax.random.key(2 + repeat), spawn_tqdm=False)
            jax.block_until_ready(result.loss_history)
            times[name].append((time.perf_counter() - start) / num_updates)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    data = jax.random.normal(jax.random.key(0), (32, 50, 1, 64))
    common = dict(optimizer=optax.adam(1e-3), num_training_steps=args.updates, batch_size=32)
    runs = {"Supervised(1)": (
        tx.trainer.SupervisedTrainer(data, num_rollout_steps=1, **common),
        bench_stability.ResidualConvNet(jax.random.key(0)))}
    for steps in (1, 3):
        runs[f"PDERefiner(K={steps})"] = (
            tx.trainer.PDERefinerTrainer(
                data, num_refinement_steps=steps, min_noise_std=1e-3, **common),
            bench_stability.refiner_stepper(steps, 1e-3)(jax.random.key(0)))
    seconds = seconds_per_update(runs, args.updates, args.repeats)
    baseline = seconds["Supervised(1)"]
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; {args.updates} updates x "
          f"{args.repeats} repeats (interleaved), median")
    for name, value in seconds.items():
        print(f"{name:18s} {1e6 * value:9.1f} us/update  ratio {value / baseline:.2f}")


if __name__ == "__main__":
    main()
