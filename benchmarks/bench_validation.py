"""The cost of validating during training: every 200 updates against no validation.

Two workloads of `bench_engine.py`: the quickstart (a 2-weight convolution on 1D
advection, one-step training, light updates many per dispatch) and the 10-layer 1D
ConvNet (heavy updates, one per dispatch). Each trains with and without
`validation_data=` (held-out trajectories; metrics "loss", "nrmse@1" and "nrmse@10",
`validate_every=200`). Per round and variant: a first `train` call (cold: compiles the
update and, with validation, the validation program) and a second identical call
(warm: what every later run with these shapes costs). Rounds alternate the order of
the variants; the table reports medians over rounds and the ratio with/without.

Run (a few minutes on 2 CPU cores):

    python benchmarks/bench_validation.py [--rounds 3]

The table is written to `benchmarks/results/bench_validation.md`.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_engine  # noqa: E402
import jax  # noqa: E402
import optax  # noqa: E402

import trainax_fm as tx  # noqa: E402

WORKLOADS = {
    # name: (bench_engine kind, updates, batch size, held-out trajectories)
    "quickstart": ("quickstart", 4000, 32, 10),
    "convnet1d": ("convnet1d", 400, 20, 4),
}
VALIDATE_EVERY = 200
METRICS = ("loss", "nrmse@1", "nrmse@10")
# One optimizer object for every run: compiled updates are shared by runs whose static
# parts (optimizer included) are equal, which is what makes the second call "warm".
OPTIMIZER = optax.adam(1e-3)


def timed_run(kind, updates, batch, held_out, validate):
    data, net = bench_engine.build(kind)
    train, validation = data[:-held_out], data[-held_out:]
    options = (
        dict(validation_data=validation, validate_every=VALIDATE_EVERY,
             validation_metrics=METRICS)
        if validate else {}
    )
    trainer = tx.trainer.SupervisedTrainer(
        train, optimizer=OPTIMIZER, num_training_steps=updates, batch_size=batch,
        **options,
    )
    begin = time.perf_counter()
    result = trainer.train(net, jax.random.PRNGKey(2), spawn_tqdm=False)
    jax.block_until_ready(result.stepper)
    return time.perf_counter() - begin


def measure(rounds):
    rows = {}
    for name, (kind, updates, batch, held_out) in WORKLOADS.items():
        times = {(v, phase): [] for v in (False, True) for phase in ("cold", "warm")}
        for round_index in range(rounds):
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for validate in order:
                tx.clear_caches()
                jax.clear_caches()
                times[(validate, "cold")].append(
                    timed_run(kind, updates, batch, held_out, validate))
                times[(validate, "warm")].append(
                    timed_run(kind, updates, batch, held_out, validate))
        rows[name] = {key: statistics.median(values) for key, values in times.items()}
        rows[name]["updates"] = updates
        print(name, rows[name], flush=True)
    return rows


def table(rows, rounds):
    lines = [
        f"# Validation overhead ({datetime.date.today()}, jax {jax.__version__}, "
        f"{jax.default_backend()}, {os.cpu_count()} CPU cores, median of {rounds} rounds)",
        "",
        f"Validation every {VALIDATE_EVERY} updates with metrics {', '.join(METRICS)}; "
        "seconds for one whole `train` call.",
        "",
        "| workload | updates | cold without | cold with | cold ratio | warm without | "
        "warm with | warm ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        cold = (row[(False, "cold")], row[(True, "cold")])
        warm = (row[(False, "warm")], row[(True, "warm")])
        lines.append(
            f"| {name} | {row['updates']} | {cold[0]:.2f} | {cold[1]:.2f} | "
            f"{cold[1] / cold[0]:.2f} | {warm[0]:.2f} | {warm[1]:.2f} | "
            f"{warm[1] / warm[0]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "bench_validation.md"))
    args = parser.parse_args()
    text = table(measure(args.rounds), args.rounds)
    print(text)
    with open(args.out, "w") as stream:
        stream.write(text)


if __name__ == "__main__":
    main()
