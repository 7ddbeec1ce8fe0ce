"""Lorenz-63: one-step vs unrolled MLP emulators of a chaotic ODE.

The Lorenz-63 system (sigma=10, rho=28, beta=8/3) is integrated with RK4
(`tx.sample_data.lorenz_rk4`). Two residual MLP emulators `u -> u + mlp(u)` (an
`eqx.nn.MLP` on the 3-dim state, in standardised coordinates) are trained with the
same budget of updates:

- one-step: `SupervisedTrainer(num_rollout_steps=1)`,
- unrolled: `SupervisedTrainer(num_rollout_steps=R)` (the loss sums R autoregressive steps).

Both are rolled out from unseen initial conditions on the attractor with `tx.rollout`.
The script prints the valid prediction time (VPT, `tx.metrics.valid_prediction_time`,
nRMSE threshold 0.5 on the standardised states) in Lyapunov times (largest Lyapunov
exponent ~0.9, one Lyapunov time ~1.1 time units) and the nRMSE at fixed horizons, and
saves two plots to `--out`:

- `lorenz_attractor.png`: the x-z projection of a long free-running rollout of each
  emulator next to the true attractor (does the emulator stay on the attractor?),
- `lorenz_nrmse.png`: nRMSE over time in Lyapunov times (`tx.plot.error_over_time`).

Run: `python examples/lorenz.py` (about a minute on 2 CPU cores; add `--smoke` for a
seconds-long check, `--out DIR` to choose where the PNGs go). Needs matplotlib for the
plots (`pip install -e ".[plot]"`).
"""

import argparse
import os
import time

import equinox as eqx
import jax
import numpy as np
import optax

import trainax_fm as tx

LYAPUNOV_EXPONENT = 0.9  # largest Lyapunov exponent of Lorenz-63 (~0.906)


class ResidualMLP(eqx.Module):
    """`u -> u + mlp(u)`: the network learns the increment over one time step."""

    mlp: eqx.nn.MLP

    def __init__(self, width: int, depth: int, *, key):
        self.mlp = eqx.nn.MLP(3, 3, width, depth, activation=jax.nn.gelu, key=key)

    def __call__(self, u):
        return u + self.mlp(u)


def make_data(num_samples, num_steps, dt, key, mean=None, std=None):
    """Lorenz trajectories `(S, T, 3)` on the attractor, standardised per component."""
    trajectories = tx.sample_data.lorenz_rk4(
        num_samples, temporal_horizon=num_steps, dt=dt, num_warmup_steps=1000, key=key
    )
    if mean is None:
        mean = trajectories.mean(axis=(0, 1))
        std = trajectories.std(axis=(0, 1))
    return (trajectories - mean) / std, mean, std


def train(name, data, num_rollout_steps, args, key):
    init_key, train_key = jax.random.split(key)
    stepper = ResidualMLP(args.width, args.depth, key=init_key)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, args.steps // 20, args.steps)
    trainer = tx.trainer.SupervisedTrainer(
        data,
        optimizer=optax.adam(schedule),
        num_training_steps=args.steps,
        batch_size=args.batch_size,
        num_rollout_steps=num_rollout_steps,
        # smoke: skip the dispatch-mode measurement (a second compilation)
        steps_per_dispatch=1 if args.smoke else "auto",
    )
    start = time.perf_counter()
    stepper, losses = trainer(stepper, train_key, spawn_tqdm=False)
    seconds = time.perf_counter() - start
    print(f"trained {name:<22s} in {seconds:5.1f} s (final loss {float(losses[-1]):.2e})")
    return stepper, losses, seconds


