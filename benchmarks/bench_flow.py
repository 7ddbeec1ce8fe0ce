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

**(b) Coarse-grained Kuramoto-Sivashinsky.** `exponax` KS (conservative form) on
`L = 100` with 128 points (dt = 0.2, 5 sub-steps per emulator step, so the emulator
step is `Delta t = 1`) is coarse-grained by spectral truncation to the modes
`|k| <= 15` on 32 points. About a fifth of the energy sits in the discarded modes, so
the next coarse state is not a function of the current coarse state: the emulator must
sample it. The emulators predict the normalised increment `(u_{n+1} - u_n) / sigma`
(a thin wrapper adds it back), with a small periodic `pdequinox.arch.ConvNet` as the
velocity network `v(x_t, y, t)`:

- `teacher-16`: FM with the MSE loss, sampled with 16 Euler steps (16 network
    evaluations, NFE);
- `teacher Euler-1/2/4`: the same velocity with 1, 2, 4 Euler steps (no distillation;
    the baseline a distilled map must beat at equal cost);
- `SG-1/2/4`: a `FlowMap` `F_d = x + d v + d^2 (phi - v)` trained by semigroup
    distillation (`SemigroupDistillationTrainer`, dyadic steps) and sampled with 1, 2,
    4 map steps (2 NFE per map step);
- `PD-4/2/1`: progressive distillation (`ProgressiveDistillationTrainer`, K = 2,
    16 -> 8 -> 4 -> 2 -> 1 steps), the students of the stages that sample with 4, 2
    and 1 step(s) (1 NFE per step; the student takes the step size as an input);
- `teacher-16 (Sobolev)`: FM trained with `tx.loss.SobolevLoss` (`alpha = 1`,
    gradient weight `beta`, integer wavenumbers) instead of MSE;
- `MSE regression`: a deterministic ConvNet of the same size trained one-step with
    `SupervisedTrainer` (its ensemble is a point mass).

Each emulator rolls out an ensemble of 8 members from 16 unseen coarse initial states
for 60 steps (independent stochastic rollouts with `tx.rollout(..., key=...,
batched=True)`), in two halves of 30 steps; the second half is timed (`ms/step`: one
emulator step of all 128 states, compiled, on the shared CPU). Reported:

- `1-step CRPS`, `1-step SSR`: teacher-forced, 8 samples of the next state from each of
    240 true test states (every 4th step of the test trajectories): the quality of the
    learned conditional law itself (fair CRPS, `tx.metrics.crps`; spread-skill ratio
    `tx.metrics.spread_skill_ratio`, 1 = calibrated, 0 for a deterministic model);
- `nRMSE@h`: nRMSE of the members against the coarse-grained reference after 1, 10, 30
    and 60 steps (mean over members and ICs);
- `HCT`: high-correlation time (steps until the member-averaged Pearson correlation
    drops below 0.8, the crossing interpolated linearly between steps; the integer
    part is `tx.metrics.high_correlation_time`); `HCT mean`: the same for the
    ensemble mean;
- `CRPS 1-10`, `SSR 1-10`: CRPS averaged over rollout steps 1-10 and the spread-skill
    ratio over those steps;
- `HF energy ratio`: late-time (steps 31-60) energy of the members in the wavenumber
    shells 8..15 divided by that of the reference (1 = the right amount of small-scale
    energy); `spectrum err`: mean |log10| ratio of the late-time spectra, shells 1..15.

The targets (checked and printed): (T1) the 1-step distilled maps (SG-1: 2 NFE, PD-1:
1 NFE) are within 10% of teacher-16 on CRPS (1-step and rollout steps 1-10) and on the
correlation times, at >= 8x fewer NFE; (T2) the error never rises as map steps are
added (1-step CRPS and CRPS 1-10 of SG-1 >= SG-2 >= SG-4, and of PD-1 >= PD-2 >=
PD-4); (T3) the Sobolev-trained teacher's late-time high-wavenumber energy is closer
to the reference (|log ratio| smaller) than the MSE-trained teacher's.

Training details (case b): FM teachers 3000 Adam updates (batch 64, cosine schedule
from 1e-3); SG: 2000 updates (cosine from 1e-3), dyadic steps `d = 2^-k`,
`k = 0..4`, self-distillation target, `velocity_space=True`; PD: 4 stages of 600
updates (Adam 1e-3, one cosine cycle per stage), student initialised from the teacher
with a zero-weighted step-size channel (`with_step_size_input`). Every trainer uses
`steps_per_dispatch=1`: on this CPU a compiled multi-update loop of the ConvNet was
measured ~15x slower per update than one update per dispatch.

