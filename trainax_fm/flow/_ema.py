import abc
import numbers
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from ._flow_map import FlowMap
from ._velocity import ConditionalVelocity, Time


def check_decay(decay) -> float:
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not (
        0.0 <= float(decay) < 1.0
    ):
        raise ValueError(f"`decay` must be a number in [0, 1), got {decay!r}.")
    return float(decay)


def copy_or_check_ema(online, ema, online_name: str):
    """A fresh copy of `online` (`ema=None`), or `ema` after checking its structure."""
    if ema is None:
        return jtu.tree_map(lambda a: jnp.array(a) if eqx.is_array(a) else a, online)
    if jtu.tree_structure(ema) != jtu.tree_structure(online):
        raise ValueError(
            f"`ema` must have the structure of `{online_name}` (a copy of it); pass None "
            "to start from a copy."
        )
    return ema


class AbstractEMA(eqx.Module):
    """A model in training (`online`) together with an exponential moving average `ema`.

    The average is not trained by gradients:
    [`trainax_fm.flow.flow_map_optimizer`][] moves it after every update,
    `ema <- decay * ema + (1 - decay) * online`.
    """

    ema: eqx.AbstractVar[eqx.Module]
    decay: eqx.AbstractVar[float]

    @property
    @abc.abstractmethod
    def online(self) -> eqx.Module:
        """The model trained by the optimizer."""

    def __call__(
        self,
        x_t: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Time,
    ) -> Float[Array, "channels ..."]:
        """The EMA model at `(x_t, y, t, d)` (a flow map's `F_d`, a velocity's `u`)."""
        return self.ema(x_t, y, t, d)


class EMAFlowMap(AbstractEMA):
    r"""A flow map in training together with an exponential moving average (EMA) of it.

    Pass it as the trainable stepper of
    [`trainax_fm.configuration.SemigroupDistillation`][] (or its trainer) to compute
    the semigroup target with the slowly moving average instead of the current
    weights: the student is `flow_map`, the target is
    `sg(ema_{d/2}(ema_{d/2}(x_t, t), t + d/2))`. The average is not trained by
    gradients; the optimizer wrapper
    [`trainax_fm.flow.flow_map_optimizer`][] (applied by
    [`trainax_fm.trainer.SemigroupDistillationTrainer`][]) moves it after every update:

    $$\theta_{ema} \leftarrow \text{decay}\;\theta_{ema} + (1 - \text{decay})\;\theta_{new}.$$

    Calling it evaluates the EMA flow map (the weights usually used for inference);
    for sampling take `FlowMapStepper(ema_flow_map.ema, num_steps)`.

    **Arguments:**

    - `flow_map`: the [`trainax_fm.flow.FlowMap`][] to train.
    - `decay`: the EMA decay in `[0, 1)` (default 0.999; 0 makes the target the
        current weights after each update).
    - `ema`: the initial average (default: a copy of `flow_map`).
    """

    flow_map: FlowMap
    ema: FlowMap
    decay: float = eqx.field(static=True)

    evaluations_per_step = 2

    def __init__(self, flow_map: FlowMap, decay: float = 0.999, ema: Optional[FlowMap] = None):
        if not isinstance(flow_map, FlowMap):
            raise TypeError(
                "`flow_map` must be a trainax_fm.flow.FlowMap, got "
                f"{type(flow_map).__name__}; build one with FlowMap(velocity)."
            )
        self.decay = check_decay(decay)
        self.ema = copy_or_check_ema(flow_map, ema, "flow_map")
        self.flow_map = flow_map

    @property
    def online(self) -> FlowMap:
        return self.flow_map


class EMAVelocity(AbstractEMA):
    r"""A step-size-conditioned velocity in training together with an EMA of its weights.

    Pass it as the trainable stepper of [`trainax_fm.configuration.ShortcutModel`][]
    (or its trainer) to compute the self-consistency targets with the slowly moving
    average instead of the current weights (the "EMA target" of shortcut models). The
    optimizer wrapper [`trainax_fm.flow.flow_map_optimizer`][] (applied by the
    trainers) moves the average after every update:

    $$\theta_{ema} \leftarrow \text{decay}\;\theta_{ema} + (1 - \text{decay})\;\theta_{new}.$$

    Calling it evaluates the EMA velocity; to sample take
    `FlowMatchingStepper(ema_velocity.ema, num_steps)` (or `.velocity` for the online
    weights).

    **Arguments:**

    - `velocity`: the [`trainax_fm.flow.ConditionalVelocity`][] to train
        (`step_size_input=True`).
    - `decay`: the EMA decay in `[0, 1)` (default 0.999).
    - `ema`: the initial average (default: a copy of `velocity`).
    """

    velocity: ConditionalVelocity
    ema: ConditionalVelocity
    decay: float = eqx.field(static=True)

    def __init__(
        self,
        velocity: ConditionalVelocity,
        decay: float = 0.999,
        ema: Optional[ConditionalVelocity] = None,
    ):
        if not (isinstance(velocity, ConditionalVelocity) and velocity.step_size_input):
            raise TypeError(
                "`velocity` must be a trainax_fm.flow.ConditionalVelocity with "
                f"`step_size_input=True`, got {type(velocity).__name__}"
                + (
                    " without a step-size input"
                    if isinstance(velocity, ConditionalVelocity)
                    else ""
                )
                + "; build one with ConditionalVelocity(network, step_size_input=True) "
                "or with_step_size_input(trained_velocity)."
            )
        self.decay = check_decay(decay)
        self.ema = copy_or_check_ema(velocity, ema, "velocity")
        self.velocity = velocity

    @property
    def online(self) -> ConditionalVelocity:
        return self.velocity
