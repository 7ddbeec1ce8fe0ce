"""Flow-matching emulators and their distillation on data with an uncertain next state.

On deterministic data the optimal flow-matching (FM) velocity is straight and one
Euler step is already exact, so FM is only worth its cost when the next state is
genuinely uncertain. Both cases here are built that way.

**(a) Bimodal next state.** A scalar state `y ~ U[-2, 2]` jumps to
`x1 = y + s B + sigma eps` with `B = +-1` (probability 1/2 each), `s = 1`,
`sigma = 0.1`. An MSE regression stepper (`SupervisedTrainer`, MLP) can only learn the
conditional mean `y`, where the true law has no mass; an FM emulator
(`FlowMatchingTrainer`, MLP velocity `v(x_t, y, t)`) sampled with Euler steps should
reproduce both modes. For 64 test values of `y` each model draws 512 samples (the
regression "ensemble" is a point mass) and is scored against 512 draws of the true
conditional: squared energy distance (`tx.metrics.energy_distance`, averaged over
`y`), CRPS (`tx.metrics.crps`, the model samples as the ensemble, averaged over the
true draws) and the fraction of samples near each mode (`|x - (y +- s)| < s/2`) and in
the gap between them (`|x - y| < s/2`). An "oracle" row scores a second independent
draw of the true conditional (the noise floor of the estimates); "FM Euler-1" shows
that a single Euler step of the FM velocity collapses to the mean as well
(`x0 + v(x0, y, 0) = E[x1 | y]`).

**(b) Coarse-grained Kuramoto-Sivashinsky, 1D (`--case ks1d`) and 2D (`--case ks2d`).**
1D: `exponax` KS (conservative form) on `L = 100` with 128 points (dt = 0.2, 5
sub-steps per emulator step, so `Delta t = 1`) coarse-grained by spectral truncation
to the modes `|k| <= 15` on 32 points. 2D: `tx.sample_data.coarse_kuramoto_sivashinsky`
(KS on `[0, 60)^2` with 64^2 points observed at 16^2, modes `|k_i| <= 7`,
`Delta t = 1`). In both about a fifth of the energy sits in the discarded modes, so the
next coarse state is not a function of the current one: the emulator must sample it.
The emulators predict the normalised increment `(u_{n+1} - u_n) / sigma` (a thin
wrapper adds it back) with a small periodic `pdequinox.arch.ConvNet`:

- `teacher-16`: flow matching (FM) with the MSE loss, sampled with 16 Euler steps
    (16 network evaluations, NFE); `teacher Euler-1/2/4`: the same velocity with 1, 2,
    4 steps (the baseline a distilled map must beat at equal cost);
- `PD-1/2/4`: progressive distillation (K = 2, 16 -> 8 -> 4 -> 2 -> 1 steps), the
    students that sample with 1, 2, 4 steps (1 NFE per step);
- `SG-1/2/4`: a semigroup-distilled `FlowMap` with 1, 2, 4 map steps (2 NFE each);
- `LSD-1/2/4`: Lagrangian distillation of the teacher (`lsd_teacher=1`, the default;
    0 for self-distillation), `MF-1/2/4`: MeanFlow (adaptive
    weighting), `SC-1/2/4`: shortcut models (EMA target, EMA weights sampled); all
    three with 1, 2, 4 steps of their step-size-conditioned velocity (1 NFE each);
- `teacher-16 (Sobolev)`: FM trained with `tx.loss.SobolevLoss` instead of MSE;
- `CRPS-1`: a CRPS-trained ensemble (`tx.trainer.CRPSEnsembleTrainer`, fair CRPS over
    `crps_members` members per window) of a `tx.NoiseInputStepper` on the same ConvNet
    with one noise channel, trained from scratch with the teacher's number of updates;
    it samples with 1 NFE per step;
- `SI-4`, `SI-16`: a stochastic interpolant (`tx.trainer.StochasticInterpolantTrainer`,
    Chen et al. 2024) on the same ConvNet, trained from scratch with the teacher's
    number of updates: the interpolant runs from the current state (a point mass)
    `u_n` to `u_n + (u_{n+1} - u_n) / sigma`, so the sampled displacement is the
    normalised increment the other emulators predict; sampled with 4 and 16
    Euler-Maruyama steps (4 and 16 NFE, the cost of `teacher Euler-4` and `teacher-16`)
    with the sampling diffusion `si_sampling_noise * (1 - s)` (the paper's Föllmer
    diffusion with `--set si_follmer=1`).
- `REF-n`: PDE-Refiner (`tx.trainer.PDERefinerTrainer`) of a
    `tx.flow.PDERefinerStepper` on the same ConvNet (its inputs `[u_noisy, u, k/K]`),
    `refiner_steps = K` refinement steps at noise levels
    `refiner_min_noise ** (k / K)`, trained from scratch with the teacher's number of
    updates; it samples with `n = K + 1` NFE per step, so it sits beside the `-n` rows
    of the other families at equal network evaluations.

Every few-step model starts from the MSE teacher (the progressive, Lagrangian, MeanFlow
and shortcut students via `with_step_size_input`) and gets the same number of
updates. Each emulator rolls out an ensemble of members from unseen coarse initial
states in two halves (the second is timed: `ms/step`), and gets:

- `1-step CRPS`, `1-step SSR`: teacher-forced, samples of the next state from true
    states (every 4th step of the test trajectories): the learned conditional law;
- `CRPS 1-10`, `SSR 1-10`: CRPS and spread-skill ratio of the rollouts, steps 1-10;
- `HCT`, `HCT mean`: high-correlation time (0.8 crossing of the Pearson correlation
    of the members / of the ensemble mean, interpolated between steps);
- `HF energy ratio`: late-time energy in the upper resolved shells, emulator /
    reference; `spectrum err`: mean |log10| ratio of the late-time spectra;
- `train s`: the model's own training wall time.

Every cell is the mean over `--num-seeds` seeds (half-range in brackets). The targets
(printed): (N1) at 1 NFE the best of LSD/MF/SC has a 1-step CRPS no worse than PD-1
(the only 1-NFE distilled baseline: a semigroup map step costs 2 NFE, so SG-1 is
printed beside it) and within 10% of teacher-16; (N2) the Sobolev teacher's late-time
high-wavenumber energy is closer to the reference than the MSE teacher's; (N3) the
CRPS-trained ensemble's 1-step CRPS is at most MeanFlow's at 1 NFE (MF-1) with a 1-step
spread-skill ratio within 0.9-1.1. (R1, no target of the issue, printed) PDE-Refiner's
1-step CRPS against the best other emulator at the same NFE.
`--teachers-only` trains and scores only the two teachers (a cheap N2 study);
`--n1-only` trains the MSE teacher and the few-step families of `--families` (default
all five) and scores only teacher-16 and the 1-NFE students (a cheaper N1 study);
`--set KEY=VALUE` overrides any entry of `CONFIGS` (budgets, LSD teacher and diagonal
share, MeanFlow time pairs, Sobolev beta per case).

Run from the repository root:

```bash
python benchmarks/bench_flow.py --small --case ks2d     # 2 seeds; `--small`: fewer updates
python benchmarks/bench_flow.py --small --case ks2d --teachers-only --num-seeds 6
python benchmarks/bench_flow.py --small --case ks2d --n1-only --families PD,MF,SC --seed 2 --num-seeds 6
python benchmarks/bench_flow.py --quick                 # smoke run, numbers meaningless
python benchmarks/bench_flow.py --case ks2d --seed 1 --num-seeds 1 --md out/s1.md
python benchmarks/bench_flow.py --small --case ks2d --merge out/s0_ks2d.json out/s1_ks2d.json
```

Seeds are fixed (`--seed`); the command, the timings of every phase and the tables are
printed. Needs the `pde` extra (exponax, pdequinox).
"""  # noqa: E501  (a shell command in a code block)

