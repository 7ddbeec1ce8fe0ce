"""What conditioning and block steppers cost (or save), measured on the training engine.

1. **Conditioning overhead.** Supervised training (rollout 3, batch 32, 1D periodic
   ConvNet of 3 layers, 64 points) on `advection_1d_varying_speed` data, as plain
   trajectories with a network of 1 input channel, and as `ConditionedTrajectories`
   with a `ConditionedNetwork` of 2 input channels (the speed as a constant channel).
   The difference is the gather of the constants, their binding and the one extra
   input channel.
2. **Block rollouts.** `tx.rollout` of 512 states with a one-step ConvNet (512 calls),
   with `BlockStepper.from_one_step` of it (k=4, 128 calls; same arithmetic, fewer scan
   iterations) and with a learned block network (1 -> 4 channels, 128 calls).

Times are medians of `--repeats` interleaved repetitions after a compiling call.
Run: `python benchmarks/bench_conditioned_block.py` (about a minute on 2 CPU cores).
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import optax

import trainax_fm as tx

NUM_POINTS, WIDTH, BATCH, STEPS = 64, 16, 32, 200


def convnet(in_channels, out_channels, key):
    k1, k2, k3 = jax.random.split(key, 3)
    conv = lambda i, o, k: eqx.nn.Conv1d(i, o, 5, padding=2, padding_mode="CIRCULAR", key=k)  # noqa: E731
    return eqx.nn.Sequential([
        conv(in_channels, WIDTH, k1), eqx.nn.Lambda(jax.nn.relu),
        conv(WIDTH, WIDTH, k2), eqx.nn.Lambda(jax.nn.relu),
        conv(WIDTH, out_channels, k3),
    ])


def training_time(data, stepper):
    trainer = tx.trainer.SupervisedTrainer(
        data, optimizer=optax.adam(1e-3), num_training_steps=STEPS, batch_size=BATCH,
        num_rollout_steps=3,
    )
    key = jax.random.key(1)

    def run():
        begin = time.perf_counter()
        result = trainer.train(stepper, key, spawn_tqdm=False)
        jax.block_until_ready(result.loss_history)
        return time.perf_counter() - begin

    return run


def rollout_time(stepper, ic, num_calls):
    def run():
        begin = time.perf_counter()
        jax.block_until_ready(tx.rollout(stepper, ic, num_calls, batched=True))
        return time.perf_counter() - begin

    return run


def measure(runs: dict, repeats: int) -> dict:
    for run in runs.values():
        run()  # compile
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():  # interleaved, so load changes hit all alike
            times[name].append(run())
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    key = jax.random.key(0)
    data = tx.sample_data.advection_1d_varying_speed(
        NUM_POINTS, 32, temporal_horizon=40, key=key
    )
    train = measure(
        {
            "plain (1 input channel)": training_time(data.trajectories, convnet(1, 1, key)),
            "conditioned (+1 constant channel)": training_time(
                data, tx.ConditionedNetwork(convnet(tx.conditioned_channels(1, 1), 1, key))
            ),
        },
        args.repeats,
    )
    print(f"| training, {STEPS} updates | seconds | updates/s |")
    print("| --- | --- | --- |")
    for name, seconds in train.items():
        print(f"| {name} | {seconds:.3f} | {STEPS / seconds:.0f} |")

    one_step = convnet(1, 1, key)
    ic = data.trajectories[:, 0]
    rollouts = measure(
        {
            "one-step stepper, 512 calls": rollout_time(one_step, ic, 512),
            "BlockStepper.from_one_step (k=4), 128 calls": rollout_time(
                tx.BlockStepper.from_one_step(one_step, 4), ic, 128
            ),
            "learned BlockStepper (1 -> 4 channels), 128 calls": rollout_time(
                tx.BlockStepper(convnet(1, 4, key), 4), ic, 128
            ),
        },
        args.repeats,
    )
    print("\n| rollout of 512 states, batch 32 | seconds |")
    print("| --- | --- |")
    for name, seconds in rollouts.items():
        print(f"| {name} | {seconds:.4f} |")



if __name__ == "__main__":
    main()
