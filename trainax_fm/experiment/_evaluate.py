"""Evaluation of trained emulators: test rollouts, metrics and plots."""

import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics as M
from .. import plot
from .._atomic import write_bytes_atomic
from .._rollout._inference import rollout
from .._stepper._protocol import needs_key
from ..flow import ThermalizedStepper
from ._config import load_config
from ._data import load_data, load_trajectory_file
from ._errors import ConfigError
from ._files import load_constants
from ._saved_networks import BEST_FILE, load_networks, scored_network_file
from ._setup import split_keys
from ._toml import write_text_atomic
from ._wording import term

def _finite(value: float) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values) -> list:
    return [_finite(v) for v in np.asarray(values).ravel()]


@eqx.filter_jit
def _score(stepper, test, constants, key, num_steps, aggregate_steps, threshold):
    """Rollout and metrics of one stepper as one compiled program."""
    scalars, fields = (None, None) if constants is None else constants
    reference = test[:, 1 : num_steps + 1]
    interventions = None
    if isinstance(stepper, ThermalizedStepper) and constants is None:
        # its own rollout also reports where the thermalizer denoised (it binds no
        # constants, so conditioned data goes through `rollout` without the report)
        report = stepper.rollout(test[:, 0], num_steps, key=key, batched=True)
        prediction, interventions = report.trajectory, report.num_interventions
    else:
        prediction = rollout(stepper, test[:, 0], num_steps, batched=True, key=key,
                             constant_scalars=scalars, constant_fields=fields)
    curve = M.nrmse(prediction, reference, batched=True)
    gmean = M.geometric_mean_nrmse(prediction, reference, num_steps=aggregate_steps,
                                   batched=True)
    if not has_spatial_axes(test):
        # A pattern correlation over the components of one ODE state is meaningless.
        return curve, gmean, None, None, prediction, reference, interventions
    correlation = M.pearson_correlation(prediction, reference, batched=True)
    hct = M.high_correlation_time(correlation, threshold)
    return curve, gmean, correlation, hct, prediction, reference, interventions


def has_spatial_axes(trajectories: Any) -> bool:
    """Whether the states of `(B, T, C, *spatial)` trajectories are fields (correlation
    metrics are computed only for them)."""
    return jnp.ndim(trajectories) > 3


def rollout_metrics(
    steppers: Sequence[Any],
    test: Any,
    *,
    num_rollout_steps: int,
    aggregate_steps: int,
    correlation_threshold: float,
    key: Optional[Any] = None,
    constants: Optional[tuple] = None,
) -> tuple[dict, dict]:
    """Roll every seed's emulator out from the test initial conditions and score it.

    **Arguments:**

    - `steppers`: one stepper per seed.
    - `test`: test trajectories `(B, T, C, *spatial)` with `T > num_rollout_steps`.
    - `num_rollout_steps`: `R`, the autoregressive steps.
    - `aggregate_steps`: `K` of the geometric-mean nRMSE.
    - `correlation_threshold`: the level of the high-correlation time.
    - `key`: a random key for stochastic (flow-matching) emulators, else `None`.
    - `constants`: `(constant_scalars, constant_fields)` of the test trajectories for
        conditioned emulators, else `None`.

    **Returns:**

    - `(metrics, arrays)`: JSON-ready metrics (seed means and per-seed values;
        `correlation` and `high_correlation_time` are `None` for states without
        spatial axes, where a pattern correlation means nothing; for
        [`trainax_fm.flow.ThermalizedStepper`][]s also `thermalizer_interventions`,
        the mean number of denoised states per test rollout, and its per-seed
        values, unless the data has constants) and the arrays `nrmse`
        `(seeds, R)`, `prediction` (seed 0, `(B, R, ...)`) and
        `reference` `(B, R, ...)` for plots.
    """
    test = jnp.asarray(test)
    keys = None if key is None else jax.random.split(key, len(steppers))
    curves, gmeans, correlations, times, interventions = [], [], [], [], []
    first_prediction = reference = None
    for i, stepper in enumerate(steppers):
        stochastic = needs_key(stepper)
        curve, gmean, correlation, hct, prediction, reference, denoised = _score(
            stepper, test, constants, keys[i] if stochastic else None,
            num_rollout_steps, aggregate_steps, float(correlation_threshold),
        )
        if first_prediction is None:
            first_prediction = prediction
        curves.append(np.asarray(curve))
        gmeans.append(float(gmean))
        if correlation is not None:
            correlations.append(np.asarray(correlation))
            times.append(int(hct))
        if denoised is not None:
            interventions.append(float(np.mean(denoised)))
    curves = np.stack(curves)
    fields = bool(times)
    metrics = {
        "num_rollout_steps": num_rollout_steps,
        "num_test_samples": int(test.shape[0]),
        "nrmse_aggregate_steps": aggregate_steps,
        "gmean_nrmse": _finite(np.exp(np.mean(np.log(gmeans)))) if all(g > 0 for g in gmeans)
        else _finite(np.mean(gmeans)),
        "gmean_nrmse_per_seed": _floats(gmeans),
        "nrmse": _floats(np.mean(curves, axis=0)),
        "correlation": _floats(np.mean(correlations, axis=0)) if fields else None,
        "correlation_threshold": correlation_threshold,
        "high_correlation_time": float(np.mean(times)) if fields else None,
        "high_correlation_time_per_seed": times if fields else None,
    }
    if interventions:
        metrics["thermalizer_interventions"] = float(np.mean(interventions))
        metrics["thermalizer_interventions_per_seed"] = interventions
    if len(steppers) > 1:
        metrics["nrmse_per_seed"] = [_floats(c) for c in curves]
    arrays = {"nrmse": curves, "prediction": first_prediction, "reference": reference}
    return metrics, arrays


