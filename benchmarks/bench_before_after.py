"""Compare the default training engine (`ours` of `bench_engine.py`) of two source trees.

For every case of `benchmarks/bench_engine.py`, the `--worker CASE ours` measurement
(one subprocess each: end-to-end steps/s, steady steps/s, compile seconds, peak RSS) is
run with the BEFORE tree (`--before`, e.g. a git worktree of an older commit) and with
the AFTER tree (`--after`, default this repository), each with `PYTHONPATH` at its tree
root and its own `bench_engine.py`.
Rounds interleave the order (before, after | after, before | ...) so that load drift on
a shared machine hits both alike; the table reports per-case medians over the rounds and
the ratio after/before (> 1 is better for steps/s, < 1 is better for compile and RSS).
It also reports the updates per dispatch that `steps_per_dispatch="auto"` chose in each
tree (`TrainResult.train_state.steps_per_dispatch` of one run of the case).

Run (about 15 minutes on 2 CPU cores with the defaults):

    git worktree add -f /tmp/before <commit>
    python benchmarks/bench_before_after.py --before /tmp/before [--after PATH]
        [--cases a1,b5] [--rounds 3]

The table is written to `benchmarks/results/bench_before_after.md`.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = "a1,a20,b1,b5,b20,c3"
METRICS = [
    ("end_to_end_steps_per_s", "end-to-end steps/s", "{:,.1f}"),
    ("steady_steps_per_s", "steady steps/s", "{:,.1f}"),
    ("compile_s", "compile s", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
]


def child(tree, arguments):
    """Run `arguments` with `tree` on PYTHONPATH; return the JSON of its last line."""
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                         env=env, cwd=tree)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(tree, case, repeats):
    script = os.path.join(tree, "benchmarks", "bench_engine.py")
    return child(tree, [script, "--worker", case, "ours", "--repeats", str(repeats)])


def dispatch_mode(tree, case):
    """Updates per dispatch chosen by the default engine of `tree` for `case`."""
    return child(tree, [os.path.abspath(__file__), "--mode-worker", case])


def mode_worker(case_name):
    tree = os.environ["PYTHONPATH"]
    sys.path.insert(0, os.path.join(tree, "benchmarks"))
    import bench_engine
    import jax
    import optax

    import trainax_fm as tx

    assert os.path.dirname(os.path.dirname(tx.__file__)) == os.path.abspath(tree)
    case = bench_engine.CASES[case_name]
    data, net = bench_engine.build(case["kind"])
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=case["steps"],
        batch_size=case["batch"], num_rollout_steps=case["rollout"],
    )
    result = trainer.train(net, jax.random.PRNGKey(2), spawn_tqdm=False)
    print(json.dumps({"steps_per_dispatch": result.train_state.steps_per_dispatch}))


def revision(tree):
    out = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def median(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def table(results, modes, cases):
    header = "| case | dispatch before → after |"
    rule = "|---|---|"
    for _, title, _ in METRICS:
        header += f" {title} before | after | ratio |"
        rule += "---|---|---|"
    lines = [header, rule]
    for case in cases:
        mode = " → ".join(str(modes[t][case].get("steps_per_dispatch",
                                                 modes[t][case].get("error")))
                          for t in ("before", "after"))
        row = f"| {case} | {mode} |"
        for key, _, fmt in METRICS:
            b, a = (median(results[t][case], key) for t in ("before", "after"))
            cells = [fmt.format(v) if v is not None else "error" for v in (b, a)]
            ratio = f"{a / b:.2f}" if a is not None and b else "-"
            row += f" {cells[0]} | {cells[1]} | {ratio} |"
        lines.append(row)
    lines += ["", "Per-round end-to-end ratios after/before (round i of each tree):", ""]
    for case in cases:
        pairs = zip(results["before"][case], results["after"][case])
        ratios = [f"{a['end_to_end_steps_per_s'] / b['end_to_end_steps_per_s']:.2f}"
                  for b, a in pairs if "error" not in a and "error" not in b]
        lines.append(f"- {case}: {', '.join(ratios)}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="/tmp/before", help="root of the BEFORE tree")
    parser.add_argument("--after", default=REPO, help="root of the AFTER tree")
    parser.add_argument("--cases", default=CASES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="bench_engine --repeats")
    parser.add_argument("--mode-worker", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode_worker:
        return mode_worker(args.mode_worker)
    trees = {t: os.path.abspath(getattr(args, t)) for t in ("before", "after")}
    cases = args.cases.split(",")
    results = {t: {c: [] for c in cases} for t in trees}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for case in cases:
            for t in order:
                results[t][case].append(measure(trees[t], case, args.repeats))
                print(f"round {r + 1} {case:4s} {t:6s} {results[t][case][-1]}", file=sys.stderr)
    modes = {t: {c: dispatch_mode(trees[t], c) for c in cases} for t in trees}
    command = "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:])
    text = (
        f"# Default engine (`ours`), before vs after\n\n"
        f"Command: `{command}`  \nDate: {datetime.datetime.now():%Y-%m-%d %H:%M}  \n"
        f"Before: `{trees['before']}` ({revision(trees['before'])}); after: `{trees['after']}` "
        f"({revision(trees['after'])}). Medians over {args.rounds} "
        f"interleaved rounds; ratio = after / before.\n\n{table(results, modes, cases)}\n"
    )
    print(text)
    path = os.path.join(REPO, "benchmarks", "results", "bench_before_after.md")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
