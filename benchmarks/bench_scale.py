"""Scale-out benchmarks: remat on long rollouts, seeds in parallel, several devices.

1. **Remat**: a 50-step autoregressive supervised rollout of a 10-layer 1D ConvNet (26
   channels, relu, 160 points, batch 4). Peak memory is XLA's own accounting of the
   compiled loss-and-gradient (`memory_analysis().temp_size_in_bytes`, the buffers live
   at the peak besides inputs/outputs), time is the median of repeated gradient
   evaluations. Variants: scanned rollout without remat (the default at this
   length), with remat every step and every 5 steps, and a Python-unrolled loop.
2. **Seeds**: 8 seeds trained in one call (`trainer.train_seeds`) against 8 sequential
   `trainer.train` calls on the same trainer, total wall time of each, once in a fresh
   process (compilation included, as a user first experiences it) and once warm (after
   compilation), on the quickstart convolution, a small ConvNet and a Lorenz-63 MLP,
   with their usual batch sizes and with small batches (overhead-bound updates).
3. **Devices**: the same training on 1 device and on 4 virtual CPU devices
   (`XLA_FLAGS=--xla_force_host_platform_device_count=4`, batch split over a mesh);
   the final weights must agree. On one physical CPU the virtual devices share the cores,
   so this checks the code path, not a speed-up.

Run: `python benchmarks/bench_scale.py` (a few minutes on 2 CPU cores; `--quick` for a
smoke run).
"""

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time


def convnet(channels=1, width=26, depth=10, key=None):
    import equinox as eqx
    import jax

    keys = jax.random.split(key, depth)
    sizes = [channels] + [width] * (depth - 1) + [channels]
    layers = []
    for i in range(depth):
        layers.append(
            eqx.nn.Conv1d(
                sizes[i], sizes[i + 1], 3, padding=1, padding_mode="CIRCULAR", key=keys[i]
            )
        )
        if i < depth - 1:
            layers.append(eqx.nn.Lambda(jax.nn.relu))
    return eqx.nn.Sequential(layers)


def bench_remat(num_steps, repeats):
    import equinox as eqx
    import jax

    import trainax_fm as tx

    data = jax.random.normal(jax.random.PRNGKey(0), (4, num_steps + 1, 1, 160))
    net = convnet(key=jax.random.PRNGKey(1))
    rows = []
    variants = [("scan", False), ("scan", True), ("scan", 5), ("unrolled loop", False)]
    for loop, remat in variants:
        config = tx.configuration.Supervised(
            num_steps, unroll=loop == "unrolled loop", remat=remat
        )
        params, static = eqx.partition(net, eqx.is_array)
        grad_fn = jax.jit(
            jax.value_and_grad(lambda p, c=config: c(eqx.combine(p, static), data))
        )
        memory = grad_fn.lower(params).compile().memory_analysis()
        peak = getattr(memory, "temp_size_in_bytes", float("nan"))
        jax.block_until_ready(grad_fn(params))
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            jax.block_until_ready(grad_fn(params))
            times.append(time.perf_counter() - begin)
        rows.append((loop, remat, peak, statistics.median(times)))
    base_peak, base_time = rows[0][2], rows[0][3]
    print(f"\n### Remat: {num_steps}-step supervised rollout, 10-layer ConvNet, batch 4\n")
    print("Ratios against the default for this length (scanned rollout, no remat).\n")
    print("| rollout loop | remat | peak temp MB | memory ratio | grad time s | time ratio |")
    print("|---|---|---|---|---|---|")
    for loop, remat, peak, seconds in rows:
        print(
            f"| {loop} | {remat} | {peak / 2**20:.1f} | {base_peak / peak:.1f}x lower | "
            f"{seconds:.3f} | {seconds / base_time:.2f}x |"
        )


def _seed_problem(name):
    """`(data, make_stepper, batch_size, num_rollout_steps)` of a seed benchmark case."""
    import equinox as eqx
    import jax

    import trainax_fm as tx

    if name.startswith("quickstart"):
        data = tx.sample_data.advection_1d_periodic(cfl=-0.75, key=jax.random.PRNGKey(0))
        make = lambda k: eqx.nn.Conv1d(  # noqa: E731
            1, 1, 2, padding=((0, 1),), padding_mode="CIRCULAR", use_bias=False, key=k
        )
        return data, make, 4 if name == "quickstart_b4" else 32, 2
    if name == "convnet":
        data = jax.random.normal(jax.random.PRNGKey(0), (10, 30, 1, 64))
        return data, lambda k: convnet(width=16, depth=3, key=k), 16, 2
    if name.startswith("lorenz"):
        data = tx.sample_data.lorenz_rk4(
            32, temporal_horizon=500, dt=0.02, num_warmup_steps=1000, key=jax.random.PRNGKey(0)
        )
        data = (data - data.mean(axis=(0, 1))) / data.std(axis=(0, 1))
        make = lambda k: eqx.nn.MLP(3, 3, 16, 2, activation=jax.nn.gelu, key=k)  # noqa: E731
        return data, make, 1 if name == "lorenz_b1" else 16, 1
    raise ValueError(f"unknown seed benchmark case {name!r}")


SEED_CASES = {
    "quickstart": "quickstart conv (advection, 30 pts, B=32, R=2)",
    "quickstart_b4": "quickstart conv, B=4",
    "convnet": "3-layer ConvNet (16 ch, 64 pts, B=16, R=2)",
    "lorenz": "Lorenz-63 MLP (width 16, B=16, R=1)",
    "lorenz_b1": "Lorenz-63 MLP, B=1",
}


