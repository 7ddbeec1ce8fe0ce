"""PDE-Refiner's sampler: a one-step prediction refined by denoising at decreasing noise."""

import numbers
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int
from ._velocity import ConditionalVelocity


def check_min_noise_std(value) -> float:
    """`value` as a float in `(0, 1)`, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`min_noise_std` must be a float in (0, 1), got {value!r}.")
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`min_noise_std` must lie in (0, 1), got {value}: the noise levels "
            "`min_noise_std ** (k / K)` must decrease from 1 at k = 0 to `min_noise_std` "
            "at k = K (e.g. 1e-3 for float32 states of unit scale)."
        )
    return float(value)


def refinement_time(k, num_refinement_steps: int, dtype=jnp.float32):
    """The conditioning the network sees at refinement step `k`: `k / K` in `[0, 1]`
    (0 for `K = 0`), passed where a flow network expects its flow time; `k` an int or
    an integer array, the result in `dtype` (that of the states)."""
    return jnp.asarray(k).astype(dtype) / max(num_refinement_steps, 1)


def refinement_noise_std(k, num_refinement_steps: int, min_noise_std: float, dtype=jnp.float32):
    """`sigma_k = min_noise_std ** (k / K)` (1 at `k = 0`) in `dtype`."""
    return jnp.asarray(min_noise_std, dtype) ** refinement_time(k, num_refinement_steps, dtype)


def check_refiner_model(model, name: str = "model") -> ConditionalVelocity:
    """`model` if it is a `ConditionalVelocity` without a step-size input."""
    if not isinstance(model, ConditionalVelocity):
        raise TypeError(
            f"`{name}` must be a trainax_fm.flow.ConditionalVelocity (it feeds the network "
            "[u_noisy, y, k/K] on the channel axis), got "
            f"{type(model).__name__}. Wrap your network: ConditionalVelocity(network) with "
            "velocity_input_channels(C, H) input channels."
        )
    if model.step_size_input:
        raise ValueError(
            f"`{name}` has `step_size_input=True`, but PDE-Refiner conditions only on the "
            "refinement step. Build it with ConditionalVelocity(network) "
            "(`step_size_input=False`)."
        )
    return model


class PDERefinerStepper(eqx.Module):
    r"""PDE-Refiner (Lippe et al. 2023): a one-step prediction refined `K` times by
    denoising at exponentially decreasing noise levels.

    With `y` the `H` previous states and `σ_k = σ_min^{k/K}`, one physical step is

    $$\hat u^{1} = f_\theta(0,\ y,\ 0),\qquad
      \tilde u^{k} = \hat u^{k} + \sigma_k \xi_k,\quad
      \hat u^{k+1} = \tilde u^{k} - \sigma_k\, f_\theta\big(\tilde u^{k},\ y,\ k/K\big),
      \quad k = 1, \dots, K,$$

    with `ξ_k ~ N(0, I)` and the result `û^{K+1}`. The network first predicts the next
    state from the current one (its noisy-state input all zeros), then, at every
    refinement step, predicts the noise `ξ_k` added to its own estimate; removing it
    restores the estimate, with the small-amplitude (high-frequency) content that the
    one-step prediction misses. It costs `K + 1` network evaluations per physical step
    (`num_function_evaluations`). The result is a deterministic function of `y` and the
    `key` (`K = 0` needs no key: it is the one-step prediction).

    The network is a [`trainax_fm.flow.ConditionalVelocity`][]: it sees
    `[ũ, y, k/K]` on the channel axis, the refinement step in place of the flow time,
    so every network that serves flow matching serves here
    ([`trainax_fm.flow.velocity_input_channels`][] sizes it). Train it with
    [`trainax_fm.configuration.PDERefiner`][] (the same `K` and `σ_min`).

    **Arguments:**

    - `model`: a [`trainax_fm.flow.ConditionalVelocity`][] without step-size input.
    - `num_refinement_steps`: `K` (>= 0), the refinement steps after the prediction.
    - `min_noise_std`: `σ_min` in `(0, 1)`, the noise level of the last refinement step.
    - `num_input_steps`: `H`, the number of previous states in `y`.
    """

    model: ConditionalVelocity
    num_refinement_steps: int = eqx.field(static=True)
    min_noise_std: float = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)

    def __init__(
        self,
        model: ConditionalVelocity,
        num_refinement_steps: int = 3,
        min_noise_std: float = 1e-3,
        *,
        num_input_steps: int = 1,
    ):
        self.model = check_refiner_model(model)
        self.num_refinement_steps = check_positive_int(
            num_refinement_steps, "num_refinement_steps", minimum=0
        )
        self.min_noise_std = check_min_noise_std(min_noise_std)
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")

    @property
    def needs_key(self) -> bool:
        """`True` when there is a refinement step (it draws noise)."""
        return self.num_refinement_steps > 0

    @property
    def num_function_evaluations(self) -> int:
        """Network evaluations per physical step: `K + 1`."""
        return self.num_refinement_steps + 1

    def __call__(
        self,
        y: Float[Array, "history_channels ..."],
        *,
        key: Optional[PRNGKeyArray] = None,
    ) -> Float[Array, "channels ..."]:
        """The refined prediction of the next physical state.

        **Arguments:**

        - `y`: the `H` previous states stacked on the channel axis,
            `(H*C, *spatial)`; one unbatched input, vmap for batches.
        - `key`: a JAX random key for the refinement noise (required for `K >= 1`).

        **Returns:**

        - The next state `(C, *spatial)`.
        """
        if key is None and self.needs_key:
            raise ValueError(
                f"PDERefinerStepper with num_refinement_steps={self.num_refinement_steps} "
                "draws noise at every refinement step and needs a random key: call it as "
                "`stepper(y, key=jax.random.key(0))`, or roll it out with "
                "`trainax_fm.rollout(stepper, ic, n, key=...)`."
            )
        y = jnp.asarray(y)
        if y.ndim < 1 or y.shape[0] % self.num_input_steps != 0:
            raise ValueError(
                f"PDERefinerStepper has num_input_steps={self.num_input_steps} and expects "
                "`y` shaped (H*C, *spatial) (the H previous states stacked on the channel "
                f"axis), got shape {tuple(y.shape)} whose channel axis is not a multiple "
                f"of {self.num_input_steps}. Pass one unbatched input; vmap for batches."
            )
        num_channels = y.shape[0] // self.num_input_steps
        shape = (num_channels,) + tuple(y.shape[1:])
        num_steps = self.num_refinement_steps
        estimate = self.model(jnp.zeros(shape, y.dtype), y, refinement_time(0, num_steps, y.dtype))
        if num_steps == 0:
            return estimate
        # A Python loop: K is small (the paper uses 1 to 8) and static, and unrolled
        # convolutions run faster on CPU than inside a loop body.
        for k, step_key in zip(range(1, num_steps + 1), jax.random.split(key, num_steps)):
            sigma = refinement_noise_std(k, num_steps, self.min_noise_std, y.dtype)
            noisy = estimate + sigma * jax.random.normal(step_key, shape, y.dtype)
            estimate = noisy - sigma * self.model(noisy, y, refinement_time(k, num_steps, y.dtype))
        return estimate
