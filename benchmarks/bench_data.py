"""Training from data on disk: memory, speed, and the same weights as in memory.

Three measurements, each in its own subprocess (so that peak RSS is per measurement):

1. **Large file**: a `.npy` file of several GB (`--gigabytes`, default 4) of 1D
   trajectories `(S, 120, 1, 160)` is written to a temporary folder (in a separate
   process), then the ConvNet workload trains from it through
   `tx.data.DiskTrajectories` and reports the process' peak RSS (`ru_maxrss`), the
   time of a call (which starts by drawing the permutation table of all 6.2M windows,
   as in memory) and the steady updates per second. The file is deleted afterwards.
2. **Speed**: the ConvNet workload of `bench_engine.py` (10 circular convolutions,
   26 channels, 160 points, batch 20; rollouts 1 and 5) on a data set of
   `(200, 100, 1, 160)` (12.8 MB), from memory and from disk (`.npy` memory map,
   HDF5), one update per dispatch in every mode (what `"auto"` picks for this model on
   a CPU). Per mode: a first call (compiles), then the median of `--repeats` timed
   calls of `--steps` updates, the modes taking turns in each repeat.
3. **Same weights**: 100 updates of a small convolution from memory and from disk
   (npy, HDF5, zarr); the weights must be bit-identical.

The large file is served from the page cache once written (it fits this machine's
memory); what is measured is that the process does not load it, not the disk speed.

Run: `python benchmarks/bench_data.py` (a few minutes on 2 CPU cores); `--quick` for
a smoke run (0.5 GB file, fewer updates). Writes `benchmarks/results/bench_data.md`
unless `--no-write`.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

STATE = (1, 160)  # channels, points of the ConvNet workload
BYTES_PER_TRAJECTORY = 120 * 160 * 4


def convnet(key):
    import equinox as eqx
    import jax

    keys = jax.random.split(key, 10)
    sizes = [1] + [26] * 9 + [1]
    layers = []
    for i in range(10):
        layers.append(
            eqx.nn.Conv1d(
                sizes[i], sizes[i + 1], 3, padding=1, padding_mode="CIRCULAR", key=keys[i]
            )
        )
        if i < 9:
            layers.append(eqx.nn.Lambda(jax.nn.relu))
    return eqx.nn.Sequential(layers)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_large_file(path: str, gigabytes: float) -> dict:
    """Fill a `.npy` file chunk by chunk (never the whole array in memory)."""
    import numpy as np

    num_trajectories = int(gigabytes * 1e9 // BYTES_PER_TRAJECTORY)
    shape = (num_trajectories, 120) + STATE
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(0)
    chunk = 500
    begin = time.perf_counter()
    for first in range(0, num_trajectories, chunk):
        stop = min(first + chunk, num_trajectories)
        array[first:stop] = rng.standard_normal((stop - first,) + shape[1:], dtype=np.float32)
        array.flush()
    del array
    return {"shape": list(shape), "gigabytes": os.path.getsize(path) / 1e9,
            "write_s": time.perf_counter() - begin}


def make_trainer(data, rollout, steps, batch=20):
    import jax
    import optax

    import trainax_fm as tx

    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=steps, batch_size=batch,
        num_rollout_steps=rollout, steps_per_dispatch=1,
    )
    net = convnet(jax.random.PRNGKey(1))

    def run(seed):
        begin = time.perf_counter()
        jax.block_until_ready(
            trainer.train(net, jax.random.PRNGKey(seed), spawn_tqdm=False).stepper
        )
        return time.perf_counter() - begin

    return run


def time_modes(runs: dict, steps: int, repeats: int) -> dict:
    """Per mode: the first call (compiles), then updates/s from the median of
    `repeats` calls; the modes take turns within each repeat, so that the noise of a
    shared machine hits them alike."""
    first = {name: run(2) for name, run in runs.items()}
    times = {name: [] for name in runs}
    for repeat in range(repeats):
        for name, run in runs.items():
            times[name].append(run(3 + repeat))
    return {
        name: {"first_call_s": first[name], "updates_per_s": steps / statistics.median(times[name])}
        for name in runs
    }


def clock_hook():
    """A hook that notes when each update has finished (`.times`), to time the updates
    without a call's fixed costs."""
    import jax

    import trainax_fm as tx

    class Clock(tx.hook.AbstractHook):
        def __init__(self):
            self.times = []

        def after_updates(self, loop, chunk):
            jax.block_until_ready(chunk.values)
            self.times.append(time.perf_counter())

    return Clock()


def worker_large(path: str, steps: int, repeats: int) -> dict:
    """Every `train` call first draws the permutation table of two epochs of the 6.2M
    windows (as in memory: seconds of sorting), so the update rate is timed by a hook
    from the end of the first update to the end of the last."""
    import jax
    import optax

    import trainax_fm as tx

    source = tx.data.open_trajectories(f"npy:{path}")
    after_open = peak_rss_mb()
    trainer = tx.trainer.SupervisedTrainer(
        source, optimizer=optax.adam(1e-3), num_training_steps=steps, batch_size=20,
        steps_per_dispatch=1,
    )
    net = convnet(jax.random.PRNGKey(1))
    calls, rates = [], []
    for repeat in range(1 + repeats):
        clock = clock_hook()
        begin = time.perf_counter()
        trainer.train(net, jax.random.PRNGKey(2 + repeat), spawn_tqdm=False, hooks=[clock])
        calls.append(time.perf_counter() - begin)
        rates.append((len(clock.times) - 1) / (clock.times[-1] - clock.times[0]))
    return {"first_call_s": calls[0], "call_s": statistics.median(calls[1:]),
            "steady_updates_per_s": statistics.median(rates[1:]),
            "rss_after_open_mb": after_open, "peak_rss_mb": peak_rss_mb(),
            "file_shape": list(source.shape)}


