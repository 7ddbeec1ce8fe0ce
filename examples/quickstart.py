"""Quickstart: learn the first-order upwind stencil of 1D advection.

A kernel-2 circular convolution without bias is trained with supervised rollouts of
1, 5 and 20 steps on exact advection data (CFL = -0.75). The ideal linear one-step
emulator is the upwind stencil `[1 + CFL, -CFL]`; longer rollouts pull the learned
kernel closer to it. The script prints the distance of the learned kernel to the
stencil and saves the loss curves to `quickstart_loss.png` in `--out` (default: the
current directory; needs matplotlib).

Run: `python examples/quickstart.py` (add `--smoke` for a seconds-long check).
"""

import argparse
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import trainax_fm as tx

CFL = -0.75


def make_stepper(key):
    # Input u[i], u[i+1] (periodic): the upwind direction for a negative CFL.
    return eqx.nn.Conv1d(
        1, 1, 2, padding=((0, 1),), padding_mode="CIRCULAR", use_bias=False, key=key
    )


def train(num_rollout_steps: int, num_training_steps: int):
    data = tx.sample_data.advection_1d_periodic(cfl=CFL, key=jax.random.PRNGKey(0))
    trainer = tx.trainer.SupervisedTrainer(
        data,
        optimizer=optax.adam(1e-2),
        num_training_steps=num_training_steps,
        batch_size=32,
        num_rollout_steps=num_rollout_steps,
    )
    stepper, loss_history = trainer(
        make_stepper(jax.random.PRNGKey(1)), jax.random.PRNGKey(2), spawn_tqdm=False
    )
    upwind = jnp.array([1 + CFL, -CFL])
    distance = float(jnp.linalg.norm(stepper.weight.ravel() - upwind))
    return distance, stepper, loss_history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps")
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--out", default=".", help="directory for the loss plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    args = parser.parse_args(argv)
    num_steps = 20 if args.smoke else args.steps
    results = {}
    print(f"upwind stencil: {[1 + CFL, -CFL]}")
    for num_rollout_steps in (1, 5, 20):
        distance, stepper, losses = train(num_rollout_steps, num_steps)
        results[num_rollout_steps] = (distance, losses)
        kernel = [round(float(w), 4) for w in stepper.weight.ravel()]
        print(
            f"rollout {num_rollout_steps:2d}: kernel {kernel}, "
            f"distance to upwind {distance:.3f}"
        )
    if not args.no_plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib not installed; skipping the plot (pip install trainax_fm[plot])")
        else:
            fig, ax = plt.subplots(figsize=(6, 4))
            for num_rollout_steps, (_, losses) in results.items():
                ax.semilogy(losses / num_rollout_steps, label=f"rollout {num_rollout_steps}")
            ax.set_xlabel("update")
            ax.set_ylabel("loss per rollout step")
            ax.legend()
            fig.tight_layout()
            out = pathlib.Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            fig.savefig(out / "quickstart_loss.png", dpi=100)
            plt.close(fig)
            print(f"saved {out / 'quickstart_loss.png'}")
    return {k: v[0] for k, v in results.items()}


if __name__ == "__main__":
    main()