Run from the repository root:

```bash
python benchmarks/bench_flow.py            # both cases, ~10-12 min on 2 loaded CPU cores
python benchmarks/bench_flow.py --quick    # smoke run (< 1 min), numbers meaningless
python benchmarks/bench_flow.py --case b --md benchmarks/results/bench_flow.md
```

Seeds are fixed (`--seed`); the command, the timings of every phase and the tables are
printed. Needs the `pde` extra (exponax, pdequinox).
"""

import argparse
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


def increment_windows(coarse):
    """Windows `(S*T, 2, 1, N)` of `[u_n, (u_{n+1} - u_n) / sigma]` and `sigma`."""
    increments = coarse[:, 1:] - coarse[:, :-1]
    sigma = float(jnp.std(increments))
    windows = jnp.stack([coarse[:, :-1], increments / sigma], axis=2)
    return windows.reshape((-1, 2) + coarse.shape[2:]), sigma


def ks_network(cfg, in_channels, key):
    import pdequinox

    return pdequinox.arch.ConvNet(
        1, in_channels, 1, hidden_channels=cfg["b_hidden"], depth=cfg["b_depth"],
        kernel_size=5, key=key,
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


def evaluate(stepper, test, num_members, key):
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
    ics = jnp.tile(test[:, 0], (num_members, 1, 1))  # (M*B, 1, N), member-major
    start = time.perf_counter()
    first = roll(stepper, ics, key_a).block_until_ready()
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    second = roll(stepper, first[:, -1], key_b).block_until_ready()
    seconds = time.perf_counter() - start
    members = jnp.concatenate([first, second], axis=1)  # (M*B, T, 1, N)
    ensemble = members.reshape((num_members, num_ics) + members.shape[1:])
    reference = test[:, 1:]
    tiled = jnp.broadcast_to(reference, ensemble.shape).reshape(members.shape)
    nrmse = tx.metrics.nrmse(members, tiled, batched=True)
    correlation = tx.metrics.pearson_correlation(members, tiled, batched=True)
    mean_correlation = tx.metrics.pearson_correlation(
        jnp.mean(ensemble, axis=0), reference, batched=True)
    crps = tx.metrics.crps(ensemble, reference, axis=(0, 2, 3))  # per step
    ssr = tx.metrics.spread_skill_ratio(ensemble[:, :, :10], reference[:, :10])
    late = slice(num_steps // 2, num_steps)
    spec = jax.vmap(tx.metrics.energy_spectrum)
    pred_spec = jnp.mean(spec(ensemble[:, :, late].reshape((-1,) + ensemble.shape[3:])), 0)
    ref_spec = jnp.mean(spec(reference[:, late].reshape((-1,) + reference.shape[2:])), 0)
    high = slice(8, KS_CUTOFF + 1)
    return {
        "nfe": stepper.num_function_evaluations,
        "ms_per_step": 1e3 * seconds / half,
        "first_half_seconds": first_seconds,
        "nrmse": np.asarray(nrmse),
        "hct": crossing_time(correlation),
        "hct_mean": crossing_time(mean_correlation),
        "crps10": float(jnp.mean(crps[:10])),
        "ssr10": float(ssr),
        "hf_ratio": float(jnp.sum(pred_spec[high]) / jnp.sum(ref_spec[high])),
        "spec_err": float(jnp.mean(jnp.abs(jnp.log10(
            pred_spec[1:KS_CUTOFF + 1] / ref_spec[1:KS_CUTOFF + 1])))),
        "ensemble": ensemble,
        "pred_spec": pred_spec,
        "ref_spec": ref_spec,
    }


def case_ks(cfg, seed):
    keys = jax.random.split(jax.random.key(seed), 12)
    timings = {}
    start = time.perf_counter()
    # one solver run for both sets (one compilation); test ICs are unseen trajectories
    length = max(cfg["b_train_len"], cfg["b_test_len"])
    both = ks_data(cfg["b_train"] + cfg["b_test"], length, keys[0], warmup=cfg["b_warmup"])
    train = both[: cfg["b_train"], : cfg["b_train_len"] + 1]
    test = both[cfg["b_train"]:, : cfg["b_test_len"] + 1]
    windows, sigma = increment_windows(train)
    # teacher-forced test pairs (u_n, u_{n+1}): every 4th step of every test trajectory
    pairs = jnp.stack([test[:, :-1], test[:, 1:]], axis=2)[:, ::4].reshape(
        (-1, 2) + test.shape[2:])
    timings["data"] = time.perf_counter() - start
    log(f"(b) data: train {tuple(train.shape)}, test {tuple(test.shape)}, increment std "
        f"{sigma:.3f}, field std {float(jnp.std(train)):.3f}")

    in_channels = flow.velocity_input_channels(1)
    steps, batch = cfg["b_fm_steps"], cfg["b_batch"]
    sobolev = tx.loss.SobolevLoss(alpha=1.0, beta=cfg["b_sobolev_beta"])
    teachers = {}
    for name, loss in (("mse", tx.loss.MSELoss()), ("sobolev", sobolev)):
        start = time.perf_counter()
        trainer = tx.trainer.FlowMatchingTrainer(
            windows, optimizer=cosine_adam(cfg["b_lr"], steps), num_training_steps=steps,
            batch_size=batch, time_level_loss=loss, steps_per_dispatch=1,
        )
        velocity = flow.ConditionalVelocity(ks_network(cfg, in_channels, keys[2]))
        velocity, losses = trainer(velocity, keys[3], spawn_tqdm=False)
        teachers[name] = velocity
        timings[f"train FM teacher ({name})"] = time.perf_counter() - start
        log(f"(b) FM teacher ({name}) trained: loss {float(losses[-100:].mean()):.4f}, "
            f"{timings[f'train FM teacher ({name})']:.0f} s")
    teacher = teachers["mse"]

    start = time.perf_counter()
    # maps u_n to the normalised increment, the second entry of every window
    regression = ks_network(cfg, 1, keys[2])
    trainer = tx.trainer.SupervisedTrainer(
        windows, optimizer=cosine_adam(cfg["b_lr"], steps), num_training_steps=steps,
        batch_size=batch, steps_per_dispatch=1,
    )
    regression, reg_losses = trainer(regression, keys[4], spawn_tqdm=False)
    timings["train MSE regression"] = time.perf_counter() - start
    log(f"(b) regression trained: loss {float(reg_losses[-100:].mean()):.4f}")

    start = time.perf_counter()
    flow_map = flow.FlowMap(teacher)
    trainer = tx.trainer.SemigroupDistillationTrainer(
        windows, optimizer=cosine_adam(cfg["b_distill_lr"], cfg["b_sg_steps"]),
        num_training_steps=cfg["b_sg_steps"], batch_size=batch,
        step_sampler=tx.configuration.DyadicTimeSampler(max_level=cfg["b_sg_levels"]),
        velocity_space=True, steps_per_dispatch=1,
    )
    flow_map, sg_losses = trainer(flow_map, keys[5], spawn_tqdm=False)
    timings["train SG distillation"] = time.perf_counter() - start
    log(f"(b) SG distilled: loss {float(sg_losses[:50].mean()):.2e} -> "
        f"{float(sg_losses[-100:].mean()):.2e}, {timings['train SG distillation']:.0f} s")

    start = time.perf_counter()
    student = flow.FlowMatchingStepper(flow.with_step_size_input(teacher), 16)
    trainer = tx.trainer.ProgressiveDistillationTrainer(
        windows, teacher=teacher, optimizer=optax.adam(cfg["b_distill_lr"]),
        num_training_steps=cfg["b_pd_steps"], batch_size=batch, num_teacher_steps=16,
        num_stages=4, steps_per_dispatch=1,
    )
    pd_results = trainer.train(student, keys[6], spawn_tqdm=False)
    timings["train PD distillation (4 stages)"] = time.perf_counter() - start
    log("(b) PD distilled: final losses per stage "
        + ", ".join(f"{float(r.loss_history[-50:].mean()):.2e}" for r in pd_results)
        + f", {timings['train PD distillation (4 stages)']:.0f} s")
    pd = {r.stepper.num_steps: r.stepper for r in pd_results}

    # unroll the 16-step loops only on short ones (compile time on CPU)
    def fm(velocity, n):
        return flow.FlowMatchingStepper(velocity, n, unroll=n <= 4)

    emulators = {
        "teacher-16": fm(teacher, 16),
        "teacher Euler-1": fm(teacher, 1),
    }
    if not cfg["quick"]:  # same code path as Euler-1; skipped in the smoke run
        emulators.update({"teacher Euler-2": fm(teacher, 2), "teacher Euler-4": fm(teacher, 4)})
    emulators.update({
        "SG-1": flow.FlowMapStepper(flow_map, 1),
        "SG-2": flow.FlowMapStepper(flow_map, 2),
        "SG-4": flow.FlowMapStepper(flow_map, 4),
        "PD-4": pd[4],
        "PD-2": pd[2],
        "PD-1": pd[1],
        "teacher-16 (Sobolev)": fm(teachers["sobolev"], 16),
        "MSE regression": regression,
    })
    results = {}
    for index, (name, inner) in enumerate(emulators.items()):
        start = time.perf_counter()
        stepper = ResidualStepper(inner, sigma)
        results[name] = evaluate(stepper, test, cfg["b_members"], keys[8])
        results[name]["tf_crps"], results[name]["tf_ssr"] = one_step_scores(
            stepper, pairs, cfg["b_members"], keys[9])
        timings[f"evaluate {name}"] = time.perf_counter() - start
        r = results[name]
        log(f"(b) {name:<22s} NFE {r['nfe']:>2d}  1-step CRPS {r['tf_crps']:.4f}  "
            f"CRPS1-10 {r['crps10']:.4f}  HCT {r['hct']:.2f}  HF {r['hf_ratio']:.3f}  "
            f"({timings[f'evaluate {name}']:.0f} s)")

    horizons = [h for h in (1, 10, 30, 60) if h <= test.shape[1] - 1]
    header = (["emulator", "NFE/step", "ms/step"] + [f"nRMSE@{h}" for h in horizons]
              + ["HCT", "HCT mean", "1-step CRPS", "1-step SSR", "CRPS 1-10", "SSR 1-10",
                 "HF energy ratio", "spectrum err"])
    rows = []
    for name, r in results.items():
        rows.append([name, r["nfe"], fmt(r["ms_per_step"])]
                    + [fmt(r["nrmse"][h - 1]) for h in horizons]
                    + [f"{r['hct']:.2f}", f"{r['hct_mean']:.2f}", fmt(r["tf_crps"]),
                       fmt(r["tf_ssr"]),
                       fmt(r["crps10"]), fmt(r["ssr10"]),
                       fmt(r["hf_ratio"]), fmt(r["spec_err"])])
    table = markdown_table(header, rows)
    notes = (
        f"KS (conservative) L=100, 128 -> 32 points (modes |k| <= {KS_CUTOFF}), emulator "
        f"step 1.0; {cfg['b_train']} x {cfg['b_train_len']} training steps; ConvNet "
        f"hidden {cfg['b_hidden']}, depth {cfg['b_depth']}, kernel 5; FM {steps} updates, "
        f"SG {cfg['b_sg_steps']} updates (dyadic levels 0..{cfg['b_sg_levels']}), "
        f"PD 4 x {cfg['b_pd_steps']} updates; Sobolev beta = {cfg['b_sobolev_beta']}. "
        f"Test: {cfg['b_test']} ICs x {cfg['b_members']} members x "
        f"{cfg['b_test_len']} steps. ms/step: one emulator step of all "
        f"{cfg['b_test'] * cfg['b_members']} states (jit, 2 shared CPU cores). "
        "HCT in steps (= time units), the 0.8 crossing of the Pearson correlation "
        "interpolated linearly between steps (its integer part is "
        "tx.metrics.high_correlation_time); HF energy ratio: late-time energy in shells 8..15, "
        "emulator / reference; spectrum err: mean |log10| spectrum ratio, shells 1..15."
    )
    return table, notes, timings, results


def check_targets(results):
    """Evaluate the three targets on the case (b) results; returns printable lines."""
    lines = []
    t = results["teacher-16"]

    def rel(a, b):
        return f"{100 * (a / b - 1):+.1f}%"

    for name in ("SG-1", "PD-1"):
        r = results[name]
        ratio = t["nfe"] / r["nfe"]
        checks = {
            f"NFE {r['nfe']} vs {t['nfe']} ({ratio:.0f}x fewer)": ratio >= 8,
            f"1-step CRPS {r['tf_crps']:.4f} vs {t['tf_crps']:.4f} "
            f"({rel(r['tf_crps'], t['tf_crps'])})": r["tf_crps"] <= 1.1 * t["tf_crps"],
            f"CRPS 1-10 {r['crps10']:.4f} vs {t['crps10']:.4f} "
            f"({rel(r['crps10'], t['crps10'])})": r["crps10"] <= 1.1 * t["crps10"],
            f"HCT {r['hct']:.2f} vs {t['hct']:.2f}": r["hct"] >= 0.9 * t["hct"],
            f"HCT of the mean {r['hct_mean']:.2f} vs {t['hct_mean']:.2f}":
                r["hct_mean"] >= 0.9 * t["hct_mean"],
        }
        parts = [f"{text} [{'ok' if ok else 'FAIL'}]" for text, ok in checks.items()]
        lines.append(f"T1 {name}: " + "; ".join(parts)
                     + f" -> {'MET' if all(checks.values()) else 'NOT MET'}")
    for family in ("SG", "PD"):
        names = [f"{family}-1", f"{family}-2", f"{family}-4"]
        parts, ok = [], True
        for metric, label in (("tf_crps", "1-step CRPS"), ("crps10", "CRPS 1-10")):
            values = [results[n][metric] for n in names]
            ok &= values[0] >= values[1] >= values[2]
            parts.append(f"{label} " + " >= ".join(f"{v:.4f}" for v in values))
        lines.append(f"T2 {family} (1, 2, 4 steps): " + "; ".join(parts)
                     + f" -> {'MET' if ok else 'NOT MET'}")
    s = results["teacher-16 (Sobolev)"]
    ok = abs(math.log(s["hf_ratio"])) < abs(math.log(t["hf_ratio"]))
    lines.append(
        f"T3: late-time HF energy ratio Sobolev {s['hf_ratio']:.3f} vs MSE "
        f"{t['hf_ratio']:.3f} (1 = reference; spectrum err {s['spec_err']:.3f} vs "
        f"{t['spec_err']:.3f}) -> {'MET' if ok else 'NOT MET'}"
    )
    return lines


CONFIGS = {
    "default": {
        "a_train": 8192, "a_width": 64, "a_steps": 3000, "a_samples": 512,
        "b_train": 48, "b_train_len": 100, "b_test": 16, "b_test_len": 60,
        "b_hidden": 32, "b_depth": 6, "b_batch": 64, "b_lr": 1e-3, "b_fm_steps": 3000,
        "b_sg_steps": 2000, "b_sg_levels": 4, "b_pd_steps": 600, "b_distill_lr": 1e-3,
        "b_members": 8, "b_sobolev_beta": 0.02, "b_warmup": 200,
    },
    "quick": {
        "a_train": 512, "a_width": 16, "a_steps": 50, "a_samples": 64,
        "b_train": 4, "b_train_len": 10, "b_test": 2, "b_test_len": 6,
        "b_hidden": 4, "b_depth": 1, "b_batch": 8, "b_lr": 1e-3, "b_fm_steps": 10,
        "b_sg_steps": 5, "b_sg_levels": 3, "b_pd_steps": 3, "b_distill_lr": 1e-3,
        "b_members": 2, "b_sobolev_beta": 0.02, "b_warmup": 10,
    },
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min)")
    parser.add_argument("--case", choices=("a", "b", "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--md", default=None, help="also write the tables to this .md file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a configuration entry, e.g. b_fm_steps=5000")
    args = parser.parse_args(argv)
    cfg = dict(CONFIGS["quick" if args.quick else "default"], quick=args.quick)
    for item in args.set:
        name, value = item.split("=", 1)
        if name not in cfg or name == "quick":
            parser.error(f"unknown configuration entry {name!r}; known: {sorted(cfg)}")
        cfg[name] = type(cfg[name])(value)
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(f"command: {command}")
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPU cores; "
          f"config {'quick' if args.quick else 'default'}: {cfg}", flush=True)

    sections = [f"# bench_flow results\n\nCommand: `{command}` (seed {args.seed})\n"]
    all_timings = {}
    if args.case in ("a", "all"):
        table, notes, timings = case_bimodal(cfg, args.seed)
        all_timings.update({f"(a) {k}": v for k, v in timings.items()})
        text = f"## (a) Bimodal next state\n\n{table}\n\n{notes}\n"
        print("\n" + text, flush=True)
        sections.append(text)
    if args.case in ("b", "all"):
        table, notes, timings, results = case_ks(cfg, args.seed)
        all_timings.update({f"(b) {k}": v for k, v in timings.items()})
        targets = check_targets(results)
        text = (f"## (b) Coarse-grained Kuramoto-Sivashinsky\n\n{table}\n\n{notes}\n\n"
                "Targets:\n\n" + "\n".join(f"- {line}" for line in targets) + "\n")
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
        os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
        with open(args.md, "w") as stream:
            stream.write("\n".join(sections))
        print(f"wrote {args.md}")


if __name__ == "__main__":
    main()
