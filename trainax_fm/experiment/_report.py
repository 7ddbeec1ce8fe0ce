"""The last step of `run_experiment`: the metrics record and the printed summary."""

from pathlib import Path
from typing import Any, Optional, Sequence

import jax
import numpy as np

from .._state._train_state import TrainState
from .._version import __version__
from ._evaluate import write_json
from ._network import count_parameters
from ._prepare import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, PROGRESS_FILE, Prepared


def report_run(
    run: Prepared,
    state: TrainState,
    members: Sequence[Any],
    metrics: dict,
    eval_seconds: float,
    files: Sequence[Path],
) -> dict:
    """Assemble the metrics record of a finished run and write it to `metrics.json`.

    **Arguments:**

    - `run`: the prepared run.
    - `state`: its final train state.
    - `members`: the trained stepper of every seed.
    - `metrics`: the test rollout metrics (`rollout_metrics`).
    - `eval_seconds`: how long the test rollouts took.
    - `files`: the networks and plots written.

    **Returns:**

    - The metrics dict (`status` `"complete"`), as written.
    """
    config, training = run.config, run.config["training"]
    num_seeds = config["num_seeds"]
    last = np.asarray(state.loss_history).reshape(num_seeds, -1)[:, -1]
    result = {
        "status": "complete",
        "name": config["name"],
        "description": config["description"],
        "source": config["data"]["source"],
        "method": training["method"],
        "network": config["network"]["spec"],
        "seed": config["seed"],
        "num_seeds": num_seeds,
        "num_parameters": count_parameters(members[0]),
        # the updates trained: fewer than planned when early stopping ended the run
        "num_training_steps": state.step,
        "planned_training_steps": training["num_training_steps"],
        "batch_size": training["batch_size"],
        # what `trainax-fm eval --data` checks test files against
        "state_shape": [int(n) for n in run.dataset.train.shape[2:]],
        "learning_rate": training["learning_rate"],
        "final_train_loss": float(np.mean(last)),
        "final_train_loss_per_seed": [float(v) for v in last],
        "wall_time_seconds": run.progress["train_seconds"],
        "eval_seconds": eval_seconds,
        **metrics,
    }
    result.update(validation_summary(state))
    if result.get("validation_monitor") is not None:
        result["stopped_early_at"] = (
            state.step if stopped_early(config, state) else None
        )
    if run.method.is_flow_matching:
        result["num_function_evaluations"] = int(members[0].num_function_evaluations)
    result["trainax_fm_version"] = __version__
    result["jax_backend"] = jax.default_backend()
    result["files"] = sorted(
        {p.name for p in files} | {CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, PROGRESS_FILE}
    )
    write_json(run.out / METRICS_FILE, result)
    return result


def stopped_early(config: dict, state: TrainState) -> bool:
    """Whether the run ended by early stopping (the `[validation]` patience ran out)."""
    patience = config["validation"]["patience"]
    if not patience or state.validation is None:
        return False
    return bool(np.all(np.asarray(state.validation.since_improvement) >= patience))


def validation_summary(state: TrainState) -> dict:
    """The best validation value (seed mean), its step, the monitor and the stop reason."""
    history = state.validation
    if history is None:
        return {}
    best = np.asarray(history.best_value, dtype=float)
    return {
        "validation_monitor": history.monitor,
        "validation_mode": history.mode,
        "best_validation": float(np.mean(best)) if np.all(np.isfinite(best)) else None,
        "best_validation_per_seed": [float(v) for v in np.atleast_1d(best)],
        "best_validation_step": np.asarray(history.best_step).tolist(),
        "num_validations": history.num_validations,
        "validation": history.to_dict(),
    }


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _validation_lines(metrics: dict) -> list[str]:
    """The best validation value and its update, when the run validated."""
    if metrics.get("validation_monitor") is None:
        return []
    steps = metrics["best_validation_step"]
    at = (f"update {steps}" if not isinstance(steps, list)
          else "updates " + ", ".join(str(step) for step in steps) + " (per seed)")
    return [f"  best validation {metrics['validation_monitor']} "
            f"{_fmt(metrics['best_validation'])} at {at} "
            f"({metrics['num_validations']} validations)"]


def format_summary(metrics: dict, out: Path) -> str:
    """A few lines summarising a finished run (printed at the end of training); the
    high-correlation time only for fields (ODE states have no spatial pattern)."""
    nrmse = metrics["nrmse"]
    seeds = metrics["num_seeds"]
    trained, planned = metrics["num_training_steps"], metrics.get("planned_training_steps")
    stopped = metrics.get("stopped_early_at") is not None
    of_planned = f" of {planned}" if planned is not None and planned != trained else ""
    lines = [
        f"{str(out)}: {metrics['method']} | {metrics['network']} | {metrics['source']} | "
        f"{seeds} seed{'s' if seeds > 1 else ''} | {metrics['num_parameters']:,} parameters",
        f"  trained {trained}{of_planned} updates"
        f"{' (early stopping)' if stopped else ''} in "
        f"{metrics['wall_time_seconds']:.1f} s, final train loss "
        f"{_fmt(metrics['final_train_loss'])}",
        *_validation_lines(metrics),
        f"  test nRMSE of {metrics.get('scored_network', 'network.eqx')}: step 1 "
        f"{_fmt(nrmse[0])}, step {len(nrmse)} {_fmt(nrmse[-1])}; "
        f"geometric mean over {metrics['nrmse_aggregate_steps']} steps "
        f"{_fmt(metrics['gmean_nrmse'])}",
    ]
    if metrics.get("high_correlation_time") is not None:  # None: states without space
        lines.append(
            f"  high-correlation time (corr >= {metrics['correlation_threshold']}): "
            f"{metrics['high_correlation_time']:g} of {len(nrmse)} steps"
        )
    lines.append("  files: " + " ".join(metrics["files"]))
    return "\n".join(lines)
