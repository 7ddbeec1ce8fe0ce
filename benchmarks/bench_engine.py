"""Benchmark the training engine against trainax 0.0.2 and two hand-written floors.

Every (case, method) pair runs in its own subprocess so that peak memory (max RSS) is
measured per method. Per pair we time, within one process:

- `cold`: the first call with N updates (compiles);
- `warm`: a second call with N updates (`end-to-end steps/s = N / warm`);
- `long`: a call with 2N updates (`steady steps/s = N / (long - warm)`, which removes
  fixed per-call costs);
- `compile = cold - N / steady` (the first call's time beyond its updates).

Times are medians over `--repeats` repetitions of warm/long. Ratios are against trainax
(when importable) and against the better of the two floors, all from the same run.

Methods:

- `ours`: `trainax_fm` with its defaults (`steps_per_dispatch="auto"`, `unroll="auto"`).
- `ours_scan`: `trainax_fm` with a scanned rollout (`unroll=False`).
- `trainax`: trainax 0.0.2 (`pip install trainax==0.0.2`), skipped if not importable.
- `floor_scan`: the whole training in one jitted `lax.scan` (sampling, gather, unrolled
  rollout, grad and Adam on device).
- `floor_step`: one jitted update per dispatch with an unrolled rollout and on-device
  sampling, driven by a Python loop.

Run: `python benchmarks/bench_engine.py` (about 10 minutes on 2 CPU cores);
`--quick` for a smoke run; `--cases a1,b5` to select cases.
"""

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = {
    # name: (description, builder kwargs)
    "a1": dict(kind="quickstart", rollout=1, batch=32, steps=2000),
    "a20": dict(kind="quickstart", rollout=20, batch=32, steps=1000),
    "b1": dict(kind="convnet1d", rollout=1, batch=20, steps=60),
    "b5": dict(kind="convnet1d", rollout=5, batch=20, steps=30),
    # Compile time at a long rollout (few updates: each one is expensive).
    "b20": dict(kind="convnet1d", rollout=20, batch=20, steps=4),
    "c3": dict(kind="conv2d", rollout=3, batch=8, steps=30),
}
METHODS = ["ours", "ours_scan", "trainax", "floor_scan", "floor_step"]


# --- problem definitions ---------------------------------------------------------------


def build(kind, key_seed=0):
    import equinox as eqx
    import jax

    key = jax.random.PRNGKey(key_seed)
    if kind == "quickstart":
        import trainax_fm as tx

        data = tx.sample_data.advection_1d_periodic(cfl=-0.75, key=key)
        net = eqx.nn.Conv1d(
            1, 1, 2, padding=((0, 1),), padding_mode="CIRCULAR", use_bias=False,
            key=jax.random.PRNGKey(1),
        )
        return data, net
    if kind == "convnet1d":
        data = jax.random.normal(key, (20, 30, 1, 160))
        return data, ConvNet(1, 26, 10, 1, key=jax.random.PRNGKey(1))
    if kind == "conv2d":
        data = jax.random.normal(key, (8, 12, 1, 64, 64))
        return data, ConvNet(1, 16, 4, 2, key=jax.random.PRNGKey(1))
    raise ValueError(kind)


def _convnet_class():
    import equinox as eqx
    import jax

    class ConvNet(eqx.Module):
        """`depth` circular convolutions with relu in between (hidden channels `width`)."""

        layers: list

        def __init__(self, channels, width, depth, num_spatial_dims, *, key):
            keys = jax.random.split(key, depth)
            sizes = [channels] + [width] * (depth - 1) + [channels]
            self.layers = [
                eqx.nn.Conv(
                    num_spatial_dims, sizes[i], sizes[i + 1], 3, padding=1,
                    padding_mode="CIRCULAR", key=keys[i],
                )
                for i in range(depth)
            ]

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    return ConvNet


def ConvNet(*args, **kwargs):
    return _convnet_class()(*args, **kwargs)


# --- methods ----------------------------------------------------------------------------


def make_runner(method, case):
    """Return `run(num_steps) -> blocks until done`."""
    import jax
    import optax

    data, net = build(case["kind"])
    rollout, batch = case["rollout"], case["batch"]
    optimizer = optax.adam(1e-3)
    key = jax.random.PRNGKey(2)

    if method in ("ours", "ours_scan"):
        import trainax_fm as tx

        extra = {} if method == "ours" else {"unroll": False}

        def run(num_steps):
            trainer = tx.trainer.SupervisedTrainer(
                data, optimizer=optimizer, num_training_steps=num_steps,
                batch_size=batch, num_rollout_steps=rollout, **extra,
            )
            stepper, losses = trainer(net, key, spawn_tqdm=False)
            jax.block_until_ready((stepper, losses))

        return run
    if method == "trainax":
        import trainax

        def run(num_steps):
            trainer = trainax.trainer.SupervisedTrainer(
                data, optimizer=optimizer, num_training_steps=num_steps,
                batch_size=batch, num_rollout_steps=rollout,
            )
            stepper, losses = trainer(net, key, spawn_tqdm=False)
            jax.block_until_ready((stepper, losses))

        return run
    if method in ("floor_scan", "floor_step"):
        return _floor(method, data, net, rollout, batch, optimizer, key)
    raise ValueError(method)