import argparse
import functools
import json
import math
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import trainax_fm as tx
from trainax_fm import flow

_T0 = time.perf_counter()


def log(message):
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", flush=True)


def cosine_adam(peak, steps):
    return optax.adam(optax.cosine_decay_schedule(peak, steps, alpha=0.05))


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits=3):
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.2e}"


# =====================================================================================
# (a) bimodal next state
# =====================================================================================


def bimodal_draw(key, y, shift, noise):
    key_b, key_e = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(key_b, 0.5, y.shape), 1.0, -1.0)
    return y + shift * sign + noise * jax.random.normal(key_e, y.shape)


def case_bimodal(cfg, seed):
    shift, noise = 1.0, 0.1
    keys = jax.random.split(jax.random.key(seed), 8)
    y = jax.random.uniform(keys[0], (cfg["a_train"], 1), minval=-2.0, maxval=2.0)
    x1 = bimodal_draw(keys[1], y, shift, noise)
    data = jnp.stack([y, x1], axis=1)  # (S, 2, 1): trajectories of two snapshots
    width, batch = cfg["a_width"], 256

    timings = {}
    start = time.perf_counter()
    regression = eqx.nn.MLP(1, 1, width, 2, activation=jax.nn.silu, key=keys[2])
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=cosine_adam(3e-3, cfg["a_steps"]),
        num_training_steps=cfg["a_steps"], batch_size=batch, steps_per_dispatch=1,
    )
    regression, reg_losses = trainer(regression, keys[3], spawn_tqdm=False)
    timings["train MSE regression"] = time.perf_counter() - start

    start = time.perf_counter()
    network = eqx.nn.MLP(
        flow.velocity_input_channels(1), 1, width, 3, activation=jax.nn.silu, key=keys[4]
    )
    trainer = tx.trainer.FlowMatchingTrainer(
        data, optimizer=cosine_adam(3e-3, cfg["a_steps"]),
        num_training_steps=cfg["a_steps"], batch_size=batch, steps_per_dispatch=1,
    )
    velocity, fm_losses = trainer(flow.ConditionalVelocity(network), keys[5], spawn_tqdm=False)
    timings["train FM"] = time.perf_counter() - start
    log(f"(a) trained: regression loss {float(reg_losses[-100:].mean()):.3f} (conditional "
        f"variance {shift**2 + noise**2:.3f}), FM loss {float(fm_losses[-100:].mean()):.3f}")

    num_y, num_samples = 64, cfg["a_samples"]
    y_test = jnp.linspace(-1.8, 1.8, num_y)[:, None]  # (P, 1)
    truth = jax.vmap(lambda k: bimodal_draw(k, y_test, shift, noise))(
        jax.random.split(keys[6], num_samples)
    )  # (K, P, 1)

    def sample_stepper(stepper, key):
        keys_ = jax.random.split(key, (num_samples, num_y))
        return jax.vmap(jax.vmap(lambda yi, k: stepper(yi, key=k)))(
            jnp.broadcast_to(y_test, (num_samples, num_y, 1)), keys_
        )

    models = {
        "oracle (2nd true draw)": (
            lambda key: jax.vmap(lambda k: bimodal_draw(k, y_test, shift, noise))(
                jax.random.split(key, num_samples)), 0),
        "MSE regression": (
            lambda key: jnp.broadcast_to(jax.vmap(regression)(y_test), truth.shape), 1),
    }
    for steps in (1, 4, 16):
        stepper = flow.FlowMatchingStepper(velocity, steps)
        models[f"FM Euler-{steps}"] = (
            eqx.filter_jit(lambda key, s=stepper: sample_stepper(s, key)), steps)

    rows = []
    for name, (sampler, nfe) in models.items():
        start = time.perf_counter()
        samples = sampler(keys[7])  # (K, P, 1)
        ed = jax.vmap(tx.metrics.energy_distance, in_axes=(1, 1))(samples, truth)
        ensemble = jnp.broadcast_to(samples[:, :, 0, None], (num_samples, num_y, num_samples))
        crps = tx.metrics.crps(ensemble, truth[:, :, 0].T)
        offset = samples[..., 0] - y_test[:, 0]
        upper = jnp.mean(jnp.abs(offset - shift) < shift / 2)
        lower = jnp.mean(jnp.abs(offset + shift) < shift / 2)
        gap = jnp.mean(jnp.abs(offset) < shift / 2)
        timings[f"score {name}"] = time.perf_counter() - start
        rows.append([name, nfe, fmt(jnp.mean(ed)), fmt(crps), f"{float(upper):.2f}",
                     f"{float(lower):.2f}", f"{float(gap):.2f}"])
    header = ["model", "NFE", "energy dist.^2", "CRPS", "near +s", "near -s", "in gap"]
    table = markdown_table(header, rows)
    notes = (
        f"y ~ U[-2, 2], x1 = y + {shift:g} B + {noise:g} eps (B = +-1); "
        f"{cfg['a_train']} training pairs, MLPs of width {width}, {cfg['a_steps']} "
        f"updates each; scored on {num_y} values of y with {num_samples} model samples and "
        f"{num_samples} true draws each. 'near +-s': |x - (y +- s)| < s/2; "
        "'in gap': |x - y| < s/2 (the true law puts ~0 there)."
    )
    return table, notes, timings


