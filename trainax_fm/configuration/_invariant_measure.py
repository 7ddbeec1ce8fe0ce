import abc
from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PyTree

from .._argument_checks import check_positive_int
from .._rollout._training import (
    Unroll,
    apply_stepper,
    check_unroll,
    loop,
    required_length_error,
    resolve_unroll,
    state_at,
    time_major,
    time_slice,
    window_length,
)
from ..metrics._mmd import DEFAULT_BANDWIDTHS, check_bandwidths, squared_mmd
from ..metrics._sinkhorn import (
    DEFAULT_SINKHORN_EPSILON,
    DEFAULT_SINKHORN_ITERATIONS,
    check_epsilon,
    squared_sinkhorn,
)
from ._base import Loss, Windows
from ._checks import AbstractCheckedConfiguration, CallInputs


class AbstractInvariantMeasure(AbstractCheckedConfiguration):
    """A distance between the states of an `R`-step rollout from every window's first
    state and the data states `u_1 ... u_R` of the windows, as sample sets.

    Subclasses declare `num_rollout_steps` and `unroll` and implement `distance`.
    """

    num_rollout_steps: eqx.AbstractVar[int]
    unroll: eqx.AbstractVar[Unroll]

    @abc.abstractmethod
    def distance(self, predictions: Float[Array, "n d"], references: Float[Array, "n d"]) -> Loss:
        """The distance between the `(B·R, D)` predicted and data samples."""

    @property
    def required_window_length(self) -> int:
        return self.num_rollout_steps + 1

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        del inputs
        predictions, references = _rollout_samples(
            type(self).__name__, self.num_rollout_steps, self.unroll, stepper, data
        )
        return self.distance(predictions, references)


class InvariantMeasureMMD(AbstractInvariantMeasure):
    r"""Invariant-measure regularisation (DySLIM, Schiff et al. 2024): make the states
    of the emulator's rollout distributed like the states of the data.

    The stepper is rolled out `R = num_rollout_steps` steps from the initial condition
    of every window, with gradient; all `B·R` predicted states form one sample set and
    the `B·R` data states `u_1 ... u_R` of the windows the other. The loss is their
    multi-bandwidth squared MMD (see [`trainax_fm.metrics.mmd`][]):

    $$L = \mathrm{MMD}^2\big(\{f_\theta^{t}(u_0^b)\}_{t \le R,\,b},\ \{u_t^b\}_{t \le R,\,b}\big)$$

    It does not ask the rollout to follow each trajectory (which a chaotic system
    forbids beyond a few Lyapunov times), only to stay on the data's distribution;
    pair it with a pointwise loss through [`trainax_fm.configuration.Composite`][]:

    ```python
    Composite([Supervised(1), InvariantMeasureMMD(16)], [1.0, 0.1])
    ```

    The MMD compares whole states (PyTree leaves are flattened and concatenated), so
    standardise the data or choose `bandwidths` on its scale.

    **Arguments:**

    - `num_rollout_steps`: `R`, the length of the rollout whose states are compared.
    - `bandwidths`: Gaussian kernel bandwidths `σ`, per entry of a state.
    - `unroll`: as in [`trainax_fm.configuration.Supervised`][].

    Windows hold `R + 1` snapshots.
    """

    num_rollout_steps: int = eqx.field(static=True)
    bandwidths: tuple[float, ...] = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        num_rollout_steps: int = 1,
        *,
        bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS,
        unroll: Unroll = "auto",
    ):
        self.num_rollout_steps = check_positive_int(num_rollout_steps, "num_rollout_steps")
        self.bandwidths = check_bandwidths(bandwidths)
        self.unroll = check_unroll(unroll)

    def distance(self, predictions: Float[Array, "n d"], references: Float[Array, "n d"]) -> Loss:
        return squared_mmd(predictions, references, self.bandwidths)