def _floor(method, data, net, rollout, batch, optimizer, key):
    """Minimal hand-written training loops (no library code)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    num_traj, num_time = data.shape[:2]
    window = rollout + 1
    per_traj = num_time - window + 1
    num_windows = num_traj * per_traj
    params, static = eqx.partition(net, eqx.is_array)

    def loss_fn(params, windows):
        model = eqx.combine(params, static)
        state, total = windows[:, 0], 0.0
        for t in range(rollout):
            state = jax.vmap(model)(state)
            total = total + jnp.mean((state - windows[:, t + 1]) ** 2)
        return total

    def indices(perms, step):
        position = step * batch + jnp.arange(batch)
        return perms[position // num_windows, position % num_windows]

    def gather(index):
        traj, start = index // per_traj, index % per_traj
        return jax.vmap(
            lambda i, s: jax.lax.dynamic_slice_in_dim(data[i], s, window, axis=0)
        )(traj, start)

    def update(params, opt_state, perms, step):
        windows = gather(indices(perms, step))
        loss, grads = jax.value_and_grad(loss_fn)(params, windows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    def permutations(num_steps):
        num_epochs = (num_steps * batch) // num_windows + 2
        keys = jax.random.split(key, num_epochs)
        return jax.vmap(lambda k: jax.random.permutation(k, num_windows))(keys)

    if method == "floor_scan":

        @functools.partial(jax.jit, static_argnums=3)
        def train(params, opt_state, perms, num_steps):
            def body(carry, step):
                params, opt_state = carry
                params, opt_state, loss = update(params, opt_state, perms, step)
                return (params, opt_state), loss

            return jax.lax.scan(body, (params, opt_state), jnp.arange(num_steps))

        def run(num_steps):
            out = train(params, optimizer.init(params), permutations(num_steps), num_steps)
            jax.block_until_ready(out)

        return run

    step_fn = jax.jit(update)

    def run(num_steps):
        perms = permutations(num_steps)
        p, o = params, optimizer.init(params)
        for step in range(num_steps):
            p, o, loss = step_fn(p, o, perms, step)
        jax.block_until_ready((p, o, loss))

    return run


# --- worker and orchestration -------------------------------------------------------------


def worker(case_name, method, repeats):
    case = CASES[case_name]
    if method == "trainax":
        try:
            import trainax  # noqa: F401
        except ImportError:
            return {"skipped": "trainax not importable"}
    run = make_runner(method, case)
    n = case["steps"]
    begin = time.perf_counter()
    run(n)
    cold = time.perf_counter() - begin
    warm, long = [], []
    for _ in range(repeats):
        begin = time.perf_counter()
        run(n)
        warm.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        run(2 * n)
        long.append(time.perf_counter() - begin)
    warm_t, long_t = statistics.median(warm), statistics.median(long)
    steady = n / max(long_t - warm_t, 1e-9)
    return {
        "end_to_end_steps_per_s": n / warm_t,
        "steady_steps_per_s": steady,
        # Time of the first call beyond its updates at the steady rate (trainax
        # recompiles on every call, so cold - warm would hide its compile time).
        "compile_s": max(cold - n / steady, 0.0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def compile_seconds(case_name):
    """Lower-and-compile time of one training update: ours (scanned and unrolled
    rollout) against trainax's `step_fn`, measured directly (no training)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import trainax_fm as tx
    from trainax_fm._loop import _compiled as engine

    case = CASES[case_name]
    data, net = build(case["kind"])
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(eqx.filter(net, eqx.is_inexact_array))
    rows = {}
    for name, unroll in (("ours_scan", False), ("ours_unrolled", True)):
        trainer = tx.trainer.SupervisedTrainer(
            data, optimizer=optimizer, num_training_steps=1, batch_size=case["batch"],
            num_rollout_steps=case["rollout"], unroll=unroll,
        )
        problem = trainer.make_problem()
        perms = engine.make_permutations(
            jax.random.PRNGKey(0), jnp.asarray(0), 2,
            trainer.trajectory_sub_stacker.num_total_samples
        )
        update = engine.CompiledUpdate(engine.one_step, problem, net, opt_state)
        dynamic = (update.dynamic_problem,) + tuple(eqx.filter((net, opt_state), eqx.is_array))
        begin = time.perf_counter()
        update.entry.jitted.lower(
            dynamic, perms, jnp.asarray(0), jax.random.PRNGKey(1), 0
        ).compile()
        rows[name] = time.perf_counter() - begin
    try:
        import trainax

        theirs = trainax.trainer.SupervisedTrainer(
            data, optimizer=optimizer, num_training_steps=1, batch_size=case["batch"],
            num_rollout_steps=case["rollout"],
        )
        batch = theirs.trajectory_sub_stacker(jnp.arange(case["batch"]))
        begin = time.perf_counter()
        eqx.filter_jit(theirs.step_fn).lower(net, opt_state, batch).compile()
        rows["trainax"] = time.perf_counter() - begin
    except ImportError:
        pass
    return rows