# =====================================================================================
# (b) coarse-grained Kuramoto-Sivashinsky
# =====================================================================================


class InterpolantDisplacement(eqx.Module):
    """`y -> interpolant(y) - y`: the displacement a stochastic interpolant samples
    from the current state, in the units of the normalised increment."""

    stepper: flow.StochasticInterpolantStepper

    needs_key = True

    @property
    def num_function_evaluations(self):
        return self.stepper.num_function_evaluations

    def __call__(self, y, *, key=None):
        return self.stepper(y, key=key) - y


class ResidualStepper(eqx.Module):
    """`y -> y + scale * inner(y)`: a stepper on normalised increments (stochastic or not)."""

    inner: eqx.Module
    scale: float = eqx.field(static=True)

    @property
    def needs_key(self):
        return getattr(self.inner, "needs_key", False)

    @property
    def num_function_evaluations(self):
        return getattr(self.inner, "num_function_evaluations", 1)

    def __call__(self, y, *, key=None):
        if self.needs_key:
            return y + self.scale * self.inner(y, key=key)
        return y + self.scale * self.inner(y)


KS_FINE_POINTS, KS_COARSE_POINTS, KS_CUTOFF = 128, 32, 15

# The two field cases: 1D KS (conservative form, the data of the earlier runs) and 2D
# KS from `tx.sample_data.coarse_kuramoto_sivashinsky`.
FIELD_CASES = {
    "ks1d": {"dims": 1, "cutoff": KS_CUTOFF, "high": (8, KS_CUTOFF), "kernel": 5,
             "title": "Coarse-grained 1D Kuramoto-Sivashinsky"},
    "ks2d": {"dims": 2, "cutoff": 7, "high": (4, 7), "kernel": 3,
             "title": "Coarse-grained 2D Kuramoto-Sivashinsky"},
}


def coarse_grain(u):
    """Keep the Fourier modes |k| <= KS_CUTOFF of a 128-point field, on 32 points."""
    spectrum = jnp.fft.rfft(u, axis=-1)[..., : KS_CUTOFF + 1]
    return jnp.fft.irfft(spectrum, n=KS_COARSE_POINTS, axis=-1) * (
        KS_COARSE_POINTS / KS_FINE_POINTS
    )


def ks_data(num_trajectories, num_steps, key, domain_extent=100.0, dt=1.0, substeps=5,
            warmup=200):
    """Coarse trajectories `(S, num_steps + 1, 1, 32)` of fine KS runs."""
    import exponax

    ks = exponax.stepper.KuramotoSivashinskyConservative(
        1, domain_extent, KS_FINE_POINTS, dt / substeps
    )
    ic = exponax.ic.RandomTruncatedFourierSeries(1, cutoff=5, max_one=True)
    u = exponax.build_ic_set(ic, num_points=KS_FINE_POINTS, num_samples=num_trajectories,
                             key=key)
    step = jax.jit(jax.vmap(lambda v: jax.lax.fori_loop(0, substeps, lambda i, w: ks(w), v)))
    for _ in range(warmup):
        u = step(u)
    states = [u]
    for _ in range(num_steps):
        u = step(u)
        states.append(u)
    return coarse_grain(jnp.stack(states, axis=1))


