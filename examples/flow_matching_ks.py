"""Probabilistic flow-matching emulator of coarse-grained Kuramoto-Sivashinsky, distilled.

Why flow matching here: the 1D Kuramoto-Sivashinsky equation (conservative form,
`exponax.stepper.KuramotoSivashinskyConservative`, domain length L = 100) is solved
at 128 points and then *coarse-grained* to 32 points by keeping only the Fourier modes
`|k| <= 15`. About a fifth of the energy lives in the discarded small scales, and they
feed back into the large ones, so the next coarse state is not a function of the
current coarse state: it is a random variable. A deterministic emulator can at best
predict its mean (blurred, too little small-scale energy); a flow-matching (FM)
emulator samples it. (On deterministic data the optimal FM velocity would be straight
and one Euler step exact; here it is not.)

What the script does:

1. Trajectories of the fine solver (after a warm-up) are coarse-grained; the emulator
   step is one time unit (5 solver steps). The emulator predicts the normalised
   increment `(u_{n+1} - u_n) / sigma`, which a small wrapper adds back to `u_n`.
2. A velocity `v(x_t, y, t)` (a periodic `pdequinox.arch.ConvNet` wrapped in
   `tx.flow.ConditionalVelocity`) is trained with `tx.trainer.FlowMatchingTrainer`
   and sampled with 16 Euler steps (16 network evaluations, NFE, per emulator step):
   the teacher.
3. The teacher is distilled into a few-step sampler: a `tx.flow.FlowMap` trained by
   semigroup distillation (`tx.trainer.SemigroupDistillationTrainer`, default,
   sampled with one map step = 2 NFE) or, with `--distill pd`, a progressive
   distillation student (`tx.trainer.ProgressiveDistillationTrainer`, 16 -> 1 steps,
   1 NFE).
4. Teacher, distilled map and, for comparison, the *undistilled* teacher with a single
   Euler step (1 NFE; with the exact velocity it would map every noise sample onto the
   conditional mean, `x0 + v(x0, y, 0) = E[x1 | y]`) roll out
   an ensemble from unseen initial states with `tx.rollout(..., key=...)` and are
   scored with `tx.metrics`: nRMSE of the members, high-correlation time (Pearson
   > 0.8), CRPS, spread-skill ratio and the late-time energy at high wavenumbers.

Figures written to `--out`:

- `flow_matching_ks_spacetime_teacher.png`, `flow_matching_ks_spacetime_distilled.png`:
  one ensemble member against the coarse reference (`tx.plot.spacetime`);
- `flow_matching_ks_error.png`: nRMSE over time, median and interquartile band over
  members and initial states (`tx.plot.error_over_time`);
- `flow_matching_ks_spectra.png`: time-averaged energy spectra at late times;
- `flow_matching_ks_loss.png`: the training losses (`tx.plot.loss_history`).

Run from the repository root: `python examples/flow_matching_ks.py` (a few minutes on
2 CPU cores); `--smoke` for a seconds-long check of every code path, `--out DIR` for
the figures, `--distill pd` for progressive distillation, `--help` for sizes.
`benchmarks/bench_flow.py` runs the full comparison (teacher, Sobolev-trained teacher,
SG and PD maps with 1, 2 and 4 steps). Needs the `pde` extra (exponax, pdequinox) and
matplotlib for the figures: `pip install -e ".[pde,plot]"`.
"""

import argparse
import os
import time

import equinox as eqx
import exponax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pdequinox

import trainax_fm as tx
from trainax_fm import flow

FINE_POINTS, COARSE_POINTS, CUTOFF = 128, 32, 15
DT = 1.0  # time between two coarse states


def coarse_grain(u):
    """Spectral truncation of a 128-point field to the modes |k| <= 15, on 32 points."""
    spectrum = jnp.fft.rfft(u, axis=-1)[..., : CUTOFF + 1]
    return jnp.fft.irfft(spectrum, n=COARSE_POINTS, axis=-1) * COARSE_POINTS / FINE_POINTS


def make_data(num_trajectories, num_steps, key, *, domain_extent=100.0, substeps=5,
              warmup=200):
    """Coarse-grained KS trajectories `(S, num_steps + 1, 1, 32)`."""
    ks = exponax.stepper.KuramotoSivashinskyConservative(
        1, domain_extent, FINE_POINTS, DT / substeps
    )
    ic = exponax.ic.RandomTruncatedFourierSeries(1, cutoff=5, max_one=True)
    u = exponax.build_ic_set(ic, num_points=FINE_POINTS, num_samples=num_trajectories,
                             key=key)
    coarse_step = jax.jit(
        jax.vmap(lambda v: jax.lax.fori_loop(0, substeps, lambda i, w: ks(w), v))
    )
    for _ in range(warmup):  # leave the initial transient
        u = coarse_step(u)
    states = [u]
    for _ in range(num_steps):
        u = coarse_step(u)
        states.append(u)
    return coarse_grain(jnp.stack(states, axis=1))


class IncrementStepper(eqx.Module):
    """`u_n -> u_n + sigma * sample`, where the flow stepper samples the normalised increment."""

    inner: eqx.Module
    sigma: float = eqx.field(static=True)
    needs_key = True

    def __call__(self, u, *, key):
        return u + self.sigma * self.inner(u, key=key)