def worker_speed(folder: str, steps: int, repeats: int) -> dict:
    import h5py
    import numpy as np

    import trainax_fm as tx

    data = np.random.default_rng(1).standard_normal((200, 100) + STATE, dtype=np.float32)
    np.save(os.path.join(folder, "speed.npy"), data)
    with h5py.File(os.path.join(folder, "speed.h5"), "w") as f:
        f["u"] = data
    sources = {
        "memory": data,
        "disk (npy)": tx.data.open_trajectories(f"npy:{folder}/speed.npy"),
        "disk (hdf5)": tx.data.open_trajectories(f"hdf5:{folder}/speed.h5#u"),
    }
    rows = {}
    for rollout in (1, 5):
        runs = {f"{name}, R={rollout}": make_trainer(source, rollout, steps)
                for name, source in sources.items()}
        rows.update(time_modes(runs, steps, repeats))
    return rows


def worker_equal(folder: str) -> dict:
    import equinox as eqx
    import h5py
    import jax
    import numpy as np
    import optax
    import zarr

    import trainax_fm as tx

    data = np.random.default_rng(2).standard_normal((12, 30, 1, 32), dtype=np.float32)
    np.save(os.path.join(folder, "small.npy"), data)
    with h5py.File(os.path.join(folder, "small.h5"), "w") as f:
        f["u"] = data
    zarr.save_array(os.path.join(folder, "small.zarr"), data)
    sources = {
        "npy": f"npy:{folder}/small.npy",
        "hdf5": f"hdf5:{folder}/small.h5#u",
        "zarr": f"zarr:{folder}/small.zarr",
    }
    net = eqx.nn.Conv1d(1, 1, 5, padding=2, padding_mode="CIRCULAR", key=jax.random.PRNGKey(0))

    def weights(trajectories):
        trainer = tx.trainer.SupervisedTrainer(
            trajectories, optimizer=optax.adam(1e-3), num_training_steps=100, batch_size=16,
            num_rollout_steps=3, steps_per_dispatch=1,
        )
        return np.asarray(
            trainer.train(net, jax.random.PRNGKey(4), spawn_tqdm=False).stepper.weight
        )

    reference = weights(data)
    rows = {}
    for name, spec in sources.items():
        trained = weights(tx.data.open_trajectories(spec))
        rows[name] = {"bit_identical": bool(np.array_equal(trained, reference)),
                      "max_abs_difference": float(np.abs(trained - reference).max())}
    return rows


def run_worker(*args) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *map(str, args)],
        capture_output=True, text=True, timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", nargs="+")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "write":
            result = write_large_file(rest[0], float(rest[1]))
        elif kind == "large":
            result = worker_large(rest[0], int(rest[1]), int(rest[2]))
        elif kind == "speed":
            result = worker_speed(rest[0], int(rest[1]), int(rest[2]))
        else:
            result = worker_equal(rest[0])
        print(json.dumps(result))
        return
    if args.quick:
        args.gigabytes, args.steps, args.repeats = 0.5, 10, 1
    folder = tempfile.mkdtemp(prefix="trainax_fm_bench_data_")
    try:
        path = os.path.join(folder, "large.npy")
        written = run_worker("write", path, args.gigabytes)
        print("written", written, flush=True)
        large = run_worker("large", path, args.steps, args.repeats)
        os.remove(path)  # the big file goes as soon as it has served
        print("large", large, flush=True)
        speed = run_worker("speed", folder, args.steps, args.repeats)
        print("speed", speed, flush=True)
        equal = run_worker("equal", folder)
        print("equal", equal, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report = format_report(args, written, large, speed, equal)
    print(report)
    if not args.no_write:
        target = os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "results", "bench_data.md"
        )
        with open(target, "w") as f:
            f.write(report)


def format_report(args, written, large, speed, equal) -> str:
    import jax

    lines = [
        f"# bench_data.py (2-core CPU, jax {jax.__version__}, {time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `python benchmarks/bench_data.py --gigabytes {args.gigabytes:g} "
        f"--steps {args.steps} --repeats {args.repeats}`",
        "",
        "## Training from a file larger than the memory budget",
        "",
        "| file | shape | peak RSS after opening | peak RSS after training | first call s "
        f"| call of {args.steps} updates s | steady updates/s (R=1, B=20) |",
        "|---|---|---|---|---|---|---|",
        f"| .npy, {written['gigabytes']:.2f} GB | {tuple(written['shape'])} "
        f"| {large['rss_after_open_mb']:.0f} MB | {large['peak_rss_mb']:.0f} MB "
        f"| {large['first_call_s']:.1f} | {large['call_s']:.1f} "
        f"| {large['steady_updates_per_s']:.1f} |",
        "",
        "A call's fixed cost is the permutation table of two epochs of all windows "
        "(the same in memory); the steady rate (timed from the first to the last update) "
        "excludes it.",
        "",
        "## Updates per second: from disk vs from memory "
        "(ConvNet, batch 20, one update per dispatch)",
        "",
        "| data | first call s (compiles) | updates/s | vs memory |",
        "|---|---|---|---|",
    ]
    for name, row in speed.items():
        memory = speed["memory, " + name.split(", ")[1]]
        lines.append(
            f"| {name} | {row['first_call_s']:.2f} | {row['updates_per_s']:.1f} "
            f"| {row['updates_per_s'] / memory['updates_per_s']:.2f}x |"
        )
    lines += [
        "",
        "## Weights after 100 updates: from disk vs from memory",
        "",
        "| format | bit-identical | max abs difference |",
        "|---|---|---|",
    ]
    for name, row in equal.items():
        lines.append(f"| {name} | {row['bit_identical']} | {row['max_abs_difference']:.1e} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
