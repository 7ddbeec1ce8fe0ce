"""A log a person can watch while training runs."""

import io
import os
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._atomic import write_bytes_atomic
from .._stepper._loss_weights import WithLossWeights, loss_weights
from .._rollout._inference import rollout
from .._loop._problem import step_key
from .._loop._loop import Loop
from .._loop._validate import rollout_signature
from .._argument_checks import check_positive_int
from ..plot._spacetime import spacetime
from ._base import AbstractHook, next_multiple
from ._log_writers import check_formats, make_writers


LearningRate = Union[float, Callable[[int], float], None]

# The optimizer states of `optax.inject_hyperparams` (the stateful one in newer optax).
_HYPERPARAMETER_STATES = tuple(
    getattr(optax, name)
    for name in ("InjectHyperparamsState", "InjectStatefulHyperparamsState")
    if hasattr(optax, name)
)


class Logger(AbstractHook):
    """Log training and validation scalars to JSON lines, CSV and/or TensorBoard.

    Every `every` updates (and after the last) a *train* record holds: `loss`, the
    mean training loss since the previous record; `learning_rate` at that step;
    `grad_norm`, the global norm of the gradient that the next update applies (one
    extra gradient evaluation per record); `updates_per_second` since the previous
    record (wall time between the records, including validations, checkpoints and
    the previous record's own work; the first interval includes compilation); for a
    stepper with learned loss weights ([`trainax_fm.WithLossWeights`][]) each weight
    `exp(-s_i)` as `loss_weight/<name>`; and whatever `scalars(loop)` returns. After
    every validation a *validation* record holds each validation metric. With seeds,
    every scalar is the mean over seeds.

    Files in `log_dir`: `log.jsonl` (format `"jsonl"`), `train.csv` and
    `validation.csv` (`"csv"`), TensorBoard event files (`"tensorboard"`, needs
    `pip install "trainax_fm[tensorboard]"`) and, with `rollout_plot_every=k`,
    `rollouts/step_XXXXXXX.png`: a space-time picture of the rollout of the first
    validation trajectory (1D fields) after every `k`-th validation. A resumed run
    continues the files and drops records that an interrupted run wrote after the
    resumed step.

    **Arguments:**

    - `log_dir`: the directory (created if needed).
    - `every`: updates between train records.
    - `formats`: any of `"jsonl"`, `"csv"`, `"tensorboard"`.
    - `learning_rate`: the optimizer's learning rate or schedule (`step -> rate`);
        `None` reads it from an `optax.inject_hyperparams` optimizer state if there
        is one, else logs none.
    - `grad_norm`: whether to log the gradient norm.
    - `rollout_plot_every`: draw a validation rollout after every this many
        validations (needs matplotlib); `None`: never.
    - `scalars`: a function `loop -> dict[str, float]` of more scalars to log in
        train records (e.g. learned loss weights).

    ```python
    logger = tx.hook.Logger("runs/ks", every=100, formats=("jsonl", "tensorboard"))
    trainer.train(stepper, key, hooks=[logger], validation_data=val, validate_every=500)
    ```
    """

    def __init__(
        self,
        log_dir: Union[str, os.PathLike],
        *,
        every: int = 100,
        formats: Sequence[str] = ("jsonl", "csv"),
        learning_rate: LearningRate = None,
        grad_norm: bool = True,
        rollout_plot_every: Optional[int] = None,
        scalars: Optional[Callable[[Loop], dict]] = None,
    ):
        self.log_dir = Path(log_dir)
        self.every = check_positive_int(every, "every")
        self.writers = make_writers(self.log_dir, check_formats(formats))
        if learning_rate is not None and not callable(learning_rate):
            learning_rate = float(learning_rate)
        self.learning_rate = learning_rate
        self.grad_norm = bool(grad_norm)
        self.rollout_plot_every = (
            None if rollout_plot_every is None
            else check_positive_int(rollout_plot_every, "rollout_plot_every")
        )
        if scalars is not None and not callable(scalars):
            raise TypeError(f"`scalars` must be a function of the loop, got {scalars!r}.")
        self.scalars = scalars
        self.last_step = 0
        self.last_time = 0.0
        self.validations_seen = 0

    def on_start(self, loop: Loop) -> None:
        if loop.traced:
            raise ValueError(
                "Logger writes files on the host, but `train` runs under a JAX "
                "transformation (jit/vmap); train seeds with `num_seeds=` instead."
            )
        for writer in self.writers:
            writer.start(loop.step)
        self.last_step, self.last_time = loop.step, time.perf_counter()
        self.validations_seen = 0 if loop.validation is None else loop.validation.num_validations

    def next_boundary(self, loop: Loop, step: int) -> Optional[int]:
        return next_multiple(step, self.every)

    def on_boundary(self, loop: Loop) -> None:
        if loop.step % self.every == 0:
            self.log_train(loop)
        self.log_validation(loop)

    def on_end(self, loop: Loop) -> None:
        if loop.step > self.last_step:
            self.log_train(loop)
        self.log_validation(loop)

    def close(self, loop: Loop) -> None:
        for writer in self.writers:
            writer.close()

    def log_train(self, loop: Loop) -> None:
        losses = loop.history.since(self.last_step)
        # Updates are dispatched asynchronously: the clock is read once they have run.
        jax.block_until_ready((loop.stepper, loop.opt_state))
        now = time.perf_counter()
        scalars = {
            "loss": float(np.mean(losses)),
            "updates_per_second": (loop.step - self.last_step) / max(now - self.last_time, 1e-9),
        }
        rate = self.current_learning_rate(loop)
        if rate is not None:
            scalars["learning_rate"] = rate
        if self.grad_norm:
            scalars["grad_norm"] = float(np.mean(gradient_norm(loop)))
        if isinstance(loop.stepper, WithLossWeights):
            weights = loss_weights(loop.stepper)
            scalars.update({f"loss_weight/{n}": float(np.mean(w)) for n, w in weights.items()})
        if self.scalars is not None:
            scalars.update({name: float(np.mean(v)) for name, v in self.scalars(loop).items()})
        self.write(loop.step, "train", scalars)
        # The next interval starts at this record's clock reading, so the time spent
        # on this record (gradient norm, scalars, files) counts against the rate:
        # the intervals add up to the wall time of the run.
        self.last_step, self.last_time = loop.step, now

    def log_validation(self, loop: Loop) -> None:
        history = loop.validation
        if history is None or history.num_validations <= self.validations_seen:
            return
        self.validations_seen = history.num_validations
        step = int(history.steps[-1])
        values = {name: float(np.mean(v[..., -1])) for name, v in history.values.items()}
        self.write(step, "validation", values)
        if self.rollout_plot_every and self.validations_seen % self.rollout_plot_every == 0:
            self.plot_rollout(loop, step)

    def write(self, step: int, kind: str, scalars: dict) -> None:
        for writer in self.writers:
            writer.write(step, kind, scalars)

    def current_learning_rate(self, loop: Loop) -> Optional[float]:
        if callable(self.learning_rate):
            return float(self.learning_rate(loop.step))
        if self.learning_rate is not None:
            return self.learning_rate
        states = jax.tree_util.tree_leaves(
            loop.opt_state, is_leaf=lambda x: isinstance(x, _HYPERPARAMETER_STATES)
        )
        for state in states:
            if isinstance(state, _HYPERPARAMETER_STATES):
                rate = state.hyperparams.get("learning_rate")
                if rate is not None:
                    return float(np.mean(rate))
        return None

    def plot_rollout(self, loop: Loop, step: int) -> None:
        data = loop.validation_data
        if not isinstance(data, (jax.Array, np.ndarray)) or data.ndim != 4:
            raise ValueError(
                "`rollout_plot_every` draws space-time pictures of 1D fields: the "
                f"validation trajectories must be (S, T, C, N), got "
                f"{getattr(data, 'shape', type(data).__name__)}."
            )
        stepper = loop.stepper
        if loop.num_seeds is not None:
            stepper = jax.tree_util.tree_map(lambda x: x[0] if eqx.is_array(x) else x, stepper)
        stochastic, history = rollout_signature(stepper)
        initial = data[0, 0] if history == 1 else data[0, :history]
        prediction = rollout(
            stepper, initial, data.shape[1] - history, num_input_steps=history,
            key=jax.random.PRNGKey(0) if stochastic else None,
        )
        figure = spacetime(prediction, data[0, history:])
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        png = buffer.getvalue()
        write_bytes_atomic(self.log_dir / "rollouts" / f"step_{step:07d}.png", png)
        for writer in self.writers:
            writer.image(step, "validation/rollout", png)


@eqx.filter_jit
def _gradient_norm(problem, stepper, batch, key, step, seeds: bool):
    def one(stepper, batch, key):
        _, grads = problem.value_and_grad(stepper, batch, key, step)
        return global_norm(grads)

    return eqx.filter_vmap(one)(stepper, batch, key) if seeds else one(stepper, batch, key)


def global_norm(tree) -> jax.Array:
    """The Euclidean norm of all array leaves of `tree` together."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def gradient_norm(loop: Loop):
    """The global gradient norm of update `loop.step` (before it runs)."""
    seeds = loop.num_seeds is not None
    key = (
        jax.vmap(step_key, in_axes=(0, None))(loop.update_key, loop.step)
        if seeds else step_key(loop.update_key, loop.step)
    )
    return _gradient_norm(
        loop.problem, loop.stepper, loop.batch(), key, jnp.asarray(loop.step), seeds
    )