def window_memory(rollouts=(1, 5, 20)):
    """Bytes held by the windowed data of ours vs trainax for several window lengths."""
    import jax
    import jax.tree_util as jtu

    import trainax_fm as tx

    data = tx.sample_data.advection_1d_periodic(cfl=-0.75, key=jax.random.PRNGKey(0))
    rows = []
    for rollout in rollouts:
        ours = tx.TrajectorySubStacker(data, rollout + 1)
        ours_bytes = sum(x.nbytes for x in jtu.tree_leaves(ours) if hasattr(x, 'nbytes'))
        try:
            import trainax

            theirs = trainax._mixer.TrajectorySubStacker(data, rollout + 1)
            theirs_bytes = sum(
                x.nbytes for x in jtu.tree_leaves(theirs) if hasattr(x, 'nbytes')
            )
        except ImportError:
            theirs_bytes = None
        rows.append((rollout, ours_bytes, theirs_bytes))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny step counts")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "METHOD"))
    parser.add_argument("--compile-worker", metavar="CASE")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--compile-cases", default="a20,b20",
        help="cases whose update compile time is measured directly ('' to skip)",
    )
    args = parser.parse_args()
    if args.quick:
        for case in CASES.values():
            case["steps"] = max(4, case["steps"] // 20)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats)))
        return
    if args.compile_worker:
        print(json.dumps(compile_seconds(args.compile_worker)))
        return
    results = {}
    for case in args.cases.split(","):
        for method in args.methods.split(","):
            command = [sys.executable, __file__, "--worker", case, method,
                       "--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
            out = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if out.returncode != 0:
                results[(case, method)] = {"error": out.stderr.strip().splitlines()[-1]}
            else:
                results[(case, method)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:4s} {method:11s} {results[(case, method)]}", file=sys.stderr)
    print_table(results, args.cases.split(","), args.methods.split(","))
    if args.compile_cases:
        print("\nCompile time of one update (lower + compile, seconds):")
        print(
            "| case | ours, scanned rollout | ours, unrolled rollout | trainax | scan vs trainax |"
        )
        print("|---|---|---|---|---|")
        for case in args.compile_cases.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--compile-worker", case],
                capture_output=True, text=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
            theirs = row.get("trainax")
            ratio = f"{row['ours_scan'] / theirs:.2f}x" if theirs else "-"
            print(f"| {case} | {row.get('ours_scan', float('nan')):.2f} | "
                  f"{row.get('ours_unrolled', float('nan')):.2f} | "
                  f"{theirs if theirs is None else round(theirs, 2)} | {ratio} |")
    print("\nWindowed data (bytes held by the window store, quickstart data):")
    print("| rollout | trainax_fm | trainax |")
    print("|---|---|---|")
    for rollout, ours, theirs in window_memory():
        print(f"| {rollout} | {ours} | {theirs} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{c}/{m}": r for (c, m), r in results.items()}, f, indent=2)


def print_table(results, cases, methods):
    print("| case | method | end-to-end steps/s | steady steps/s | compile s | peak RSS MB "
          "| e2e vs trainax | e2e vs best floor | compile vs trainax |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        trainax_r = results.get((case, "trainax"), {})
        floors = [results.get((case, m), {}) for m in ("floor_scan", "floor_step")]
        best_floor = max((f.get("end_to_end_steps_per_s", 0) for f in floors), default=0)
        for method in methods:
            r = results.get((case, method), {})
            if "end_to_end_steps_per_s" not in r:
                print(f"| {case} | {method} | {r} |||||||")
                continue
            e2e = r["end_to_end_steps_per_s"]
            vs_trainax = (
                f"{e2e / trainax_r['end_to_end_steps_per_s']:.2f}x"
                if "end_to_end_steps_per_s" in trainax_r else "-"
            )
            vs_floor = f"{e2e / best_floor:.2f}x" if best_floor else "-"
            compile_ratio = (
                f"{r['compile_s'] / trainax_r['compile_s']:.2f}x"
                if trainax_r.get("compile_s") else "-"
            )
            print(
                f"| {case} | {method} | {e2e:,.0f} | {r['steady_steps_per_s']:,.0f} | "
                f"{r['compile_s']:.2f} | {r['peak_rss_mb']:.0f} | {vs_trainax} | "
                f"{vs_floor} | {compile_ratio} |"
            )


if __name__ == "__main__":
    main()
