"""2D diffusion on a 32x32 periodic grid: a small UNet and a ConvNet emulator.

Trajectories of the 2D heat equation `u_t = nu (u_xx + u_yy)` on the unit square
(`exponax.stepper.Diffusion`, exact in Fourier space) start from random band-limited
fields (`exponax.ic.RandomTruncatedFourierSeries`). The same trainer
(`tx.trainer.SupervisedTrainer`, rollout `--rollout`, one-step by default) trains two
pdequinox architectures of similar size on the data shaped `(S, T, 1, 32, 32)`:

- `pdequinox.arch.ClassicUNet` (2 levels: a receptive field over the whole domain),
- `pdequinox.arch.ConvNet` (local 3x3 convolutions only).

Both are rolled out with `tx.rollout` from unseen initial conditions and compared with
the exact solution and with persistence (`u_t = u_0`, the "nothing happens" baseline).
The script prints the nRMSE after 1, 10 and `--test-steps` steps and the training time,
and saves to `--out`:

- `diffusion_2d_snapshots_<arch>.png`: snapshots of one test rollout per
  architecture, the reference and their difference (`tx.plot.snapshots_2d`),
- `diffusion_2d_nrmse.png`: nRMSE over rollout time (`tx.plot.error_over_time`).

Run: `python examples/diffusion_2d.py` (a few minutes on 2 CPU cores, most of it the
UNet; `--archs convnet` alone takes well under a minute; add `--smoke` for a
seconds-long check, `--out DIR` to choose where the PNGs go). Needs the `pde` extra
(exponax, pdequinox) and matplotlib: `pip install -e ".[pde,plot]"`.
"""

import argparse
import os
import time

import exponax
import jax
import jax.numpy as jnp
import optax
import pdequinox

import trainax_fm as tx

DIFFUSIVITY = 0.01
DT = 0.01


def make_data(ref, num_points, num_samples, num_steps, key):
    """Trajectories `(S, num_steps + 1, 1, N, N)` of the exact diffusion stepper."""
    ic = exponax.ic.RandomTruncatedFourierSeries(2, cutoff=5, max_one=True)
    ics = exponax.build_ic_set(ic, num_points=num_points, num_samples=num_samples, key=key)
    return tx.rollout(ref, ics, num_steps, include_init=True, batched=True)


