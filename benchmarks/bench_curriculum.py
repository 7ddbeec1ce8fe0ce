"""Rollout-length curriculum: one program with masked weights, or one per length?

A curriculum of rollout lengths 1 -> 2 -> 4 -> 8 over `--updates` updates (a quarter
each) on standardised Lorenz-96 data (40 variables, the `ResidualConvNet` of
`bench_stability.py`, batch 32, Adam), trained two ways:

- `masked`: `RolloutCurriculum(Supervised(8), "N/4:1,N/2:2,3N/4:4,N:8")`, one `train`
    call, compiled once at length 8; levels beyond the current length get weight 0
    but are still computed;
- `staged`: `train_stages` with four `Stage(Supervised(R_i), ...)` on the same windows
    (the optimizer state carried over), compiled once per length; every stage runs at
    its own cost.

Both train the same loss at every step (the stages draw other minibatches: each stage
has its own key). Reported: wall time of the first run (compile included) and
of a second, identical run (compiled programs reused from the cache), on the shared
2-core CPU. Run: `python benchmarks/bench_curriculum.py` (a few minutes).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_stability import ResidualConvNet

import trainax_fm as tx
from trainax_fm.configuration import RolloutCurriculum, Supervised

LENGTHS = (1, 2, 4, 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=2000)
    args = parser.parse_args()
    quarter = args.updates // 4
    data = tx.sample_data.lorenz96_rk4(32, temporal_horizon=200, key=jax.random.key(0))
    data = (data - jnp.mean(data)) / jnp.std(data)
    stepper = ResidualConvNet(jax.random.key(1))
    key = jax.random.key(2)
    optimizer = optax.adam(1e-3)
    schedule = ",".join(f"{(i + 1) * quarter}:{r}" for i, r in enumerate(LENGTHS))

    def masked():
        trainer = tx.trainer.ConfigurationTrainer(
            data, RolloutCurriculum(Supervised(LENGTHS[-1]), schedule),
            optimizer=optimizer, num_training_steps=4 * quarter, batch_size=32,
        )
        result = trainer.train(stepper, key, spawn_tqdm=False)
        return jax.block_until_ready(result.loss_history)

    def staged():
        trainer = tx.trainer.ConfigurationTrainer(
            data, Supervised(LENGTHS[-1]), optimizer=optimizer,
            num_training_steps=4 * quarter, batch_size=32,
        )
        stages = [
            tx.Stage(Supervised(r), optimizer, quarter, keep_optimizer_state=i > 0)
            for i, r in enumerate(LENGTHS)
        ]
        results = tx.train_stages(trainer, stages, stepper, key, spawn_tqdm=False)
        return jax.block_until_ready(jnp.concatenate([r.loss_history for r in results]))

    rows = []
    for name, run in (
        ("masked (one compile)", masked), ("staged (one compile per length)", staged)
    ):
        times = []
        for _ in range(2):
            start = time.perf_counter()
            losses = run()
            times.append(time.perf_counter() - start)
        rows.append((name, times, np.asarray(losses)))
        print(name, times, flush=True)
    print(f"\n`python benchmarks/bench_curriculum.py --updates {4 * quarter}` "
          f"(jax {jax.__version__}, {jax.default_backend()}, lengths {LENGTHS}):\n")
    print("| curriculum | first run s (compile included) | second run s (cached) |")
    print("|---|---|---|")
    for name, times, _ in rows:
        print(f"| {name} | {times[0]:.1f} | {times[1]:.1f} |")
    for name, _, losses in rows:
        print(f"{name}: mean loss of the last 100 updates {losses[-100:].mean():.3g}")


if __name__ == "__main__":
    main()
