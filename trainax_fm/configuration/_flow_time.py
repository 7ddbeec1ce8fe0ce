"""Samplers of the flow time `t` and the step size `d` for flow-matching configurations."""

import abc
import math
import numbers
from typing import ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._checks import require_key


def check_unit(value, name: str, owner: str, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: `{name}` must be a number in "
            f"{'(0, 1]' if low_open else '[0, 1]'}, got {value!r}."
        )
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not (math.isfinite(value) and ok):
        raise ValueError(
            f"{owner}: `{name}` must lie in {'(0, 1]' if low_open else '[0, 1]'}, got "
            f"{value}."
        )
    return value


def _check_step_range(min_step, max_step, owner: str) -> tuple[float, float]:
    min_step = check_unit(min_step, "min_step", owner)
    max_step = check_unit(max_step, "max_step", owner)
    if min_step > max_step:
        raise ValueError(
            f"{owner}: `min_step` ({min_step}) must not exceed `max_step` ({max_step})."
        )
    return min_step, max_step


def _uniform_steps(key, batch_size: int, min_step: float, max_step: float):
    if min_step == max_step:
        return jnp.full((batch_size,), min_step)
    return jax.random.uniform(key, (batch_size,), minval=min_step, maxval=max_step)


class AbstractTimeSampler(eqx.Module):
    """Draws a flow time `t` and a step size `d` per sample, with `0 <= t <= 1 - d`.

    Flow matching uses only `t` (use a sampler with `max_step=0`, so `t` covers
    `[0, 1]`); distillation uses both: a step of size `d` from `t` stays inside
    `[0, 1]`.

    Every sampler declares `min_step`: the lower end of a configurable range of `d`
    (`0.0` means it may draw `d = 0`, which a distillation cannot train on), or `None`
    when its steps are not drawn from such a range.
    """

    min_step: eqx.AbstractVar[Optional[float]]

    @abc.abstractmethod
    def sample(
        self, key: PRNGKeyArray, batch_size: int
    ) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
        """Draw `batch_size` pairs.

        **Arguments:**

        - `key`: a JAX random key (required).
        - `batch_size`: the number of samples (a Python int).

        **Returns:**

        - `(t, d)`, two arrays of shape `(batch_size,)` with `d` in `[0, 1]` and
            `0 <= t <= 1 - d`.
        """

    def __call__(self, key: PRNGKeyArray, batch_size: int):
        """Same as `sample`."""
        return self.sample(key, batch_size)


def _prepare(sampler, key, batch_size):
    require_key(type(sampler).__name__, key)
    return check_positive_int(batch_size, "batch_size")


class UniformTimeSampler(AbstractTimeSampler):
    r"""Uniform step size and uniform time given the step.

    `d ~ U[min_step, max_step]`, then `t ~ U[0, 1 - d]`. The default
    (`min_step = max_step = 0`) gives `d = 0` and `t ~ U[0, 1]`: the standard
    flow-matching time.

    **Arguments:**

    - `min_step`, `max_step`: the range of `d` inside `[0, 1]` (equal values give a
        constant step).
    """

    min_step: float = eqx.field(static=True)
    max_step: float = eqx.field(static=True)

    def __init__(self, min_step: float = 0.0, max_step: float = 0.0):
        self.min_step, self.max_step = _check_step_range(
            min_step, max_step, "UniformTimeSampler"
        )

    def sample(self, key, batch_size):
        batch_size = _prepare(self, key, batch_size)
        key_d, key_t = jax.random.split(key)
        d = _uniform_steps(key_d, batch_size, self.min_step, self.max_step)
        t = jax.random.uniform(key_t, (batch_size,)) * (1.0 - d)
        return t, d


