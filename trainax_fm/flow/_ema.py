import numbers
from typing import Optional

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from ._flow_map import FlowMap
from ._velocity import Time


class EMAFlowMap(eqx.Module):
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
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not (
            0.0 <= float(decay) < 1.0
        ):
            raise ValueError(f"`decay` must be a number in [0, 1), got {decay!r}.")
        if ema is None:
            ema = jtu.tree_map(lambda a: jnp.array(a) if eqx.is_array(a) else a, flow_map)
        elif jtu.tree_structure(ema) != jtu.tree_structure(flow_map):
            raise ValueError(
                "`ema` must have the structure of `flow_map` (a copy of it); pass None "
                "to start from a copy."
            )
        self.flow_map = flow_map
        self.ema = ema
        self.decay = float(decay)

    def __call__(
        self,
        x_t: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Time,
    ) -> Float[Array, "channels ..."]:
        """`F_d(x_t, y, t)` of the EMA flow map."""
        return self.ema(x_t, y, t, d)