class InvariantMeasureSinkhorn(AbstractInvariantMeasure):
    r"""Invariant-measure regularisation with the debiased Sinkhorn divergence instead
    of the MMD of [`trainax_fm.configuration.InvariantMeasureMMD`][]: the same rollout
    and sample sets, compared by an entropic optimal-transport distance
    ([`trainax_fm.metrics.sinkhorn_divergence`][]):

    $$L = S_\varepsilon\big(\{f_\theta^{t}(u_0^b)\}_{t \le R,\,b},\ \{u_t^b\}_{t \le R,\,b}\big),
    \qquad S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
    - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
    - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta)$$

    with the cost `|x - y|^2 / D` (per entry). It needs no kernel bandwidths: the one
    scale, `epsilon`, is a blur below which the divergence behaves like the squared
    Wasserstein-2 distance (it sees where the mass is, also far from the data, where
    a Gaussian kernel's gradient vanishes). Each call runs `3 * num_iterations`
    Sinkhorn iterations on `(B·R) x (B·R)` cost matrices; the gradient is the
    envelope-theorem gradient, exact once the iterations have converged. Pair it with a
    pointwise loss:

    ```python
    Composite([Supervised(1), InvariantMeasureSinkhorn(16)], [1.0, 0.1])
    ```

    **Arguments:**

    - `num_rollout_steps`: `R`, the length of the rollout whose states are compared.
    - `epsilon`: the entropic regularisation `ε > 0` in squared units per entry
        (standardise the data, or choose it on the data's scale).
    - `num_iterations`: Sinkhorn iterations per transport problem (more for smaller
        `epsilon`; roughly `10 / epsilon` on standardised data).
    - `unroll`: as in [`trainax_fm.configuration.Supervised`][].

    Windows hold `R + 1` snapshots.
    """

    num_rollout_steps: int = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    num_iterations: int = eqx.field(static=True)
    unroll: Unroll = eqx.field(static=True)

    def __init__(
        self,
        num_rollout_steps: int = 1,
        *,
        epsilon: float = DEFAULT_SINKHORN_EPSILON,
        num_iterations: int = DEFAULT_SINKHORN_ITERATIONS,
        unroll: Unroll = "auto",
    ):
        self.num_rollout_steps = check_positive_int(num_rollout_steps, "num_rollout_steps")
        self.epsilon = check_epsilon(epsilon)
        self.num_iterations = check_positive_int(num_iterations, "num_iterations")
        self.unroll = check_unroll(unroll)

    def distance(self, predictions: Float[Array, "n d"], references: Float[Array, "n d"]) -> Loss:
        return squared_sinkhorn(predictions, references, self.epsilon, self.num_iterations)


def _rollout_samples(
    name: str, num_steps: int, unroll: Unroll, stepper: eqx.Module, data: Windows
) -> tuple[Float[Array, "n d"], Float[Array, "n d"]]:
    """The `B·R` predicted states of an `R`-step rollout from every window's first
    state and the `B·R` data states `u_1 ... u_R`, both flattened to `(B·R, D)`."""
    if window_length(data) < num_steps + 1:
        raise required_length_error(
            name,
            num_steps + 1,
            window_length(data),
            f"1 initial state + {num_steps} reference states",
        )
    references = time_major(time_slice(data, 1, num_steps + 1))

    def body(state, reference, t):
        prediction = apply_stepper(stepper, state, reference)
        return prediction, prediction

    _, predictions = loop(
        body,
        state_at(data, 0),
        references,
        num_steps,
        unroll=resolve_unroll(unroll, num_steps),
    )
    return _flat_samples(predictions), _flat_samples(references)


def _flat_samples(states: PyTree[Float[Array, "time batch ..."]]) -> Float[Array, "n d"]:
    """`(R, B, ...)` leaves to one `(R*B, D)` matrix (leaves concatenated)."""
    leaves = jtu.tree_leaves(states)
    num = leaves[0].shape[0] * leaves[0].shape[1]
    return jnp.concatenate(
        [jax.lax.reshape(leaf, (num, leaf[0, 0].size)) for leaf in leaves], axis=1
    )