def _ode_plot(prediction, reference, dt: float, save: Path) -> None:
    from matplotlib.figure import Figure

    prediction, reference = np.asarray(prediction), np.asarray(reference)
    channels = prediction.shape[-1]
    figure = Figure(figsize=(7, 1.8 * channels), layout="constrained")
    axes = figure.subplots(channels, 1, sharex=True, squeeze=False)[:, 0]
    times = dt * np.arange(1, prediction.shape[0] + 1)
    for c, ax in enumerate(axes):
        ax.plot(times, reference[:, c], color="black", label="reference")
        ax.plot(times, prediction[:, c], color="tab:red", linestyle="--", label="prediction")
        ax.set_ylabel(f"u[{c}]")
    axes[0].legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("time")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes_atomic(save, buffer.getvalue())


def make_plots(
    results_dir: Path,
    arrays: dict,
    *,
    loss_history: Optional[np.ndarray],
    record_loss_every: int,
    label: str,
    dt: float = 1.0,
    domain_extent: Optional[float] = None,
    prefix: str = "",
    validation: Any = None,
) -> list[Path]:
    """Write `loss.png`, `error_over_time.png`, a rollout plot (`spacetime.png`
    for 1D, `snapshots_2d.png` for 2D, `snapshots_3d.png` (the middle slice across
    the last axis) for 3D, `rollout.png` for ODE states) of the first
    test trajectory of seed 0 and, given a validation history, `validation.png`.
    Returns the written paths; without matplotlib none."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    written = []
    if loss_history is not None and loss_history.size:
        path = results_dir / f"{prefix}loss.png"
        plot.loss_history(loss_history, every=record_loss_every, save=path,
                          title=f"{label}: training loss")
        written.append(path)
    if validation is not None and validation.num_validations:
        path = results_dir / f"{prefix}validation.png"
        plot.validation_history(validation, save=path, title=f"{label}: validation")
        written.append(path)
    path = results_dir / f"{prefix}error_over_time.png"
    plot.error_over_time({label: arrays["nrmse"]}, dt=dt, save=path, title="test nRMSE")
    written.append(path)
    prediction, reference = arrays["prediction"][0], arrays["reference"][0]
    dims = prediction.ndim - 2
    if dims == 1:
        path = results_dir / f"{prefix}spacetime.png"
        plot.spacetime(prediction, reference, dt=dt, domain_extent=domain_extent, save=path)
    elif dims in (2, 3):
        path = results_dir / f"{prefix}snapshots_{dims}d.png"
        plot.snapshots_2d(prediction, reference=reference, difference=True, dt=dt, save=path)
    elif dims == 0:
        path = results_dir / f"{prefix}rollout.png"
        _ode_plot(prediction, reference, dt, path)
    else:
        return written
    written.append(path)
    return written


def write_json(path: Path, payload: dict) -> Path:
    """Write JSON atomically (indented, NaN/Inf as null)."""
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def check_data_fits_run(results_dir: Path, data: Path, shape: tuple) -> None:
    """Compare trajectories `(S, T, C, *spatial)` from `--data` with the states the
    run trained on (`state_shape` in its `metrics.json`): a wrong channel count is the
    data's fault, not the network file's. The grid size may differ (convolutions
    apply to any resolution)."""
    try:
        trained = json.loads((results_dir / "metrics.json").read_text())["state_shape"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # unknown (an older run): loading the networks reports a mismatch
    state = tuple(int(n) for n in shape[2:])
    trained = tuple(int(n) for n in trained)
    layout = "(S, T, C" + "".join(", N" for _ in trained[1:]) + ")"
    if len(state) != len(trained):
        raise ConfigError(
            "--data", f"trajectories {layout} like the training data (states {trained})",
            f"shape {tuple(shape)} in {str(data)!r}, states with {len(state) - 1} instead "
            f"of {len(trained) - 1} spatial axes",
            "pass test data of the system the network was trained on"
            + ("; a 1D field needs a channel axis: `u[:, :, None]`" if len(state) == 1 else ""),
        )
    if state[0] != trained[0]:
        raise ConfigError(
            "--data", f"{trained[0]} channel(s), the network's (it was trained on states "
            f"of shape {trained})",
            f"{state[0]} channel(s): shape {tuple(shape)} in {str(data)!r}",
            "the data's channel count does not match the network's: pass trajectories "
            f"(S, T, {trained[0]}, ...) of the same fields",
        )


def evaluate(
    results_dir: Union[str, os.PathLike],
    *,
    data: Optional[Union[str, os.PathLike]] = None,
    num_rollout_steps: Optional[int] = None,
    output: Optional[Union[str, os.PathLike]] = None,
    plots: bool = True,
) -> dict:
    """Roll the saved emulator(s) of a results folder out on test data and score them.

    **Arguments:**

    - `results_dir`: a folder written by
        [`trainax_fm.experiment.run_experiment`][] (with `config.toml` and the
        network files).
    - `data`: a `.npy`/`.npz` file of test trajectories `(S, T, C, *spatial)`;
        `None` regenerates the run's own test data from its configuration.
    - `num_rollout_steps`: rollout length (default: the configuration's, capped at
        `T - 1` of the data).
    - `output`: where to write the metrics JSON (default `results_dir/eval.json`,
        or `eval_<file stem>.json` for `data`).
    - `plots`: also write `eval_error_over_time.png` and the rollout plot
        (`eval_spacetime.png`, ...); for `data` they are named `eval_<file stem>_...`,
        so they do not replace the pictures of the run's own test data.

    The networks scored are those whose metrics training reported in `metrics.json`:
    the validation's best (`best.eqx`) when it picked one and `[validation] evaluate
    = "best"`, the final ones otherwise; `scored_network` in the result names the file.

    **Returns:**

    - The metrics dict (also written to `output`).
    """
    results_dir = Path(results_dir)
    config_path = results_dir / "config.toml"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{str(results_dir)!r} holds no config.toml; pass a folder written by "
            "`trainax-fm train`."
        )
    config = load_config(config_path)
    evaluation = config["evaluation"]
    steps = num_rollout_steps or evaluation["num_rollout_steps"]
    dt, extent = 1.0, None
    if data is None:
        config["evaluation"] = {
            **evaluation, "num_rollout_steps": steps,
            "nrmse_aggregate_steps": min(steps, evaluation["nrmse_aggregate_steps"]),
        }
        dataset, _ = load_data(config)
        test, dt, extent = dataset.test, dataset.dt, dataset.domain_extent
        constants = dataset.test_constants
        label = "test data"
    else:
        test = load_trajectory_file(Path(data), term("data"))
        constants = load_constants(Path(data), test.shape, term("data"))
        available = test.shape[1] - 1
        if num_rollout_steps is not None and num_rollout_steps > available:
            raise ConfigError(
                term("num_rollout_steps"), f"at most {available} for {str(data)!r}",
                str(num_rollout_steps), "the file's trajectories are too short",
            )
        steps = min(steps, available)
        label = str(data)
    aggregate = min(steps, evaluation["nrmse_aggregate_steps"])
    num_constant_channels = 0 if constants is None else sum(
        int(c.shape[1]) for c in constants if c is not None
    )
    scored = scored_network_file(results_dir, config)
    if data is not None:
        check_data_fits_run(results_dir, Path(data), test.shape)
    try:
        steppers = load_networks(results_dir, config, test.shape[2:], num_constant_channels,
                                 best=scored == BEST_FILE)
    except ValueError as error:
        if data is None:
            raise
        # A run from before `state_shape` was recorded: the data is the likely culprit.
        raise ConfigError(
            "--data", "trajectories shaped like the run's training data",
            f"states of shape {tuple(test.shape[2:])} in {str(data)!r}, which the saved "
            f"network does not accept ({error})",
            "pass test data with the channels and spatial axes the network was trained on",
        ) from None
    _, _, eval_key = split_keys(config["seed"], config["num_seeds"])
    begin = time.perf_counter()
    metrics, arrays = rollout_metrics(
        steppers, test, num_rollout_steps=steps, aggregate_steps=aggregate,
        correlation_threshold=evaluation["correlation_threshold"], key=eval_key,
        constants=constants,
    )
    metrics = {
        "name": config["name"],
        "method": config["training"]["method"],
        "network": config["network"]["spec"],
        "data": label,
        "scored_network": scored,
        **metrics,
        "eval_seconds": time.perf_counter() - begin,
    }
    if output is None:
        output = results_dir / ("eval.json" if data is None else f"eval_{Path(data).stem}.json")
    write_json(Path(output), metrics)
    if plots:
        prefix = "eval_" if data is None else f"eval_{Path(data).stem}_"
        make_plots(results_dir, arrays, loss_history=None, record_loss_every=1,
                   label=config["name"], dt=dt, domain_extent=extent, prefix=prefix)
    return metrics