def plot_attractors(trajectories, mean, std, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0 * len(trajectories), 4.0))
    axes = fig.subplots(1, len(trajectories), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (label, trajectory) in zip(axes, trajectories.items()):
        states = np.asarray(trajectory * std + mean)  # back to physical coordinates
        finite = np.all(np.isfinite(states), axis=-1)
        states = states[finite]
        ax.plot(states[:, 0], states[:, 2], linewidth=0.3)
        ax.set_title(label)
        ax.set_xlabel("x")
        if not finite.all():
            ax.text(0.02, 0.02, f"diverged after {int(np.argmin(finite))} steps",
                    transform=ax.transAxes, color="C3")
    axes[0].set_ylabel("z")
    axes[0].set_xlim(-25, 25)
    axes[0].set_ylim(0, 55)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training updates")
    parser.add_argument("--rollout", type=int, default=10, help="unrolled training steps R")
    parser.add_argument("--dt", type=float, default=0.02, help="time step of the data")
    parser.add_argument("--num-train", type=int, default=32, help="training trajectories")
    parser.add_argument("--train-length", type=int, default=500, help="states per trajectory")
    parser.add_argument("--num-test", type=int, default=32, help="test trajectories")
    parser.add_argument("--test-lyapunov", type=float, default=10.0,
                        help="test rollout length in Lyapunov times")
    parser.add_argument("--width", type=int, default=64, help="MLP width")
    parser.add_argument("--depth", type=int, default=3, help="MLP hidden layers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--out", default="results/examples", help="directory for the PNGs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.num_train, args.train_length = 50, 4, 50
        args.num_test, args.test_lyapunov, args.width, args.depth = 4, 2.0, 16, 2

    keys = jax.random.split(jax.random.PRNGKey(args.seed), 5)
    train_data, mean, std = make_data(args.num_train, args.train_length, args.dt, keys[0])
    num_test_steps = max(1, round(args.test_lyapunov / (LYAPUNOV_EXPONENT * args.dt)))
    test_data, _, _ = make_data(args.num_test, num_test_steps + 1, args.dt, keys[1], mean, std)
    print(f"Lorenz-63, dt={args.dt}: {args.num_train} training trajectories of "
          f"{args.train_length} states, test rollouts of {num_test_steps} steps "
          f"({args.test_lyapunov:g} Lyapunov times)")

    methods = {
        "one-step": 1,
        f"unrolled (R={args.rollout})": args.rollout,
    }
    results = {}
    for name, num_rollout_steps in methods.items():
        stepper, _losses, seconds = train(name, train_data, num_rollout_steps, args, keys[2])
        prediction = tx.rollout(stepper, test_data[:, 0], num_test_steps, batched=True)
        reference = test_data[:, 1:]
        error = tx.metrics.nrmse(prediction, reference, batched=True)
        vpt = tx.metrics.valid_prediction_time(
            prediction, reference, threshold=0.5, dt=args.dt,
            lyapunov_exponent=LYAPUNOV_EXPONENT, batched=True,
        )
        results[name] = {"stepper": stepper, "error": error, "vpt": float(vpt), "seconds": seconds}

    # ---- table --------------------------------------------------------------------
    horizons = [h for h in (1.0, 2.0, 5.0) if h <= args.test_lyapunov]
    index = {h: min(num_test_steps, round(h / (LYAPUNOV_EXPONENT * args.dt))) - 1
             for h in horizons}
    header = f"{'method':<22s} {'train [s]':>9s} {'VPT [Lyap.]':>11s}" + "".join(
        f" {f'nRMSE@{h:g}LT':>11s}" for h in horizons)
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in results.items():
        row = f"{name:<22s} {r['seconds']:9.1f} {r['vpt']:11.2f}"
        row += "".join(f" {float(r['error'][index[h]]):11.3f}" for h in horizons)
        print(row)

    # ---- plots --------------------------------------------------------------------
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed; skipping the plots (pip install trainax_fm[plot])")
        return results
    os.makedirs(args.out, exist_ok=True)
    error_path = os.path.join(args.out, "lorenz_nrmse.png")
    tx.plot.error_over_time(
        {name: r["error"] for name, r in results.items()},
        dt=args.dt * LYAPUNOV_EXPONENT, xlabel="Lyapunov times", log=True,
        title="Lorenz-63: nRMSE of test rollouts (mean over ICs)", save=error_path,
    )
    # A long free run from one test state: does the emulator stay on the attractor?
    num_long = 5 * num_test_steps
    ic = test_data[0, 0]
    reference_stepper = tx.sample_data.make_lorenz_stepper_rk4(args.dt)
    long_reference = tx.rollout(reference_stepper, ic * std + mean, num_long)
    long_runs = {"reference (RK4)": (long_reference - mean) / std}
    for name, r in results.items():
        long_runs[name] = tx.rollout(r["stepper"], ic, num_long)
    attractor_path = os.path.join(args.out, "lorenz_attractor.png")
    plot_attractors(long_runs, mean, std, attractor_path)
    print(f"\nsaved {error_path}\nsaved {attractor_path}")
    return results


if __name__ == "__main__":
    main()