def field_data(case, num_trajectories, num_steps, key, warmup):
    if case == "ks1d":
        return ks_data(num_trajectories, num_steps, key, warmup=warmup)
    return tx.sample_data.coarse_kuramoto_sivashinsky(
        num_trajectories, num_steps + 1, num_warmup_steps=warmup // 2, key=key)


def increment_windows(coarse):
    """Windows `(S*T, 2, 1, *N)` of `[u_n, (u_{n+1} - u_n) / sigma]` and `sigma`."""
    increments = coarse[:, 1:] - coarse[:, :-1]
    sigma = float(jnp.std(increments))
    windows = jnp.stack([coarse[:, :-1], increments / sigma], axis=2)
    return windows.reshape((-1, 2) + coarse.shape[2:]), sigma


def field_network(cfg, case, in_channels, key):
    import pdequinox

    spec = FIELD_CASES[case]
    prefix = "b" if spec["dims"] == 1 else "c"
    return pdequinox.arch.ConvNet(
        spec["dims"], in_channels, 1, hidden_channels=cfg[f"{prefix}_hidden"],
        depth=cfg[f"{prefix}_depth"], kernel_size=spec["kernel"], key=key,
    )


def crossing_time(correlation, threshold=0.8):
    """High-correlation time in steps, with the crossing linearly interpolated.

    `tx.metrics.high_correlation_time` counts the whole steps that stay at or above
    `threshold` (its integer part); here the crossing between the last step above and
    the first step below is interpolated, which resolves differences below one step.
    """
    curve = np.asarray(correlation, dtype=float)
    steps = int(tx.metrics.high_correlation_time(correlation, threshold))
    if steps >= curve.size:
        return float(curve.size)
    if steps == 0:
        return 0.0
    above, below = curve[steps - 1], curve[steps]
    return steps + float((above - threshold) / (above - below))


def one_step_scores(stepper, pairs, num_members, key):
    """Teacher-forced one-step CRPS and spread-skill ratio on test pairs `(P, 2, 1, N)`.

    Every pair `(u_n, u_{n+1})` of the coarse reference gets `num_members` samples of
    the next state from the true current state, so this scores the learned conditional
    law itself, without rollout drift.
    """
    current, target = pairs[:, 0], pairs[:, 1]
    stochastic = getattr(stepper, "needs_key", False)

    @eqx.filter_jit
    def sample(s, k):
        if not stochastic:
            return jnp.broadcast_to(jax.vmap(s)(current), (num_members,) + current.shape)

        def member(k_member):
            return jax.vmap(lambda u, k_pair: s(u, key=k_pair))(
                current, jax.random.split(k_member, current.shape[0]))

        return jax.vmap(member)(jax.random.split(k, num_members))

    ensemble = sample(stepper, key)
    return (float(tx.metrics.crps(ensemble, target)),
            float(tx.metrics.spread_skill_ratio(ensemble, target)) if stochastic else 0.0)


def evaluate(stepper, test, num_members, key, spec):
    """Ensemble rollout in two halves (the second one is timed) and all metrics.

    The members are independent rollouts from tiled initial conditions (every
    trajectory of a batched rollout gets its own key), so both halves run the same
    compiled function: the first call compiles, the second is timed.
    """
    num_ics, num_steps = test.shape[0], test.shape[1] - 1
    half = num_steps // 2
    stochastic = getattr(stepper, "needs_key", False)

    @eqx.filter_jit
    def roll(s, ic, k):
        if stochastic:
            return tx.rollout(s, ic, half, key=k, batched=True)
        return tx.rollout(s, ic, half, batched=True)

    key_a, key_b = jax.random.split(key)
    ics = jnp.concatenate([test[:, 0]] * num_members)  # (M*B, 1, *N), member-major
    start = time.perf_counter()
    first = roll(stepper, ics, key_a).block_until_ready()
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    second = roll(stepper, first[:, -1], key_b).block_until_ready()
    seconds = time.perf_counter() - start
    members = jnp.concatenate([first, second], axis=1)  # (M*B, T, 1, *N)
    ensemble = members.reshape((num_members, num_ics) + members.shape[1:])
    reference = test[:, 1:]
    tiled = jnp.broadcast_to(reference, ensemble.shape).reshape(members.shape)
    nrmse = tx.metrics.nrmse(members, tiled, batched=True)
    correlation = tx.metrics.pearson_correlation(members, tiled, batched=True)
    mean_correlation = tx.metrics.pearson_correlation(
        jnp.mean(ensemble, axis=0), reference, batched=True)
    # per step: the mean over ICs, channels and space of the (ICs, T, C, *N) scores
    crps = tx.metrics.crps(ensemble, reference, axis=(0,) + tuple(range(2, reference.ndim)))
    ssr = tx.metrics.spread_skill_ratio(ensemble[:, :, :10], reference[:, :10])
    late = slice(num_steps // 2, num_steps)
    spectrum = jax.vmap(tx.metrics.energy_spectrum)
    pred_spec = jnp.mean(spectrum(ensemble[:, :, late].reshape((-1,) + ensemble.shape[3:])), 0)
    ref_spec = jnp.mean(spectrum(reference[:, late].reshape((-1,) + reference.shape[2:])), 0)
    low, high = spec["high"]
    shells, cutoff = slice(low, high + 1), spec["cutoff"]
    return {
        "nfe": stepper.num_function_evaluations,
        "ms_per_step": 1e3 * seconds / half,
        "first_half_seconds": first_seconds,
        "nrmse": np.asarray(nrmse),
        "hct": crossing_time(correlation),
        "hct_mean": crossing_time(mean_correlation),
        "crps10": float(jnp.mean(crps[:10])),
        "ssr10": float(ssr),
        "hf_ratio": float(jnp.sum(pred_spec[shells]) / jnp.sum(ref_spec[shells])),
        "spec_err": float(jnp.mean(jnp.abs(jnp.log10(
            pred_spec[1:cutoff + 1] / ref_spec[1:cutoff + 1])))),
    }


def train_timed(timings, label, trainer, stepper, key):
    start = time.perf_counter()
    result = trainer.train(stepper, key, spawn_tqdm=False)
    timings[label] = time.perf_counter() - start
    return result


def case_field(cfg, seed, case):
    """Train every emulator of one field case with one seed and score it.

    Returns `(results, info, timings)`: `results[name]` the metrics of each
    emulator (with its training wall time `train_s`), `info` the data summary.
    """
    spec = FIELD_CASES[case]
    prefix = "b" if spec["dims"] == 1 else "c"
    keys = jax.random.split(jax.random.key(seed), 12)
    timings = {}
    start = time.perf_counter()
    length = max(cfg[f"{prefix}_train_len"], cfg["test_len"])
    both = field_data(case, cfg[f"{prefix}_train"] + cfg["test_ics"], length, keys[0],
                      cfg["warmup"])
    train = both[: cfg[f"{prefix}_train"], : cfg[f"{prefix}_train_len"] + 1]
    test = both[cfg[f"{prefix}_train"]:, : cfg["test_len"] + 1]
    windows, sigma = increment_windows(train)
    # teacher-forced test pairs (u_n, u_{n+1}): every 4th step of every test trajectory
    pairs = jnp.stack([test[:, :-1], test[:, 1:]], axis=2)[:, ::4].reshape(
        (-1, 2) + test.shape[2:])
    timings["data"] = time.perf_counter() - start
    label = f"[{case} seed {seed}]"
    info = (f"train {tuple(train.shape)}, test {tuple(test.shape)}, increment std "
            f"{sigma:.3f}")
    log(f"[{case} seed {seed}] data: train {tuple(train.shape)}, test {tuple(test.shape)}, "
        f"increment std {sigma:.3f}, field std {float(jnp.std(train)):.3f}")

    batch, fm_steps, distill = (
        cfg["batch"], cfg[f"{prefix}_fm_steps"], cfg[f"{prefix}_distill_steps"]
    )
    common = dict(batch_size=batch, steps_per_dispatch=1)
    train_s = {}

    def fm_trainer(loss):
        return tx.trainer.FlowMatchingTrainer(
            windows, optimizer=cosine_adam(cfg["lr"], fm_steps), num_training_steps=fm_steps,
            time_level_loss=loss, **common)

    teachers = {}
    losses = {"teacher": tx.loss.MSELoss()}
    if not cfg["n1_only"]:
        losses["sobolev"] = tx.loss.SobolevLoss(alpha=1.0, beta=cfg[f"{prefix}_sobolev_beta"])
    for name, loss in losses.items():
        velocity = flow.ConditionalVelocity(field_network(cfg, case, 3, keys[2]))
        result = train_timed(timings, f"train FM ({name})", fm_trainer(loss), velocity, keys[3])
        teachers[name] = result.stepper
        train_s[name] = timings[f"train FM ({name})"]
        log(f"[{case} seed {seed}] FM {name}: loss "
            f"{float(result.loss_history[-100:].mean()):.4f}, {train_s[name]:.0f} s")
    teacher = teachers["teacher"]
    if cfg["teachers_only"]:
        emulators = {"teacher-16": (fm_stepper(teacher, 16), "teacher"),
                     "teacher-16 (Sobolev)": (fm_stepper(teachers["sobolev"], 16), "sobolev")}
        return score_emulators(emulators, train_s, cfg, label, test, pairs, sigma, keys,
                               spec), info, timings

    def distill_optimizer():
        return cosine_adam(cfg["distill_lr"], distill)

    def warm_student():  # every few-step model starts from the teacher, d-channel zero
        return flow.with_step_size_input(teacher)

    families = cfg["families"]
    students = {}  # family -> (number of steps -> its stepper)
    if "SG" in families:
        trainer = tx.trainer.SemigroupDistillationTrainer(
            windows, optimizer=distill_optimizer(), num_training_steps=distill,
            step_sampler=tx.configuration.DyadicTimeSampler(max_level=cfg["levels"]),
            velocity_space=True, **common)
        flow_map = train_timed(timings, "SG", trainer, flow.FlowMap(teacher), keys[5]).stepper
        students["SG"] = functools.partial(flow.FlowMapStepper, flow_map)
    if "PD" in families:
        trainer = tx.trainer.ProgressiveDistillationTrainer(
            windows, teacher=teacher, optimizer=optax.adam(cfg["distill_lr"]),
            num_training_steps=max(1, distill // 4), num_teacher_steps=16, num_stages=4,
            **common)
        start = time.perf_counter()
        pd_results = trainer.train(flow.FlowMatchingStepper(warm_student(), 16), keys[6],
                                   spawn_tqdm=False)
        timings["PD"] = time.perf_counter() - start
        pd = {r.stepper.num_steps: r.stepper.velocity for r in pd_results}
        students["PD"] = lambda n: fm_stepper(pd[n], n)
    if "LSD" in families:
        trainer = tx.trainer.LagrangianSelfDistillationTrainer(
            windows, optimizer=distill_optimizer(), num_training_steps=distill,
            time_sampler=tx.configuration.TimePairSampler(equal_share=cfg["lsd_equal_share"]),
            teacher=teacher if cfg["lsd_teacher"] else None, **common)
        lsd = train_timed(timings, "LSD", trainer, warm_student(), keys[7]).stepper
        students["LSD"] = functools.partial(fm_stepper, lsd)
    if "MF" in families:
        trainer = tx.trainer.MeanFlowTrainer(
            windows, optimizer=distill_optimizer(), num_training_steps=distill,
            time_sampler=tx.configuration.TimePairSampler(
                "logit_normal", mean=cfg["mf_mean"], std=cfg["mf_std"],
                equal_share=cfg[f"{prefix}_mf_equal_share"]),
            adaptive_weight_power=cfg["mf_power"], **common)
        meanflow = train_timed(timings, "MF", trainer, warm_student(), keys[8]).stepper
        students["MF"] = functools.partial(fm_stepper, meanflow)
    if "SC" in families:
        trainer = tx.trainer.ShortcutModelTrainer(
            windows, optimizer=distill_optimizer(), num_training_steps=distill,
            max_level=cfg["levels"], **common)
        shortcut = flow.EMAVelocity(warm_student(), decay=cfg["ema_decay"])
        shortcut = train_timed(timings, "SC", trainer, shortcut, keys[9]).stepper.ema
        students["SC"] = functools.partial(fm_stepper, shortcut)
    if "CRPS" in families:
        # From scratch, like the teachers: the state plus one noise channel in.
        trainer = tx.trainer.CRPSEnsembleTrainer(
            windows, optimizer=cosine_adam(cfg["lr"], fm_steps), num_training_steps=fm_steps,
            num_members=cfg["crps_members"], crps_alpha=cfg["crps_alpha"], **common)
        ensemble = tx.NoiseInputStepper(field_network(cfg, case, 2, keys[1]), 1)
        crps_stepper = train_timed(timings, "CRPS", trainer, ensemble, keys[4]).stepper
    if "SI" in families:
        # From scratch, like the teachers; the state is the interpolant's source.
        si_windows = jnp.stack([windows[:, 0], windows[:, 0] + windows[:, 1]], axis=1)
        trainer = tx.trainer.StochasticInterpolantTrainer(
            si_windows, optimizer=cosine_adam(cfg["lr"], fm_steps),
            num_training_steps=fm_steps, noise_scale=cfg["si_noise"], **common)
        drift = flow.ConditionalVelocity(
            field_network(cfg, case, 3, jax.random.fold_in(keys[1], 1)))
        drift = train_timed(timings, "SI", trainer, drift, jax.random.fold_in(keys[4], 1)
                            ).stepper

        def si_stepper(n):
            return InterpolantDisplacement(flow.StochasticInterpolantStepper(
                drift, n, noise_scale=cfg["si_noise"],
                sampling_noise_scale="follmer" if cfg["si_follmer"] else
                cfg["si_sampling_noise"], unroll=n <= 4))
    if "REF" in families:
        # From scratch too; K + 1 network evaluations per step.
        refinement = dict(num_refinement_steps=cfg["refiner_steps"],
                          min_noise_std=cfg["refiner_min_noise"])
        trainer = tx.trainer.PDERefinerTrainer(
            windows, optimizer=cosine_adam(cfg["lr"], fm_steps), num_training_steps=fm_steps,
            **refinement, **common)
        refiner = flow.PDERefinerStepper(
            flow.ConditionalVelocity(field_network(cfg, case, 3, keys[1])), **refinement)
        refiner = train_timed(timings, "REF", trainer, refiner, keys[4]).stepper
    train_s.update({family: timings[family] for family in families})
    log(f"[{case} seed {seed}] distilled/trained: "
        + ", ".join(f"{family} {timings[family]:.0f} s" for family in families))

    emulators = {"teacher-16": (fm_stepper(teacher, 16), "teacher")}
    step_counts = (1,) if cfg["n1_only"] else (1, 2, 4)
    if not cfg["n1_only"]:
        emulators.update({f"teacher Euler-{n}": (fm_stepper(teacher, n), "teacher")
                          for n in step_counts})
    for n in step_counts:
        for family in FAMILIES:
            if family in students:
                emulators[f"{family}-{n}"] = (students[family](n), family)
    if "CRPS" in families:
        emulators["CRPS-1"] = (crps_stepper, "CRPS")
    if "SI" in families:
        emulators.update({f"SI-{n}": (si_stepper(n), "SI")
                          for n in ((16,) if cfg["n1_only"] else (4, 16))})
    if "REF" in families:
        emulators[f"REF-{refiner.num_function_evaluations}"] = (refiner, "REF")
    if not cfg["n1_only"]:
        emulators["teacher-16 (Sobolev)"] = (fm_stepper(teachers["sobolev"], 16), "sobolev")
    return score_emulators(emulators, train_s, cfg, label, test, pairs, sigma, keys,
                           spec), info, timings


def fm_stepper(velocity, num_steps):
    # unroll the 16-step loops only on short ones (compile time on CPU)
    return flow.FlowMatchingStepper(velocity, num_steps, unroll=num_steps <= 4)


def score_emulators(emulators, train_s, cfg, label, test, pairs, sigma, keys, spec):
    """Roll out and score every `name -> (stepper, training family)` of one seed."""
    results = {}
    for name, (inner, family) in emulators.items():
        start = time.perf_counter()
        stepper = ResidualStepper(inner, sigma)
        results[name] = evaluate(stepper, test, cfg["members"], keys[10], spec)
        results[name]["tf_crps"], results[name]["tf_ssr"] = one_step_scores(
            stepper, pairs, cfg["members"], keys[11])
        results[name]["train_s"] = train_s[family]
        r = results[name]
        log(f"{label} {name:<21s} NFE {r['nfe']:>2d}  1-step CRPS "
            f"{r['tf_crps']:.4f}  CRPS1-10 {r['crps10']:.4f}  HCT {r['hct']:.2f}  HF "
            f"{r['hf_ratio']:.3f}  ({time.perf_counter() - start:.0f} s)")
    return results


METRICS = (  # (key, column, digits)
    ("train_s", "train s", 3), ("ms_per_step", "ms/step", 3), ("tf_crps", "1-step CRPS", 3),
    ("tf_ssr", "1-step SSR", 2), ("crps10", "CRPS 1-10", 3), ("ssr10", "SSR 1-10", 2),
    ("hct", "HCT", 3), ("hct_mean", "HCT mean", 3), ("hf_ratio", "HF energy ratio", 3),
    ("spec_err", "spectrum err", 2),
)


def seed_table(per_seed):
    """Mean over seeds, with the half-range of the seeds in brackets."""
    names = list(per_seed[0])
    header = ["emulator", "NFE/step"] + [column for _, column, _ in METRICS]
    rows = []
    for name in names:
        row = [name, per_seed[0][name]["nfe"]]
        for key, _, digits in METRICS:
            values = np.array([results[name][key] for results in per_seed])
            cell = fmt(values.mean(), digits)
            if len(values) > 1:
                cell += f" ({fmt((values.max() - values.min()) / 2, 2)})"
            row.append(cell)
        rows.append(row)
    return markdown_table(header, rows)


def mean_over_seeds(per_seed):
    return {name: {key: float(np.mean([r[name][key] for r in per_seed]))
                   for key in ("nfe", "tf_crps", "tf_ssr", "crps10", "hct", "hf_ratio",
                               "spec_err")}
            for name in per_seed[0]}


def check_targets(results, case):
    """The targets of the issue on the seed means of one field case; printable lines.

    N1 compares like with like, *at 1 network evaluation*: the 1-NFE students of the
    new families against the 1-NFE progressive student. A semigroup map step costs 2
    NFE (velocity and correction), so SG-1 is printed beside it but is no 1-NFE entry.
    """
    lines = []
    t = results["teacher-16"]

    def rel(a, b):
        return f"{100 * (a / b - 1):+.1f}%"

    one_nfe = {f: results[f"{f}-1"]["tf_crps"] for f in ("LSD", "MF", "SC")
               if f"{f}-1" in results}
    if "PD-1" in results and one_nfe:
        best_new = min(one_nfe, key=one_nfe.get)
        pd = results["PD-1"]["tf_crps"]
        ok_a = one_nfe[best_new] <= pd
        ok_b = one_nfe[best_new] <= 1.1 * t["tf_crps"]
        semigroup = (f" (SG-1, {results['SG-1']['nfe']:.0f} NFE: "
                     f"{results['SG-1']['tf_crps']:.4f})" if "SG-1" in results else "")
        lines.append(
            f"N1 ({case}): best new method at 1 NFE {best_new}-1 1-step CRPS "
            f"{one_nfe[best_new]:.4f} vs PD-1 (the only 1-NFE distilled baseline) "
            f"{pd:.4f} [{'ok' if ok_a else 'FAIL'}]{semigroup}; vs "
            f"teacher-16 {t['tf_crps']:.4f} ({rel(one_nfe[best_new], t['tf_crps'])}) "
            f"[{'ok' if ok_b else 'FAIL'}] -> {'MET' if ok_a and ok_b else 'NOT MET'}")
    if "CRPS-1" in results and "MF-1" in results:
        c, mf = results["CRPS-1"], results["MF-1"]
        ok_a, ok_b = c["tf_crps"] <= mf["tf_crps"], 0.9 <= c["tf_ssr"] <= 1.1
        lines.append(
            f"N3 ({case}): CRPS-1 1-step CRPS {c['tf_crps']:.4f} vs MF-1 {mf['tf_crps']:.4f} "
            f"({rel(c['tf_crps'], mf['tf_crps'])}) [{'ok' if ok_a else 'FAIL'}]; 1-step SSR "
            f"{c['tf_ssr']:.2f} [{'ok' if ok_b else 'FAIL'}] -> "
            f"{'MET' if ok_a and ok_b else 'NOT MET'}")
    for name in [name for name in results if name.startswith("REF-")]:
        nfe = name.split("-")[1]
        peers = {other: r["tf_crps"] for other, r in results.items()
                 if other.endswith(f"-{nfe}") and not other.startswith("REF-")}
        line = f"R1 ({case}): {name} ({nfe} NFE) 1-step CRPS {results[name]['tf_crps']:.4f}"
        if peers:
            best = min(peers, key=peers.get)
            line += (f" vs the best other {nfe}-NFE emulator {best} {peers[best]:.4f} "
                     f"({rel(results[name]['tf_crps'], peers[best])}) -> "
                     f"{'better' if results[name]['tf_crps'] < peers[best] else 'not better'}")
        else:
            line += f"; no other {nfe}-NFE emulator in this run"
        lines.append(line)
    if "teacher-16 (Sobolev)" not in results:
        return lines
    s = results["teacher-16 (Sobolev)"]
    ok = abs(math.log(s["hf_ratio"])) < abs(math.log(t["hf_ratio"]))
    lines.append(
        f"N2 ({case}): late-time HF energy ratio Sobolev {s['hf_ratio']:.3f} vs MSE "
        f"{t['hf_ratio']:.3f} (1 = reference; spectrum err {s['spec_err']:.3f} vs "
        f"{t['spec_err']:.3f}) -> {'MET' if ok else 'NOT MET'}")
    return lines


# The few-step families, in table order: the baselines, then the new ones.
FAMILIES = ("PD", "SG", "LSD", "MF", "SC")
# What `--families` may name: the few-step families, the CRPS-trained ensemble, the
# stochastic interpolant and PDE-Refiner.
TRAINED_FAMILIES = FAMILIES + ("CRPS", "SI", "REF")

# The few-step options every size shares (override with --set KEY=VALUE).
FEW_STEP_OPTIONS = {
    "lr": 1e-3, "distill_lr": 1e-3, "mf_power": 1.0, "mf_mean": 0.4, "mf_std": 1.0,
    "lsd_equal_share": 0.25, "lsd_teacher": 1, "crps_members": 4,
    "crps_alpha": 1.0, "si_noise": 1.0, "si_sampling_noise": 1.0,
    "si_follmer": 0, "refiner_steps": 3, "refiner_min_noise": 1e-3,
}

CONFIGS = {
    "default": {
        "a_train": 8192, "a_width": 64, "a_steps": 3000, "a_samples": 512,
        "b_train": 48, "b_train_len": 100, "b_hidden": 32, "b_depth": 6,
        "b_fm_steps": 2000, "b_distill_steps": 2000, "b_sobolev_beta": 0.02,
        "b_mf_equal_share": 0.75,
        "c_train": 24, "c_train_len": 60, "c_hidden": 16, "c_depth": 4,
        "c_fm_steps": 1500, "c_distill_steps": 3000, "c_sobolev_beta": 0.5,
        "c_mf_equal_share": 0.5,
        "test_ics": 12, "test_len": 40, "members": 8, "batch": 32, "levels": 4,
        "ema_decay": 0.99, "warmup": 200,
        **FEW_STEP_OPTIONS,
    },
    # what the committed results ran with on the shared, loaded CPU (~25 min per case)
    "small": {
        "a_train": 8192, "a_width": 64, "a_steps": 3000, "a_samples": 512,
        "b_train": 48, "b_train_len": 100, "b_hidden": 32, "b_depth": 6,
        "b_fm_steps": 1500, "b_distill_steps": 1500, "b_sobolev_beta": 0.02,
        "b_mf_equal_share": 0.75,
        "c_train": 16, "c_train_len": 50, "c_hidden": 16, "c_depth": 4,
        "c_fm_steps": 1200, "c_distill_steps": 3000, "c_sobolev_beta": 0.5,
        "c_mf_equal_share": 0.5,
        "test_ics": 8, "test_len": 40, "members": 8, "batch": 32, "levels": 4,
        "ema_decay": 0.99, "warmup": 200,
        **FEW_STEP_OPTIONS,
    },
    "quick": {
        "a_train": 512, "a_width": 16, "a_steps": 50, "a_samples": 64,
        "b_train": 4, "b_train_len": 10, "b_hidden": 4, "b_depth": 1,
        "b_fm_steps": 10, "b_distill_steps": 8, "b_sobolev_beta": 0.02,
        "b_mf_equal_share": 0.75,
        "c_train": 3, "c_train_len": 8, "c_hidden": 4, "c_depth": 1,
        "c_fm_steps": 10, "c_distill_steps": 8, "c_sobolev_beta": 0.5,
        "c_mf_equal_share": 0.5,
        "test_ics": 2, "test_len": 12, "members": 2, "batch": 8, "levels": 3,
        "ema_decay": 0.9, "warmup": 10,
        **FEW_STEP_OPTIONS,
    },
}


def field_notes(cfg, case, infos):
    spec = FIELD_CASES[case]
    prefix = "b" if spec["dims"] == 1 else "c"
    data = ("KS (conservative form) L=100, 128 -> 32 points (modes |k| <= 15), emulator "
            "step 1.0" if case == "ks1d" else
            "tx.sample_data.coarse_kuramoto_sivashinsky: 2D KS L=60, 64^2 -> 16^2 points "
            "(modes |k_i| <= 7), emulator step 1.0")
    low, high = spec["high"]
    crps_score = ("fair CRPS" if cfg["crps_alpha"] == 1
                  else f"almost-fair CRPS, alpha {cfg['crps_alpha']}")
    few_step = (
        f"few-step families {', '.join(cfg['families'])}; "
        f"every few-step model starts from the MSE teacher and gets "
        f"{cfg[prefix + '_distill_steps']} updates (PD: 4 stages of a quarter); SG and SC "
        f"dyadic levels 0..{cfg['levels']}; LSD "
        f"{'distillation from the MSE teacher' if cfg['lsd_teacher'] else 'self-distillation'}"
        f" (uniform TimePairSampler, diagonal share {cfg['lsd_equal_share']}); MF "
        f"logit-normal pairs (mean {cfg['mf_mean']}, std {cfg['mf_std']}, diagonal share "
        f"{cfg[prefix + '_mf_equal_share']}), adaptive weight power {cfg['mf_power']}; "
        f"SC EMA target "
        f"(decay {cfg['ema_decay']}) and EMA weights sampled; "
        f"CRPS: {cfg['crps_members']} members per window, "
        f"{crps_score}, "
        f"{cfg[prefix + '_fm_steps']} updates from scratch; "
        f"SI: noise scale {cfg['si_noise']}, beta(s) = s^2, sampling diffusion "
        + ("Foellmer" if cfg["si_follmer"] else f"{cfg['si_sampling_noise']} (1 - s)")
        + f", {cfg[prefix + '_fm_steps']} updates from scratch; "
        f"PDE-Refiner: K = {cfg['refiner_steps']} refinement steps, min noise std "
        f"{cfg['refiner_min_noise']}, {cfg[prefix + '_fm_steps']} updates from scratch; "
    )
    return (
        f"{data}; {infos[0]}. ConvNet hidden {cfg[prefix + '_hidden']}, depth "
        f"{cfg[prefix + '_depth']}, kernel {spec['kernel']}; FM teachers "
        f"{cfg[prefix + '_fm_steps']} updates (batch {cfg['batch']}); "
        f"{'' if cfg['teachers_only'] else few_step}"
        f"Sobolev beta = {cfg[prefix + '_sobolev_beta']}. Test: "
        f"{cfg['test_ics']} ICs x {cfg['members']} members x {cfg['test_len']} steps. "
        "Cells: mean over the seeds (half-range in brackets). train s: wall time of that "
        "model's own training on the machine of the run (a few-step model's "
        "excludes the teacher it starts from); ms/step: one emulator step of all "
        f"{cfg['test_ics'] * cfg['members']} states (jit). HCT in steps, 0.8 crossing "
        f"interpolated; HF energy ratio: late-time energy in shells {low}..{high}, "
        f"emulator / reference; spectrum err: mean |log10| spectrum ratio, shells "
        f"1..{spec['cutoff']}."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, numbers meaningless")
    parser.add_argument("--small", action="store_true", help="fewer updates and test ICs")
    parser.add_argument("--case", choices=("a", "ks1d", "ks2d", "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-seeds", type=int, default=2)
    parser.add_argument("--md", default=None, help="also write the tables to this .md file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a configuration entry, e.g. b_fm_steps=5000")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--teachers-only", action="store_true",
                      help="train and score only the MSE and Sobolev FM teachers (N2)")
    only.add_argument("--n1-only", action="store_true",
                      help="train the MSE teacher and --families only; score teacher-16 "
                           "and the 1-NFE students (N1)")
    parser.add_argument("--families", default=",".join(TRAINED_FAMILIES),
                        help=f"few-step families (and the CRPS ensemble, the stochastic "
                             f"interpolant, PDE-Refiner) to train, "
                             f"comma-separated from {','.join(TRAINED_FAMILIES)} "
                             "(default all)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="no training: the table of --case from the per-seed JSON "
                             "files of earlier runs (e.g. one run per seed)")
    args = parser.parse_args(argv)
    size = "quick" if args.quick else "small" if args.small else "default"
    families = tuple(f for f in args.families.split(",") if f)
    unknown = sorted(set(families) - set(TRAINED_FAMILIES))
    if unknown or not families:
        parser.error(f"--families {args.families!r}: unknown family {unknown}; expected a "
                     f"comma-separated subset of {','.join(TRAINED_FAMILIES)}")
    cfg = dict(CONFIGS[size], quick=args.quick, teachers_only=args.teachers_only,
               n1_only=args.n1_only, families=families)
    for item in args.set:
        name, value = item.split("=", 1)
        if name not in cfg or name in ("quick", "teachers_only", "n1_only", "families"):
            parser.error(f"unknown configuration entry {name!r}; known: {sorted(cfg)}")
        cfg[name] = type(cfg[name])(value)
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(f"command: {command}")
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPU cores; "
          f"config {size}: {cfg}", flush=True)

    if args.merge:
        return merge(args, cfg, command)
    seeds = list(range(args.seed, args.seed + args.num_seeds))
    if args.md:
        os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
    sections = [f"# bench_flow results\n\nCommand: `{command}` (seeds {seeds})\n"]
    all_timings = {}
    if args.case in ("a", "all"):
        table, notes, timings = case_bimodal(cfg, args.seed)
        all_timings.update({f"(a) {k}": v for k, v in timings.items()})
        text = f"## (a) Bimodal next state (seed {args.seed})\n\n{table}\n\n{notes}\n"
        print("\n" + text, flush=True)
        sections.append(text)
    for case in ("ks1d", "ks2d"):
        if args.case not in (case, "all"):
            continue
        per_seed, infos = [], []
        for seed in seeds:
            results, info, timings = case_field(cfg, seed, case)
            per_seed.append(results)
            infos.append(info)
            all_timings.update({f"({case}, seed {seed}) {k}": v for k, v in timings.items()})
        if args.md:  # the raw numbers, so tables can be rebuilt without a rerun
            scalars = [{name: {k: v for k, v in r.items() if k != "nrmse"}
                        for name, r in results.items()} for results in per_seed]
            with open(os.path.splitext(args.md)[0] + f"_{case}.json", "w") as stream:
                json.dump(scalars, stream, indent=1)
        text = case_section(case, cfg, per_seed, infos)
        print("\n" + text, flush=True)
        sections.append(text)
    total = time.perf_counter() - _T0
    timing_text = "## Timings (s)\n\n" + markdown_table(
        ["phase", "seconds"],
        [[k, f"{v:.1f}"] for k, v in all_timings.items()] + [["total", f"{total:.1f}"]],
    ) + "\n"
    print(timing_text, flush=True)
    sections.append(timing_text)
    if args.md:
        with open(args.md, "w") as stream:
            stream.write("\n".join(sections))
        print(f"wrote {args.md}")


def case_section(case, cfg, per_seed, infos):
    targets = check_targets(mean_over_seeds(per_seed), case)
    return (f"## {FIELD_CASES[case]['title']}\n\n{seed_table(per_seed)}\n\n"
            f"{field_notes(cfg, case, infos)}\n\nTargets (seed means):\n\n"
            + "\n".join(f"- {line}" for line in targets) + "\n")


def merge(args, cfg, command):
    """The table of one field case from the JSON files of runs with one seed each."""
    if args.case not in FIELD_CASES:
        raise SystemExit("--merge needs --case ks1d or --case ks2d")
    per_seed = []
    for path in args.merge:
        with open(path) as stream:
            per_seed.extend(json.load(stream))
    text = case_section(args.case, cfg, per_seed, [f"{len(per_seed)} seeds from {args.merge}"])
    print(text)
    if args.md:
        with open(args.md, "w") as stream:
            stream.write(f"Command: `{command}`\n\n{text}")


if __name__ == "__main__":
    main()