def seeds_worker(name, modes, num_seeds, num_steps, repeats):
    """Time `modes` ("sequential"/"parallel") in one process and print JSON.

    The first call of each mode includes its compilation ("cold"); afterwards the modes
    alternate `repeats` times so that both see the same machine load ("warm").
    """
    import json

    import jax
    import optax

    import trainax_fm as tx

    data, make, batch_size, rollout = _seed_problem(name)
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=num_steps,
        batch_size=batch_size, num_rollout_steps=rollout,
    )
    init_key, run_key = jax.random.split(jax.random.PRNGKey(5))
    init_keys = jax.random.split(init_key, num_seeds)
    run_keys = jax.random.split(run_key, num_seeds)

    def run(mode):
        begin = time.perf_counter()
        if mode == "sequential":
            for i in range(num_seeds):
                result = trainer.train(make(init_keys[i]), run_keys[i], spawn_tqdm=False)
                jax.block_until_ready(result.stepper)
        else:
            result = trainer.train_seeds(make, jax.random.PRNGKey(5), num_seeds, spawn_tqdm=False)
            jax.block_until_ready(result.stepper)
        return time.perf_counter() - begin

    timings = {mode: {"cold": run(mode), "warm": []} for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            timings[mode]["warm"].append(run(mode))
    for mode in modes:
        timings[mode]["warm"] = statistics.median(timings[mode]["warm"]) if repeats else None
    print(json.dumps(timings))


def _run_seeds_worker(name, modes, num_seeds, num_steps, repeats):
    import json

    out = subprocess.run(
        [sys.executable, __file__, "--seeds-worker", name, ",".join(modes),
         str(num_seeds), str(num_steps), str(repeats)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_seeds(num_seeds, num_steps, repeats):
    print(f"\n### Seeds: {num_seeds} seeds, {num_steps} updates each\n")
    print(
        "Cold: each mode first in a fresh process, compilation included. Warm: both "
        f"modes again in one process, alternating, median of {repeats}.\n"
    )
    print(
        "| model | cold sequential s | cold one call s | cold speed-up "
        "| warm sequential s | warm one call s | warm speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, label in SEED_CASES.items():
        seq_cold = _run_seeds_worker(name, ["sequential"], num_seeds, num_steps, 0)
        par_cold = _run_seeds_worker(name, ["parallel"], num_seeds, num_steps, 0)
        warm = _run_seeds_worker(name, ["sequential", "parallel"], num_seeds, num_steps, repeats)
        seq, par = seq_cold["sequential"]["cold"], par_cold["parallel"]["cold"]
        seq_warm, par_warm = warm["sequential"]["warm"], warm["parallel"]["warm"]
        print(
            f"| {label} | {seq:.2f} | {par:.2f} | {seq / par:.2f}x | {seq_warm:.3f} | "
            f"{par_warm:.3f} | {seq_warm / par_warm:.2f}x |"
        )


DEVICES = textwrap.dedent(
    """
    import os, time
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, equinox as eqx, numpy as np, optax
    import trainax_fm as tx
    data = jax.random.normal(jax.random.PRNGKey(0), (8, 30, 1, 64))
    net = eqx.nn.Conv1d(1, 1, 5, padding=2, padding_mode="CIRCULAR", key=jax.random.PRNGKey(1))
    results = {}
    for name, mesh in [("1 device", None), ("4 devices", jax.make_mesh((4,), ("batch",)))]:
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optax.adam(1e-3), num_training_steps=STEPS, batch_size=16,
            num_rollout_steps=3, steps_per_dispatch=1, mesh=mesh,
        )
        trainer.train(net, jax.random.PRNGKey(2), num_steps=2, spawn_tqdm=False)
        begin = time.perf_counter()
        result = trainer.train(net, jax.random.PRNGKey(2), spawn_tqdm=False)
        jax.block_until_ready(result.stepper)
        results[name] = (result, time.perf_counter() - begin)
    difference = float(np.abs(
        results["1 device"][0].stepper.weight - results["4 devices"][0].stepper.weight
    ).max())
    print("| run | seconds | steps/s |")
    print("|---|---|---|")
    for name, (_, seconds) in results.items():
        print(f"| {name} | {seconds:.2f} | {STEPS / seconds:.0f} |")
    print(f"\\nmax |w_1 - w_4| after {STEPS} updates: {difference:.2e}")
    """
)


def bench_devices(num_steps):
    print("\n### Devices: data-parallel over 4 virtual CPU devices\n")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run(
        [sys.executable, "-c", DEVICES.replace("STEPS", str(num_steps))],
        capture_output=True, text=True, env=env,
    )
    print(out.stdout if out.returncode == 0 else out.stderr[-2000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="remat,seeds,devices")
    parser.add_argument("--seeds-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seeds_worker:
        name, modes, num_seeds, num_steps, repeats = args.seeds_worker
        seeds_worker(name, modes.split(","), int(num_seeds), int(num_steps), int(repeats))
        return
    only = args.only.split(",")
    if "remat" in only:
        bench_remat(10 if args.quick else 50, 2 if args.quick else 5)
    if "seeds" in only:
        bench_seeds(8, 20 if args.quick else 2000, 1 if args.quick else 7)
    if "devices" in only:
        bench_devices(10 if args.quick else 200)


if __name__ == "__main__":
    main()
