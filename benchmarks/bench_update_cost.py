"""Cost of one update of a configuration, as a ratio to one-step `Supervised` training of
the same network.

One update is the loss, its gradient and an Adam step on one fixed minibatch, compiled
once (`eqx.filter_jit`); after compilation `--repeats` rounds time `--updates` updates of
each configuration in turn (interleaved, so load changes on a shared machine hit all
alike) and the median per update is reported. The
network is a small periodic 1D ConvNet (width 32, depth 4, kernel 5) on 64 points,
batch 32; a flow configuration's network takes the extra input channels its
velocity needs (`[x, y, t]`: 3 instead of 1), the only difference.

```bash
python benchmarks/bench_update_cost.py             # Supervised, FlowMatching, StochasticInterpolant
python benchmarks/bench_update_cost.py --repeats 9 --updates 50
```
"""

import argparse
import statistics
import time

import equinox as eqx
import jax
import optax

import trainax_fm as tx
from trainax_fm import flow


class ConvNet(eqx.Module):
    layers: tuple

    def __init__(self, in_channels, width, depth, key):
        keys = jax.random.split(key, depth + 1)
        channels = [in_channels] + [width] * depth + [1]
        self.layers = tuple(
            eqx.nn.Conv1d(a, b, 5, padding=2, padding_mode="CIRCULAR", key=k)
            for a, b, k in zip(channels[:-1], channels[1:], keys)
        )

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.gelu(layer(x))
        return self.layers[-1](x)


def compiled_update(configuration, model, windows):
    """`run(n)`: `n` updates from the current state, the first call compiles."""
    optimizer = optax.adam(1e-3)
    carry = [model, optimizer.init(eqx.filter(model, eqx.is_array))]
    key = jax.random.key(0)

    @eqx.filter_jit
    def update(model, state, key):
        loss, grads = eqx.filter_value_and_grad(
            lambda m: configuration(m, windows, key=key)
        )(model)
        changes, state = optimizer.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, changes), state, loss

    def run(n):
        start = time.perf_counter()
        for i in range(n):
            carry[0], carry[1], loss = update(*carry, jax.random.fold_in(key, i))
        loss.block_until_ready()
        return (time.perf_counter() - start) / n

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--updates", type=int, default=30)
    args = parser.parse_args(argv)
    key = jax.random.key(1)
    windows = jax.random.normal(key, (32, 2, 1, 64))
    cases = {
        "Supervised(1)": (tx.configuration.Supervised(1), ConvNet(1, 32, 4, key)),
        "FlowMatching": (
            tx.configuration.FlowMatching(),
            flow.ConditionalVelocity(ConvNet(3, 32, 4, key)),
        ),
        "StochasticInterpolant": (
            tx.configuration.StochasticInterpolant(),
            flow.ConditionalVelocity(ConvNet(3, 32, 4, key)),
        ),
    }
    print(f"jax {jax.__version__} on {jax.default_backend()}; median of {args.repeats} "
          f"rounds of {args.updates} updates")
    runs = {name: compiled_update(c, m, windows) for name, (c, m) in cases.items()}
    for run in runs.values():
        run(1)  # compile
    # rounds interleave the configurations, so a load change on a shared machine
    # hits all of them alike
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds[name].append(run(args.updates))
    base = statistics.median(seconds["Supervised(1)"])
    print("| configuration | ms per update | ratio to Supervised(1) |\n|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {1e3 * median:.3f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
