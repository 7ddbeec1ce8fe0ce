from typing import Optional

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ..flow._training import draw_noise
from ._checks import AbstractCheckedConfiguration
from ._flow_time import AbstractTimeSampler, DyadicTimeSampler, check_time_sampler


def check_step_sampler(
    sampler: Optional[AbstractTimeSampler], default_max_level: int, owner: str
) -> AbstractTimeSampler:
    """The `step_sampler` of a distillation: it must draw step sizes `d > 0`.

    `None` selects `DyadicTimeSampler(max_level=default_max_level)`.
    """
    if sampler is None:
        sampler = DyadicTimeSampler(max_level=default_max_level)
    sampler = check_time_sampler(sampler, "step_sampler", owner)
    if getattr(sampler, "min_step", None) == 0.0:
        raise ValueError(
            f"{owner} needs step sizes d > 0, but `step_sampler` "
            f"({type(sampler).__name__}) has min_step=0. Pass e.g. "
            "UniformTimeSampler(min_step=1/64, max_step=1.0), DyadicTimeSampler(...) "
            "or FixedStepTimeSampler(step)."
        )
    return sampler


class AbstractFlowConfiguration(AbstractCheckedConfiguration):
    """A flow-matching or distillation configuration.

    Each one conditions on the first `num_input_steps` states of a window, trains on
    the straight path from fresh noise to the state after them, and so needs windows
    of `num_input_steps + 1` snapshots and a random key. Not public: the concrete
    configurations document their fields.
    """

    num_input_steps: eqx.AbstractVar[int]

    @property
    def required_window_length(self) -> int:
        return self.num_input_steps + 1

    @property
    def needs_key(self) -> bool:
        return True

    def _draw(
        self,
        key: PRNGKeyArray,
        x1: Float[Array, "batch channels ..."],
        sampler: AbstractTimeSampler,
    ) -> tuple[
        Float[Array, "batch channels ..."], Float[Array, " batch"], Float[Array, " batch"]
    ]:
        """Noise `x0` shaped like `x1`, and times and step sizes `(t, d)` from `sampler`.

        `t` and `d` are cast to the dtype of `x1` so that half- or double-precision
        data keeps its precision through the interpolant and the model inputs.

        **Returns:**

        - `(x0, t, d)`.
        """
        key_noise, key_time = jax.random.split(key)
        x0 = draw_noise(key_noise, x1)
        t, d = sampler.sample(key_time, x1.shape[0])
        return x0, t.astype(x1.dtype), d.astype(x1.dtype)