def score(ensemble, reference):
    """Metrics of an ensemble `(M, B, T, 1, N)` against the reference `(B, T, 1, N)`."""
    members = ensemble.reshape((-1,) + ensemble.shape[2:])
    tiled = jnp.broadcast_to(reference, ensemble.shape).reshape(members.shape)
    num_steps = reference.shape[1]
    late = slice(num_steps // 2, num_steps)
    spectrum = jax.vmap(tx.metrics.energy_spectrum)
    late_spectrum = jnp.mean(spectrum(ensemble[:, :, late].reshape((-1, 1, COARSE_POINTS))), 0)
    ref_spectrum = jnp.mean(spectrum(reference[:, late].reshape((-1, 1, COARSE_POINTS))), 0)
    crps = tx.metrics.crps(ensemble, reference, axis=(0, 2, 3))
    short = min(10, num_steps)
    return {
        # per member-and-IC curves (M*B, T), for the median/band plot
        "nrmse_curves": jax.vmap(lambda p, r: tx.metrics.nrmse(p, r))(members, tiled),
        "hct": int(tx.metrics.high_correlation_time(
            tx.metrics.pearson_correlation(members, tiled, batched=True))),
        "crps1": float(crps[0]),
        "crps10": float(jnp.mean(crps[:short])),
        "ssr10": float(tx.metrics.spread_skill_ratio(
            ensemble[:, :, :short], reference[:, :short])),
        "hf_ratio": float(jnp.sum(late_spectrum[8:]) / jnp.sum(ref_spectrum[8:])),
        "spectrum": late_spectrum,
        "ref_spectrum": ref_spectrum,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distill", choices=("sg", "pd"), default="sg",
                        help="semigroup (FlowMap, 1 map step) or progressive (16 -> 1)")
    parser.add_argument("--fm-steps", type=int, default=2000, help="FM updates")
    parser.add_argument("--distill-steps", type=int, default=None,
                        help="distillation updates (default SG 1200; PD 400 per stage, 4 stages)")
    parser.add_argument("--num-train", type=int, default=32, help="training trajectories")
    parser.add_argument("--train-length", type=int, default=80, help="steps per trajectory")
    parser.add_argument("--num-test", type=int, default=8, help="test initial states")
    parser.add_argument("--members", type=int, default=8, help="ensemble members")
    parser.add_argument("--test-steps", type=int, default=60, help="rollout length")
    parser.add_argument("--hidden", type=int, default=32, help="ConvNet hidden channels")
    parser.add_argument("--depth", type=int, default=6, help="ConvNet hidden layers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--out", default="results/examples", help="directory for the PNGs")
    args = parser.parse_args(argv)
    warmup = 200
    if args.distill_steps is None:
        args.distill_steps = 1200 if args.distill == "sg" else 400
    if args.smoke:
        args.fm_steps, args.distill_steps, args.num_train, args.train_length = 8, 4, 4, 8
        args.num_test, args.members, args.test_steps = 2, 2, 6
        args.hidden, args.depth, args.batch_size, warmup = 4, 1, 8, 10
    start_all = time.perf_counter()
    keys = jax.random.split(jax.random.key(args.seed), 8)

    # ---- data ---------------------------------------------------------------------
    length = max(args.train_length, args.test_steps)
    data = make_data(args.num_train + args.num_test, length, keys[0], warmup=warmup)
    train = data[: args.num_train, : args.train_length + 1]
    test = data[args.num_train:, : args.test_steps + 1]
    increments = train[:, 1:] - train[:, :-1]
    sigma = float(jnp.std(increments))
    # windows [u_n, (u_{n+1} - u_n) / sigma]: FM learns the law of the second entry
    windows = jnp.stack([train[:, :-1], increments / sigma], axis=2)
    windows = windows.reshape((-1, 2, 1, COARSE_POINTS))
    print(f"KS L=100, 128 -> 32 points; {windows.shape[0]} training pairs, "
          f"{args.num_test} test ICs; increment std {sigma:.3f}")

    # ---- flow-matching teacher ----------------------------------------------------
    network = pdequinox.arch.ConvNet(
        1, flow.velocity_input_channels(1), 1, hidden_channels=args.hidden,
        depth=args.depth, kernel_size=5, key=keys[1],
    )
    common = {"batch_size": args.batch_size, "steps_per_dispatch": 1}
    start = time.perf_counter()
    trainer = tx.trainer.FlowMatchingTrainer(
        windows, optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, args.fm_steps, 0.05)),
        num_training_steps=args.fm_steps, **common,
    )
    velocity, fm_losses = trainer(flow.ConditionalVelocity(network), keys[2], spawn_tqdm=False)
    print(f"FM teacher: {args.fm_steps} updates in {time.perf_counter() - start:.0f} s")

    # ---- distillation ---------------------------------------------------------------
    start = time.perf_counter()
    if args.distill == "sg":
        trainer = tx.trainer.SemigroupDistillationTrainer(
            windows,
            optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, args.distill_steps, 0.05)),
            num_training_steps=args.distill_steps,
            # dyadic steps d = 1, 1/2, ..., 1/16; the loss compares average velocities
            step_sampler=tx.configuration.DyadicTimeSampler(max_level=4),
            velocity_space=True, **common,
        )
        flow_map, distill_losses = trainer(flow.FlowMap(velocity), keys[3], spawn_tqdm=False)
        distilled, distilled_name = flow.FlowMapStepper(flow_map, 1), "SG map, 1 step"
    else:
        trainer = tx.trainer.ProgressiveDistillationTrainer(
            windows, teacher=velocity, optimizer=optax.adam(1e-3),
            num_training_steps=args.distill_steps, num_teacher_steps=16, num_stages=4,
            **common,
        )
        student = flow.FlowMatchingStepper(flow.with_step_size_input(velocity), 16)
        distilled, distill_losses = trainer(student, keys[3], spawn_tqdm=False)
        distilled_name = "PD student, 1 step"
    print(f"{distilled_name}: distilled in {time.perf_counter() - start:.0f} s")

    # ---- ensemble rollouts ----------------------------------------------------------
    emulators = {
        "FM teacher, 16 Euler steps": flow.FlowMatchingStepper(velocity, 16, unroll=False),
        distilled_name: distilled,
        "FM teacher, 1 Euler step": flow.FlowMatchingStepper(velocity, 1),
    }
    reference = test[:, 1:]
    results = {}
    for name, inner in emulators.items():
        stepper = IncrementStepper(inner, sigma)
        rollout = eqx.filter_jit(lambda s, ic, k: tx.rollout(
            s, ic, args.test_steps, key=k, num_samples=args.members, batched=True))
        start = time.perf_counter()
        ensemble = rollout(stepper, test[:, 0], keys[4]).block_until_ready()
        result = score(ensemble, reference)
        result.update(ensemble=ensemble, seconds=time.perf_counter() - start,
                      nfe=inner.num_function_evaluations)
        results[name] = result

    horizons = [h for h in (1, 10, 30) if h <= args.test_steps]
    header = (f"{'emulator':<28s} {'NFE':>4s}" + "".join(f" {f'nRMSE@{h}':>9s}" for h in horizons)
              + f" {'HCT':>4s} {'CRPS@1':>7s} {'CRPS1-10':>8s} {'SSR1-10':>7s} {'HF ratio':>8s}")
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in results.items():
        median = np.median(np.asarray(r["nrmse_curves"]), axis=0)
        print(f"{name:<28s} {r['nfe']:>4d}" + "".join(f" {median[h - 1]:9.3f}" for h in horizons)
              + f" {r['hct']:>4d} {r['crps1']:7.4f} {r['crps10']:8.4f} {r['ssr10']:7.2f}"
              + f" {r['hf_ratio']:8.3f}")
    print("(nRMSE: median over members and ICs; HCT: steps with member-averaged Pearson "
          "correlation >= 0.8; HF ratio: late-time energy in wavenumbers 8-15, emulator / "
          f"reference; total {time.perf_counter() - start_all:.0f} s)")

    # ---- plots --------------------------------------------------------------------
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib not installed; skipping the plots (pip install trainax_fm[plot])")
        return results
    os.makedirs(args.out, exist_ok=True)
    paths = []
    for tag, name in (("teacher", "FM teacher, 16 Euler steps"), ("distilled", distilled_name)):
        path = os.path.join(args.out, f"flow_matching_ks_spacetime_{tag}.png")
        tx.plot.spacetime(
            results[name]["ensemble"][0, 0], reference[0], dt=DT, domain_extent=100.0,
            titles=(f"{name}: ensemble member 1", "coarse-grained reference", "difference"),
            save=path,
        )
        paths.append(path)
    path = os.path.join(args.out, "flow_matching_ks_error.png")
    tx.plot.error_over_time(
        {name: r["nrmse_curves"] for name, r in results.items()}, dt=DT,
        title="nRMSE of members (median and IQR)", save=path,
    )
    paths.append(path)
    figure = Figure(figsize=(5.5, 4))
    ax = figure.add_subplot()
    shells = np.arange(1, CUTOFF + 1)
    ax.loglog(shells, np.asarray(results[distilled_name]["ref_spectrum"])[1:CUTOFF + 1],
              "k-", lw=2, label="reference")
    for name, r in results.items():
        ax.loglog(shells, np.asarray(r["spectrum"])[1:CUTOFF + 1], "--", label=name)
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("energy")
    ax.set_title("energy spectra, mean over the second half of the rollouts")
    ax.legend(fontsize=8)
    path = os.path.join(args.out, "flow_matching_ks_spectra.png")
    figure.savefig(path, dpi=110)
    paths.append(path)
    path = os.path.join(args.out, "flow_matching_ks_loss.png")
    tx.plot.loss_history({"FM teacher": fm_losses, f"distillation ({args.distill})":
                          distill_losses}, title="training losses", save=path)
    paths.append(path)
    print("\n" + "\n".join(f"saved {p}" for p in paths))
    return results


if __name__ == "__main__":
    main()