class BetaTimeSampler(AbstractTimeSampler):
    r"""Beta-shaped time: `t = (1 - d) * Beta(a, b)`, `d ~ U[min_step, max_step]`.

    `a = b = 1` is uniform; `a > b` concentrates the time near the data end `t = 1`
    (where fine detail is resolved), `a < b` near the noise end.

    **Arguments:**

    - `a`, `b`: the positive Beta parameters.
    - `min_step`, `max_step`: the range of `d` (default `0`: pure flow matching).
    """

    a: float = eqx.field(static=True)
    b: float = eqx.field(static=True)
    min_step: float = eqx.field(static=True)
    max_step: float = eqx.field(static=True)

    def __init__(
        self, a: float = 1.0, b: float = 1.0, *, min_step: float = 0.0, max_step: float = 0.0
    ):
        for name, value in (("a", a), ("b", b)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(
                    f"BetaTimeSampler: `{name}` must be a finite number > 0, got {value!r}."
                )
        self.a, self.b = float(a), float(b)
        self.min_step, self.max_step = _check_step_range(
            min_step, max_step, "BetaTimeSampler"
        )

    def sample(self, key, batch_size):
        batch_size = _prepare(self, key, batch_size)
        key_d, key_t = jax.random.split(key)
        d = _uniform_steps(key_d, batch_size, self.min_step, self.max_step)
        t = jax.random.beta(key_t, self.a, self.b, (batch_size,)) * (1.0 - d)
        return t, d


class DyadicTimeSampler(AbstractTimeSampler):
    r"""Dyadic step levels with the time on the level's grid.

    A level `k` is drawn uniformly from `{min_level, ..., max_level}`, the step is
    `d = 2^{-k}` and the time a uniformly drawn grid point `t = j d`,
    `j in {0, ..., 2^k - 1}`. Halving `d` (as the semigroup target does) lands on the
    next level's grid.

    **Arguments:**

    - `max_level`: the finest level (`d_min = 2^{-max_level}`).
    - `min_level`: the coarsest level (default 0, `d = 1`).
    """

    max_level: int = eqx.field(static=True)
    min_level: int = eqx.field(static=True)
    # Its steps are the levels 2^-k, all > 0: no range of `d` to declare.
    min_step: ClassVar[Optional[float]] = None

    def __init__(self, max_level: int = 6, min_level: int = 0):
        self.max_level = check_positive_int(max_level, "max_level", minimum=0)
        self.min_level = check_positive_int(min_level, "min_level", minimum=0)
        if self.min_level > self.max_level:
            raise ValueError(
                f"DyadicTimeSampler: `min_level` ({min_level}) must not exceed "
                f"`max_level` ({max_level})."
            )

    def sample(self, key, batch_size):
        batch_size = _prepare(self, key, batch_size)
        key_k, key_j = jax.random.split(key)
        level = jax.random.randint(
            key_k, (batch_size,), self.min_level, self.max_level + 1
        )
        num_cells = jnp.exp2(level.astype(jnp.result_type(float)))
        d = 1.0 / num_cells
        j = jnp.floor(jax.random.uniform(key_j, (batch_size,)) * num_cells)
        j = jnp.minimum(j, num_cells - 1.0)
        return j * d, d


class FixedStepTimeSampler(AbstractTimeSampler):
    r"""A fixed macro step `d = step`, with the time on its grid plus optional jitter.

    The grid holds the `J = floor((1 - d) / d) + 1` points `j d` with `j d <= 1 - d`.
    A grid point is drawn uniformly and moved by `jitter * d * u`, `u ~ U[-1/2, 1/2]`,
    then clipped to `[0, 1 - d]`. `jitter = 0` keeps `t` on the grid (the times a
    `1/d`-step sampler visits, as in progressive distillation); `jitter = 1` spreads
    it over the whole interval.

    **Arguments:**

    - `step`: the macro step `d` in `(0, 1]`.
    - `jitter`: in `[0, 1]`, default 0.
    """

    step: float = eqx.field(static=True)
    jitter: float = eqx.field(static=True)
    # One step `d = step > 0`, not a range.
    min_step: ClassVar[Optional[float]] = None

    def __init__(self, step: float, jitter: float = 0.0):
        self.step = check_unit(step, "step", "FixedStepTimeSampler", low_open=True)
        self.jitter = check_unit(jitter, "jitter", "FixedStepTimeSampler")

    @property
    def num_grid_points(self) -> int:
        return math.floor((1.0 - self.step) / self.step + 1e-9) + 1

    def sample(self, key, batch_size):
        batch_size = _prepare(self, key, batch_size)
        key_j, key_u = jax.random.split(key)
        j = jax.random.randint(key_j, (batch_size,), 0, self.num_grid_points)
        t = j * self.step
        if self.jitter > 0.0:
            u = jax.random.uniform(key_u, (batch_size,), minval=-0.5, maxval=0.5)
            t = t + self.jitter * self.step * u
        t = jnp.clip(t, 0.0, 1.0 - self.step)
        return t.astype(jnp.result_type(float)), jnp.full((batch_size,), self.step)


_DISTRIBUTIONS = ("uniform", "logit_normal")


class TimePairSampler(AbstractTimeSampler):
    r"""Two flow times `s <= e` per sample, returned as the start `t = s` and the step `d = e - s`.

    Two times are drawn independently from `distribution` and ordered. A fixed share
    of every batch, its first `round(equal_share * B)` samples, gets `s = e` (`d = 0`,
    the flow-matching diagonal, at the first draw); the rest keeps the ordered pair.
    Training the two-time flow maps of
    [`trainax_fm.configuration.LagrangianSelfDistillation`][] and
    [`trainax_fm.configuration.MeanFlow`][] needs both: `d = 0` pins the
    instantaneous velocity, `d > 0` the map. (A fixed share instead of a coin flip per
    sample keeps the batch composition the same at every update; windows arrive in
    random order, so which samples are diagonal carries no information.)

    - `"uniform"`: `U[0, 1]`; the ordered pair is uniform on the triangle `s <= e`.
    - `"logit_normal"`: `sigmoid(mean + std * N(0, 1))`. MeanFlow's best setting
        (mean -0.4, std 1.0 with noise at time 1) is `mean=0.4` in trainax_fm's
        convention (noise at `t = 0`).

    **Arguments:**

    - `distribution`: `"uniform"` (default) or `"logit_normal"`.
    - `mean`, `std`: the logit-normal parameters (`std > 0`; unused for uniform).
    - `equal_share`: the share of `d = 0` samples in `[0, 1]` (default 0.75, MeanFlow's
        and the Lagrangian self-distillation's choice).
    """

    distribution: str = eqx.field(static=True)
    mean: float = eqx.field(static=True)
    std: float = eqx.field(static=True)
    equal_share: float = eqx.field(static=True)
    # It draws two times, not a step from a range; `d = 0` is by design (`equal_share`).
    min_step: ClassVar[Optional[float]] = None

    def __init__(
        self,
        distribution: str = "uniform",
        *,
        mean: float = 0.0,
        std: float = 1.0,
        equal_share: float = 0.75,
    ):
        owner = "TimePairSampler"
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"{owner}: `distribution` must be one of {_DISTRIBUTIONS}, got "
                f"{distribution!r}."
            )
        for name, value, positive in (("mean", mean, False), ("std", std, True)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and (value > 0 or not positive)
            ):
                raise ValueError(
                    f"{owner}: `{name}` must be a finite number{' > 0' if positive else ''}"
                    f", got {value!r}."
                )
        self.distribution = distribution
        self.mean, self.std = float(mean), float(std)
        self.equal_share = check_unit(equal_share, "equal_share", owner)

    def num_equal(self, batch_size: int) -> int:
        """How many of `batch_size` samples have `d = 0` (the first ones)."""
        return int(round(self.equal_share * batch_size))

    def _times(self, key, batch_size):
        if self.distribution == "uniform":
            return jax.random.uniform(key, (batch_size,))
        return jax.nn.sigmoid(self.mean + self.std * jax.random.normal(key, (batch_size,)))

    def sample(self, key, batch_size):
        batch_size = _prepare(self, key, batch_size)
        key_a, key_b = jax.random.split(key)
        first, second = self._times(key_a, batch_size), self._times(key_b, batch_size)
        diagonal = jnp.arange(batch_size) < self.num_equal(batch_size)
        start = jnp.where(diagonal, first, jnp.minimum(first, second))
        end = jnp.where(diagonal, first, jnp.maximum(first, second))
        return start, end - start


def check_time_sampler(sampler: Optional[AbstractTimeSampler], name: str, owner: str):
    if not isinstance(sampler, AbstractTimeSampler):
        raise TypeError(
            f"{owner}: `{name}` must be a trainax_fm.configuration time sampler "
            "(UniformTimeSampler, BetaTimeSampler, DyadicTimeSampler, "
            f"FixedStepTimeSampler, TimePairSampler), got {type(sampler).__name__}."
        )
    return sampler
