"""Mixed precision: updates per second and memory of float32 against bfloat16 training.

Two workloads, trained with `SupervisedTrainer` (rollout 2, Adam) on random fields:

- `convnet1d`: pdequinox's `ConvNet` (1D, 32 hidden channels, depth 8) on 128 points,
  16 windows a batch.
- `unet2d`: pdequinox's `ClassicUNet` (2D, 16 hidden channels, 3 levels, group norm
  kept in float32 by the policy's default) on a 32 x 32 grid, 4 windows a batch.

Each (workload, precision) runs in a fresh subprocess: compile seconds (the first
`train` call of one update), steady updates per second (a second call of `--updates`
updates, one update per dispatch, after compilation), the compiled update's memory
(XLA's `memory_analysis`: arguments + outputs + temporaries, the device memory one update
needs) and the process's peak RSS. Rounds alternate the order of the precisions; the
table reports medians over rounds and the ratio bfloat16 / float32.

On CPUs bfloat16 matmuls and convolutions are emulated or slow; the speed-up is a GPU
and TPU matter (report the device with the figures).

Run: `python benchmarks/bench_precision.py [--rounds 3] [--updates 20]` (sizes for a
CPU; scale them up on a GPU).
The table is written to `benchmarks/results/bench_precision.md`.
"""

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ("convnet1d", "unet2d")
PRECISIONS = ("float32", "bfloat16")


def build(workload):
    import jax
    import pdequinox as pdeqx

    key = jax.random.PRNGKey(0)
    if workload == "convnet1d":
        data = jax.random.normal(key, (16, 12, 1, 128))
        net = pdeqx.arch.ConvNet(1, 1, 1, hidden_channels=32, depth=8, key=key)
        return data, net, 16
    if workload == "unet2d":
        data = jax.random.normal(key, (8, 8, 1, 32, 32))
        net = pdeqx.arch.ClassicUNet(2, 1, 1, hidden_channels=16, num_levels=3, key=key)
        return data, net, 4
    raise ValueError(workload)


def worker(workload, precision, updates):
    import equinox as eqx
    import jax
    import optax

    import trainax_fm as tx

    data, net, batch = build(workload)
    policy = None if precision == "float32" else tx.MixedPrecision(precision)

    def trainer(num_steps):
        return tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=num_steps,
            batch_size=batch, num_rollout_steps=2, steps_per_dispatch=1, precision=policy,
        )

    key = jax.random.PRNGKey(1)
    start = time.perf_counter()
    run = trainer(1).train(net, key, spawn_tqdm=False)
    jax.block_until_ready(run.stepper)
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    run = trainer(updates).train(net, key, spawn_tqdm=False)
    jax.block_until_ready(run.stepper)
    steady = updates / (time.perf_counter() - start)

    problem = trainer(1).make_problem()
    opt_state = problem.optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    batch_windows = trainer(1).trajectory_sub_stacker(jax.numpy.arange(batch))
    params, static = eqx.partition(net, eqx.is_array)

    def update(params, opt_state, windows, key):
        stepper, opt_state, loss = problem.update(
            eqx.combine(params, static), opt_state, windows, key, 0
        )
        return eqx.filter(stepper, eqx.is_array), opt_state, loss

    compiled = jax.jit(update).lower(params, opt_state, batch_windows, key).compile()
    analysis = compiled.memory_analysis()
    update_mb = None
    if analysis is not None:
        update_mb = (
            analysis.argument_size_in_bytes + analysis.output_size_in_bytes
            + analysis.temp_size_in_bytes
        ) / 2**20
    print(json.dumps({
        "compile_s": compile_s,
        "updates_per_s": steady,
        "update_memory_mb": update_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(jax.devices()[0].device_kind),
    }))


def measure(workload, precision, updates):
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", workload, precision,
         "--updates", str(updates)],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "PRECISION"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.updates)
        return
    results = {(w, p): [] for w in WORKLOADS for p in PRECISIONS}
    device = "?"
    for round_index in range(args.rounds):
        order = PRECISIONS if round_index % 2 == 0 else PRECISIONS[::-1]
        for workload in WORKLOADS:
            for precision in order:
                measured = measure(workload, precision, args.updates)
                device = measured.pop("device")
                results[workload, precision].append(measured)
                print(workload, precision, measured, flush=True)

    def median(workload, precision, name):
        values = [r[name] for r in results[workload, precision] if r[name] is not None]
        return statistics.median(values) if values else float("nan")

    metrics = [("updates_per_s", "updates/s", "{:.2f}"), ("compile_s", "compile s", "{:.2f}"),
               ("update_memory_mb", "update memory MB", "{:.1f}"),
               ("peak_rss_mb", "peak RSS MB", "{:.0f}")]
    lines = [
        f"# bench_precision ({datetime.date.today()}, device: {device}, "
        f"{args.rounds} rounds, {args.updates} updates, medians)",
        "",
        "| workload | metric | float32 | bfloat16 | bfloat16 / float32 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for workload in WORKLOADS:
        for name, label, fmt in metrics:
            f32, bf16 = median(workload, "float32", name), median(workload, "bfloat16", name)
            lines.append(
                f"| {workload} | {label} | {fmt.format(f32)} | {fmt.format(bf16)} | "
                f"{bf16 / f32:.2f} |"
            )
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benchmarks", "results", "bench_precision.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