def make_network(arch, args, key):
    if arch == "unet":
        return pdequinox.arch.ClassicUNet(
            2, 1, 1, hidden_channels=args.unet_hidden, num_levels=args.unet_levels, key=key
        )
    return pdequinox.arch.ConvNet(
        2, 1, 1, hidden_channels=args.conv_hidden, depth=args.conv_depth, key=key
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="unet,convnet",
                        help="comma-separated architectures to train: unet, convnet")
    parser.add_argument("--steps", type=int, default=800, help="training updates")
    parser.add_argument("--rollout", type=int, default=1, help="training rollout length")
    parser.add_argument("--num-points", type=int, default=32, help="grid points per axis")
    parser.add_argument("--num-train", type=int, default=16, help="training trajectories")
    parser.add_argument("--train-length", type=int, default=30, help="steps per trajectory")
    parser.add_argument("--num-test", type=int, default=8, help="test trajectories")
    parser.add_argument("--test-steps", type=int, default=50, help="test rollout length")
    parser.add_argument("--unet-hidden", type=int, default=8, help="UNet hidden channels")
    parser.add_argument("--unet-levels", type=int, default=2, help="UNet levels")
    parser.add_argument("--conv-hidden", type=int, default=16, help="ConvNet channels")
    parser.add_argument("--conv-depth", type=int, default=4, help="ConvNet hidden layers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--out", default="results/examples", help="directory for the PNGs")
    args = parser.parse_args(argv)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    if not archs:
        parser.error("--archs: name at least one architecture (unet, convnet)")
    for arch in archs:
        if arch not in ("unet", "convnet"):
            parser.error(f"--archs: unknown architecture {arch!r} (use unet, convnet)")
    if args.smoke:
        args.steps, args.num_points, args.num_train, args.train_length = 5, 16, 2, 4
        args.num_test, args.test_steps, args.batch_size = 2, 6, 2
        args.unet_hidden, args.unet_levels, args.conv_hidden, args.conv_depth = 4, 1, 4, 1

    ref = exponax.stepper.Diffusion(
        2, domain_extent=1.0, num_points=args.num_points, dt=DT, diffusivity=DIFFUSIVITY
    )
    keys = jax.random.split(jax.random.PRNGKey(args.seed), 4)
    train_data = make_data(ref, args.num_points, args.num_train, args.train_length, keys[0])
    test_data = make_data(ref, args.num_points, args.num_test, args.test_steps, keys[1])
    reference = test_data[:, 1:]
    print(f"2D diffusion (nu={DIFFUSIVITY}, dt={DT}): train {tuple(train_data.shape)}, "
          f"test {tuple(test_data.shape)}")

    results = {}
    for arch in archs:
        network = make_network(arch, args, keys[2])
        trainer = tx.trainer.SupervisedTrainer(
            train_data,
            optimizer=optax.adam(optax.cosine_decay_schedule(args.lr, args.steps)),
            num_training_steps=args.steps,
            batch_size=args.batch_size,
            num_rollout_steps=args.rollout,
            # smoke: skip the dispatch-mode measurement (a second compilation)
            steps_per_dispatch=1 if args.smoke else "auto",
        )
        start = time.perf_counter()
        stepper, losses = trainer(network, keys[3], spawn_tqdm=False)
        seconds = time.perf_counter() - start
        prediction = tx.rollout(stepper, test_data[:, 0], args.test_steps, batched=True)
        label = f"{arch} ({pdequinox.count_parameters(network)} params)"
        results[label] = {
            "seconds": seconds, "prediction": prediction,
            "nrmse": tx.metrics.nrmse(prediction, reference, batched=True),
        }
        print(f"trained {label:<26s} in {seconds:6.1f} s (final loss {float(losses[-1]):.2e})")
    persistence = jnp.broadcast_to(test_data[:, :1], reference.shape)
    results["persistence (u_t = u_0)"] = {
        "seconds": 0.0, "prediction": persistence,
        "nrmse": tx.metrics.nrmse(persistence, reference, batched=True),
    }

    # ---- table --------------------------------------------------------------------
    horizons = sorted({h for h in (1, 10, args.test_steps) if h <= args.test_steps})
    header = f"{'emulator':<26s} {'train [s]':>9s}" + "".join(
        f" {f'nRMSE@{h}':>10s}" for h in horizons)
    print("\n" + header + "\n" + "-" * len(header))
    for label, r in results.items():
        print(f"{label:<26s} {r['seconds']:9.1f}"
              + "".join(f" {float(r['nrmse'][h - 1]):10.3g}" for h in horizons))

    # ---- plots --------------------------------------------------------------------
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed; skipping the plots (pip install trainax_fm[plot])")
        return results
    os.makedirs(args.out, exist_ok=True)
    nrmse_path = os.path.join(args.out, "diffusion_2d_nrmse.png")
    tx.plot.error_over_time(
        {label: r["nrmse"] for label, r in results.items()}, dt=DT, log=True,
        title=f"2D diffusion: nRMSE of test rollouts (mean over {args.num_test} ICs)",
        save=nrmse_path,
    )
    saved = [nrmse_path]
    for arch, label in zip(archs, results):  # the trained emulators, in order
        saved.append(os.path.join(args.out, f"diffusion_2d_snapshots_{arch}.png"))
        tx.plot.snapshots_2d(
            results[label]["prediction"][0], reference=reference[0], difference=True,
            dt=DT, row_labels=(arch, "reference", "difference"), save=saved[-1],
        )
    print("\n" + "\n".join(f"saved {path}" for path in saved))
    return results


if __name__ == "__main__":
    main()
