"""Many chaotic systems: one forecaster, tested zero-shot on systems it never saw.

The whole workflow through the Python API (the command line runs the same steps from a
TOML file: `trainax-fm zero-shot examples/configs/many_systems.toml`):

1. a catalogue of built-in chaotic ODEs (`tx.systems.generate_catalogue`): parameter
   perturbations, a skew product, initial conditions on each attractor, a validity
   filter, all stored with 3 channels; Thomas and Halvorsen (and the skew product
   driving Halvorsen) are held out;
2. windows drawn across the training systems with equal weight per system
   (`tx.data.SystemMixture`), each transformed with probability 0.2 by a random affine
   map, a random convex combination of channels or a delay embedding;
3. a small `tx.networks.PatchForecaster` (context 32 states, 8 out per call) trained
   with `Supervised(1, num_input_steps=4)` on blocks of 8 states;
4. `tx.systems.zero_shot_table` on the held-out trajectories: MSE, MAE, sMAPE and
   Spearman at cumulative horizons, valid prediction time and spectrum distance, next
   to repeating the last state and the context mean.

It prints the table and writes the catalogue (`catalogue/`) and
`many_systems_forecast.png` (a held-out forecast against the truth) to `--out`.

Run: `python examples/many_systems.py` (a few minutes on 2 CPU cores; `--smoke` for a
short check, `--out DIR` for the figure). Needs matplotlib for the figure.
"""

import argparse
import os

import jax
import numpy as np
import optax

import trainax_fm as tx
from trainax_fm.configuration import (
    DelayEmbedding,
    RandomAffine,
    RandomConvexCombination,
    Supervised,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short check of every step")
    parser.add_argument("--out", default=".", help="directory for the figure")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    if args.smoke:
        systems, skew_pairs, held_out = ["Lorenz63", "Rossler", "Thomas"], [], ["Thomas"]
        perturbations, steps, updates, context, k, width = 0, 64, 20, 16, 4, 16
    else:
        systems = ["Lorenz63", "Rossler", "Thomas", "Halvorsen", "SprottB", "Chen",
                   "Lorenz96_5"]
        skew_pairs, held_out = [("Rossler", "Lorenz63"), ("Rossler", "Halvorsen")], [
            "Thomas", "Halvorsen"]
        perturbations, steps, updates, context, k, width = 1, 256, 2000, 32, 8, 32

    # 1. The catalogue: one (S, T, 3) array on disk plus per-trajectory metadata.
    catalogue = tx.systems.generate_catalogue(
        systems, os.path.join(args.out, "catalogue"), num_trajectories_per_system=2,
        num_time_steps=steps, num_perturbations=perturbations, skew_pairs=skew_pairs,
        held_out=held_out, seed=0,
    )
    print(catalogue, "rejected:", {k: v for k, v in catalogue.rejections.items() if v})

    # 2. The mixture of the training systems, equal weight per system.
    mixture_key, init_key, train_key = jax.random.split(jax.random.PRNGKey(0), 3)
    train_systems = [entry["system"] for entry in catalogue.entries("train")]
    mixture = tx.data.SystemMixture(catalogue.load("train"), train_systems, key=mixture_key)

    # 3. The forecaster and its training configuration: histories of context // k
    #    blocks of k states in, one block out, augmented windows (each augmentation
    #    unstacks the blocks, num_output_steps=k, to map single states).
    configuration = Supervised(1, num_input_steps=context // k)
    for augmentation in (RandomAffine, RandomConvexCombination, DelayEmbedding):
        configuration = augmentation(configuration, 0.2, num_output_steps=k)
    forecaster = tx.networks.PatchForecaster(
        3, context, k, k, width=width, num_layers=2, num_heads=2, key=init_key
    )
    trainer = tx.trainer.ConfigurationTrainer(
        mixture, configuration,
        optimizer=optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 5, updates)),
        num_training_steps=updates, batch_size=32, num_output_steps=k,
    )
    forecaster, losses = trainer(forecaster, train_key)
    print(f"training loss: {float(losses[0]):.3g} -> {float(losses[-1]):.3g}")

    # 4. Zero-shot scores on the held-out systems.
    test_entries = catalogue.entries("test")
    test_systems = [entry["system"] for entry in test_entries]
    table = tx.systems.zero_shot_table(
        forecaster, catalogue.load("test"), test_systems, context_length=context,
        prediction_length=k, forecast_length=4 * k, horizons=(k, 2 * k, 4 * k),
        dt={entry["system"]: entry["dt"] for entry in test_entries},
    )
    print(table.to_markdown())

    # A held-out forecast against the truth, rolled out on a sliding context.
    trajectory = catalogue.load("test")[0]
    forecast = tx.rollout(forecaster.block_stepper(), trajectory[:context], 4,
                          num_input_steps=context)
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(3, 1, figsize=(7, 5), sharex=True)
    for channel, ax in enumerate(axes):
        ax.plot(trajectory[: context + 4 * k, channel], color="black", lw=1, label="truth")
        ax.plot(np.arange(context, context + 4 * k), forecast[:, channel], color="tab:red",
                label="forecast")
        ax.axvline(context - 0.5, color="grey", ls=":")
    axes[0].set_title(f"{test_systems[0]} (never trained on)")
    axes[0].legend(loc="upper left")
    fig.savefig(os.path.join(args.out, "many_systems_forecast.png"), dpi=110)


if __name__ == "__main__":
    main()
