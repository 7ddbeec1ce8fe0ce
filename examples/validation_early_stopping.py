"""Validation, best model, early stopping and logs on the chaotic Lorenz-63 system.

A residual MLP emulator `u -> u + mlp(u)` is trained with 3-step supervised rollouts
on a few short Lorenz-63 trajectories; a `tx.NormalizedStepper` standardises its
input and output with statistics of the training trajectories, so training runs in
standardised units while data, rollouts and metrics stay in physical ones. Every
`--validate-every` updates it is validated on held-out trajectories: the training
loss on their windows, and the rollout nRMSE after 1 and 20 steps. The best model by
the 20-step nRMSE is kept, and training stops once `--patience` validations in a row
brought no improvement. The logging hook writes `log.jsonl`, `train.csv` and
`validation.csv` (plus TensorBoard events if tensorboardX is installed) to `--out`,
and the script plots the validation curves to `validation_curves.png`. Finally the
best and the final model are compared on separate test trajectories.

Run: `python examples/validation_early_stopping.py` (add `--smoke` for a seconds-long
check); follow the log with `tail -f <out>/log.jsonl` or `tensorboard --logdir <out>`.
"""

import argparse
import importlib.util
import pathlib

import equinox as eqx
import jax
import numpy as np
import optax

import trainax_fm as tx


class ResidualMLP(eqx.Module):
    """One step of the emulator: the state plus a learned increment."""

    mlp: eqx.nn.MLP

    def __init__(self, width: int, depth: int, *, key):
        self.mlp = eqx.nn.MLP(3, 3, width, depth, activation=jax.nn.gelu, key=key)

    def __call__(self, state):
        return state + self.mlp(state)


def lorenz(num_samples: int, num_steps: int, key):
    return tx.sample_data.lorenz_rk4(num_samples, temporal_horizon=num_steps, dt=0.02, key=key)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000, help="most training updates")
    parser.add_argument("--validate-every", type=int, default=200)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
    parser.add_argument("--out", default="validation_example", help="logs and figures")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.validate_every, args.patience = 60, 20, 2
    out = pathlib.Path(args.out)

    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    train, validation, test = (lorenz(n, t, k) for n, t, k in
                               ((3, 200, keys[0]), (16, 60, keys[1]), (16, 60, keys[2])))
    normalizer = tx.Normalizer.fit(train)

    formats = ("jsonl", "csv") + (
        ("tensorboard",) if importlib.util.find_spec("tensorboardX") else ()
    )
    schedule = optax.cosine_decay_schedule(3e-3, args.steps)
    trainer = tx.trainer.SupervisedTrainer(
        train, optimizer=optax.adam(schedule), num_training_steps=args.steps,
        batch_size=32, num_rollout_steps=3,
        validation_data=validation, validate_every=args.validate_every,
        validation_metrics=("loss", "nrmse@1", "nrmse@20"), monitor="nrmse@20",
        patience=args.patience, min_delta=1e-4, best_path=out / "best.eqx",
    )
    logger = tx.hook.Logger(out, every=args.validate_every, formats=formats,
                            learning_rate=schedule)
    stepper = tx.NormalizedStepper(ResidualMLP(64, 2, key=keys[3]), normalizer)
    result = trainer.train(stepper, keys[4], hooks=[logger])

    history = result.validation
    print(f"validations at updates {history.steps.tolist()}")
    print(f"best model: update {int(history.best_step)}, nRMSE@20 "
          f"{float(history.best_value):.4f}")
    print(f"stopped: {result.stop_reason or 'ran all updates'} "
          f"(after {result.train_state.step} updates)")
    for name, stepper in (("best", result.best_stepper), ("final", result.stepper)):
        prediction = tx.rollout(stepper, test[:, 0], 20, batched=True)
        error = tx.metrics.nrmse(prediction, test[:, 1:21], batched=True)
        print(f"{name:>5} model: test nRMSE after 1 step {float(error[0]):.4f}, "
              f"after 20 steps {float(error[-1]):.4f}")

    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed; no figure (pip install trainax_fm[plot])")
        return
    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    tx.plot.validation_history(history, save=out / "validation_curves.png",
                               title="Lorenz-63: validation (dotted: best model)")
    records = np.asarray(result.loss_history)
    tx.plot.loss_history(records, save=out / "training_loss.png", title="training loss")
    print(f"figures and logs in {str(out)!r}")


if __name__ == "__main__":
    main()
