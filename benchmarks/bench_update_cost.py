"""Cost of one update of a configuration, as a ratio to one-step `Supervised(1)` training
of the same network (issue 23: every new method reports this figure).

One update = loss, gradient and an Adam step, jitted; timed as the median of
`--repeats` rounds of `--updates` updates each, after compilation. Network: a 1D
`pdequinox`-free conv net (5 layers, 16 channels, 1 channel in and out) on `--points`
grid points, batch `--batch`, random data of unit variance.

    python benchmarks/bench_update_cost.py --cases sinkhorn,mmd
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import optax

import trainax_fm as tx
from trainax_fm import configuration as c


class ConvNet(eqx.Module):
    layers: list

    def __init__(self, in_channels, out_channels, width, depth, key):
        keys = jax.random.split(key, depth)
        sizes = [in_channels] + [width] * (depth - 1) + [out_channels]
        self.layers = [
            eqx.nn.Conv1d(a, b, 5, padding=2, padding_mode="CIRCULAR", key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        ]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)


def cases(num_rollout_steps):
    return {
        "one": lambda: c.Supervised(1),
        "mmd": lambda: c.Composite(
            [c.Supervised(1), c.InvariantMeasureMMD(num_rollout_steps)], [1.0, 0.1]
        ),
        "sinkhorn": lambda: c.Composite(
            [c.Supervised(1), c.InvariantMeasureSinkhorn(num_rollout_steps)], [1.0, 0.1]
        ),
        # one state per window (the first); the same minibatch size
        "thermalizer": lambda: c.ThermalizerDiffusion(),
    }


def stepper_for(name, key):
    if name == "thermalizer":
        # the paper's K = 1000 levels; the classifier is the same conv net with 1000
        # output channels (averaged over space)
        return tx.flow.Thermalizer(
            ConvNet(2, 1, 16, 5, key), ConvNet(1, 1000, 16, 5, jax.random.fold_in(key, 1)),
            num_noise_steps=1000,
        )
    return ConvNet(1, 1, 16, 5, key)


def time_updates(configuration, stepper, data, updates, repeats):
    optimizer = optax.adam(1e-3)
    state = optimizer.init(eqx.filter(stepper, eqx.is_array))

    @eqx.filter_jit
    def update(stepper, state, key):
        loss, grads = eqx.filter_value_and_grad(
            lambda s: configuration(s, data, key=key)
        )(stepper)
        changes, state = optimizer.update(grads, state, eqx.filter(stepper, eqx.is_array))
        return eqx.apply_updates(stepper, changes), state, loss

    key = jax.random.key(0)
    stepper, state, loss = update(stepper, state, key)
    jax.block_until_ready(loss)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(updates):
            stepper, state, loss = update(stepper, state, jax.random.fold_in(key, r * updates + i))
        jax.block_until_ready(loss)
        times.append((time.perf_counter() - start) / updates)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="sinkhorn,mmd")
    parser.add_argument("--rollout-steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table = cases(args.rollout_steps)
    data = jax.random.normal(
        jax.random.key(1), (args.batch, args.rollout_steps + 1, 1, args.points)
    )
    key = jax.random.key(2)
    base = time_updates(table["one"](), stepper_for("one", key), data, args.updates, args.repeats)
    print(f"jax {jax.__version__}, {jax.default_backend()}, batch {args.batch}, "
          f"{args.points} points, R = {args.rollout_steps}")
    print(f"one: {base * 1e3:.3f} ms/update (ratio 1.00)")
    for name in args.cases.split(","):
        seconds = time_updates(
            table[name](), stepper_for(name, key), data, args.updates, args.repeats
        )
        print(f"{name}: {seconds * 1e3:.3f} ms/update (ratio {seconds / base:.2f})")


if __name__ == "__main__":
    main()
