"""Sharded against replicated parameters on 4 virtual CPU devices.

One 1D ConvNet (pdequinox `ConvNet`, 64 hidden channels, depth 6, 128 points) is
trained with `SupervisedTrainer` (rollout 2, Adam, 16 windows a batch) on a mesh of 4
devices, with replicated parameters (`parameter_axis=None`) and with parameters and
optimizer state sharded over the batch axis (`parameter_axis="batch"`). Reported, as
medians over rounds that alternate the order: steady updates per second (after
compilation, one update per dispatch), compile seconds, and the bytes of parameters and
optimizer state on one device as a fraction of the whole (from the arrays' shardings).

Virtual CPU devices share the same cores and memory, so the speed column shows the cost
of the extra gathers, not what real devices would gain; the memory column carries over.

Run: `python benchmarks/bench_sharding.py [--rounds 3] [--updates 20]`. The table is
written to `benchmarks/results/bench_sharding.md`.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("replicated", "sharded")


def worker(mode, updates):
    import equinox as eqx
    import jax
    import optax
    import pdequinox as pdeqx

    import trainax_fm as tx

    assert jax.device_count() == 4
    key = jax.random.PRNGKey(0)
    data = jax.random.normal(key, (16, 8, 1, 128))
    network = pdeqx.arch.ConvNet(1, 1, 1, hidden_channels=64, depth=6, key=key)
    mesh = jax.make_mesh((4,), ("batch",))
    axis = "batch" if mode == "sharded" else None

    def train(num_steps):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=num_steps, batch_size=16,
            num_rollout_steps=2, mesh=mesh, parameter_axis=axis, steps_per_dispatch=1,
        )
        run = trainer.train(network, key, spawn_tqdm=False)
        jax.block_until_ready(run.stepper)
        return run

    start = time.perf_counter()
    train(1)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    run = train(updates)
    steady = updates / (time.perf_counter() - start)
    state = jax.tree_util.tree_leaves(eqx.filter((run.stepper, run.opt_state), eqx.is_array))
    first = jax.devices()[0]
    on_first = sum(
        shard.data.nbytes for x in state for shard in x.addressable_shards
        if shard.device == first
    )
    print(json.dumps({
        "updates_per_s": steady, "compile_s": compile_s,
        "state_fraction_per_device": on_first / sum(x.nbytes for x in state),
        "state_mb": sum(x.nbytes for x in state) / 2**20,
    }))


def measure(mode, updates):
    env = dict(os.environ, PYTHONPATH=REPO,
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", mode, "--updates",
         str(updates)], capture_output=True, text=True, cwd=REPO, env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--worker", choices=MODES)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.updates)
        return
    results = {mode: [] for mode in MODES}
    for round_index in range(args.rounds):
        for mode in MODES if round_index % 2 == 0 else MODES[::-1]:
            results[mode].append(measure(mode, args.updates))
            print(mode, results[mode][-1], flush=True)
    metrics = [("updates_per_s", "updates/s", "{:.2f}"), ("compile_s", "compile s", "{:.2f}"),
               ("state_fraction_per_device", "state on one device (fraction)", "{:.3f}"),
               ("state_mb", "parameters + optimizer state MB", "{:.2f}")]
    lines = [
        f"# bench_sharding ({datetime.date.today()}, 4 virtual CPU devices, "
        f"{args.rounds} rounds, {args.updates} updates, medians)",
        "",
        "| metric | replicated | sharded | sharded / replicated |",
        "| --- | --- | --- | --- |",
    ]
    for name, label, fmt in metrics:
        values = [statistics.median(r[name] for r in results[mode]) for mode in MODES]
        lines.append(
            f"| {label} | {fmt.format(values[0])} | {fmt.format(values[1])} | "
            f"{values[1] / values[0]:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benchmarks", "results", "bench_sharding.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
