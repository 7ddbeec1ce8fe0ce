"""Any stepper whose drifting states a thermalizer pulls back onto the data's
distribution at inference time."""

import numbers
from typing import Callable, NamedTuple, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._argument_checks import check_bool, check_positive_int
from .._stepper._normalized import NormalizedStepper
from .._stepper._protocol import needs_key
from ._thermalizer import Thermalizer


class ThermalizedRollout(NamedTuple):
    """What [`trainax_fm.flow.ThermalizedStepper.rollout`][] returns.

    **Fields:**

    - `trajectory`: the states `(T, C, *spatial)` (`(B, T, ...)` if batched).
    - `noise_levels`: the estimated level `k̂` of every state after the emulator's
        step, `(T,)` (`(B, T)`); `0` at steps where the level was not checked.
    - `interventions`: `(T,)` (`(B, T)`) booleans, `True` where the state was denoised.
    - `num_interventions`: their count (per trajectory if batched).
    """

    trajectory: Float[Array, "*batch_time_channels_spatial"]
    noise_levels: Int[Array, "*batch time"]
    interventions: Bool[Array, "*batch time"]
    num_interventions: Int[Array, "*batch"]


class ThermalizedStepper(eqx.Module):
    r"""Wrap any stepper with a trained [`trainax_fm.flow.Thermalizer`][]
    (Pedersen, Zanna and Bruna 2025): after the emulator's step, the thermalizer
    estimates the noise level `k̂` of the new state; if `k̂ > threshold` the state is
    taken to be a noisy sample of the stationary distribution at level `k̂` and is
    denoised by the reverse diffusion from `k̂` to `0` (`k̂` network evaluations):

    $$u_{t+1} = \begin{cases} \mathrm{denoise}_{\hat k}\big(f(u_t)\big) &
      \hat k = \hat k(f(u_t)) > \text{threshold} \\ f(u_t) & \text{otherwise.}\end{cases}$$

    In-distribution states are left exactly as the emulator made them; a state that
    drifted off the data's distribution (blur, spurious small scales, a growing
    mode) is pulled back to it before the error can grow. The emulator and the
    thermalizer are trained separately; any stepper works, deterministic or
    stochastic (then called with its own key).

    As a stepper it checks the level after every step and works with
    `trainax_fm.rollout` (pass a `key` when the emulator is stochastic or
    `stochastic_denoising=True`). [`rollout`][trainax_fm.flow.ThermalizedStepper.rollout]
    checks every `every` steps and reports where it intervened:

    ```python
    thermalized = tx.flow.ThermalizedStepper(emulator, thermalizer, threshold=10)
    states = tx.rollout(thermalized, ic, 5_000, key=key)            # a plain rollout
    report = thermalized.rollout(ic, 5_000, key=key)                # with the report
    report.num_interventions, report.noise_levels
    ```

    **Arguments:**

    - `stepper`: the emulator, any stepper mapping one state to the next.
    - `thermalizer`: a trained `Thermalizer` of single states of the same shape, or a
        `trainax_fm.NormalizedStepper` around one (trained on normalised states: the
        state is normalised for the check and the denoising, and mapped back).
    - `threshold`: an integer level in `0 ... K - 1`; states estimated above it are
        denoised. The paper picks it from the levels the classifier assigns to data
        states (in-distribution states sit at the lowest levels).
    - `every`: check the level every `every` steps (in `rollout`; the stepper call
        used by `trainax_fm.rollout` checks every step and needs `every = 1`).
    - `stochastic_denoising`: ancestral sampling (`True`, fresh noise at every reverse
        step, as in DDPM) or the deterministic posterior mean (`False`).
    """

    stepper: Callable
    thermalizer: Union[Thermalizer, NormalizedStepper]
    threshold: int = eqx.field(static=True)
    every: int = eqx.field(static=True)
    stochastic_denoising: bool = eqx.field(static=True)

    def __init__(
        self,
        stepper: Callable,
        thermalizer: Union[Thermalizer, NormalizedStepper],
        *,
        threshold: int,
        every: int = 1,
        stochastic_denoising: bool = False,
    ):
        if not callable(stepper):
            raise TypeError(f"`stepper` must be callable, got {type(stepper).__name__}.")
        inner = thermalizer
        if isinstance(thermalizer, NormalizedStepper):
            if thermalizer.residual:
                raise ValueError(
                    "`thermalizer` is a NormalizedStepper with residual=True, but a "
                    "thermalizer models states, not increments: train it as "
                    "NormalizedStepper(thermalizer, normalizer) (residual=False)."
                )
            inner = thermalizer.network
        if not isinstance(inner, Thermalizer):
            raise TypeError(
                "`thermalizer` must be a trainax_fm.flow.Thermalizer (trained with "
                "ThermalizerTrainer or the ThermalizerDiffusion configuration), or a "
                f"NormalizedStepper around one, got {type(thermalizer).__name__}."
            )
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Integral):
            raise TypeError(
                f"`threshold` must be an integer noise level, got {threshold!r} of type "
                f"{type(threshold).__name__}."
            )
        if not 0 <= threshold < inner.num_noise_steps:
            raise ValueError(
                f"`threshold` must lie in 0 ... {inner.num_noise_steps - 1} (the "
                f"thermalizer has num_noise_steps={inner.num_noise_steps} levels), "
                f"got {threshold}: states estimated above it are denoised."
            )
        self.stepper = stepper
        self.thermalizer = thermalizer
        self.threshold = int(threshold)
        self.every = check_positive_int(every, "every")
        self.stochastic_denoising = check_bool(stochastic_denoising, "stochastic_denoising")

    @property
    def needs_key(self) -> bool:
        return needs_key(self.stepper) or self.stochastic_denoising

    def thermalize(
        self, state: Float[Array, "channels ..."], *, key: Optional[PRNGKeyArray] = None
    ) -> tuple[Float[Array, "channels ..."], Int[Array, ""], Bool[Array, ""]]:
        """Check one state and denoise it if its estimated level exceeds the threshold.

        **Arguments:**

        - `state`: one state `(C, *spatial)`.
        - `key`: the key of the reverse diffusion (`stochastic_denoising=True`).

        **Returns:**

        - `(state, k̂, intervened)`: the (possibly denoised) state, the estimated
            level and whether it was denoised.
        """
        if isinstance(self.thermalizer, NormalizedStepper):
            thermalizer = self.thermalizer.network
            normalize = self.thermalizer.normalizer.normalize
            denormalize = self.thermalizer.normalizer.denormalize
        else:
            thermalizer = self.thermalizer
            normalize = denormalize = _identity
        level = thermalizer.estimate_noise_level(normalize(state))
        intervene = level > self.threshold
        denoise_key = key if self.stochastic_denoising else None
        # `lax.cond` skips the reverse diffusion when the state is left alone (which
        # then comes back bit for bit); under `vmap` both branches run, so those
        # states ask for zero reverse steps.
        trips = jnp.where(intervene, level, 0)
        denoised = jax.lax.cond(
            intervene,
            lambda s: denormalize(thermalizer.denoise(normalize(s), trips, key=denoise_key)),
            lambda s: s,
            state,
        )
        return denoised, level, intervene

    def _step(self, state, key):
        if key is None:
            emulator_key = denoise_key = None
        else:
            emulator_key, denoise_key = jax.random.split(key)
        if needs_key(self.stepper):
            if emulator_key is None:
                raise ValueError(
                    "The wrapped stepper is stochastic (`needs_key = True`): call the "
                    "ThermalizedStepper with `key=...` (trainax_fm.rollout(..., key=key))."
                )
            return self.stepper(state, key=emulator_key), denoise_key
        return self.stepper(state), denoise_key

    def __call__(
        self, state: Float[Array, "channels ..."], *, key: Optional[PRNGKeyArray] = None
    ) -> Float[Array, "channels ..."]:
        """One emulator step, then the check (and denoising) of the new state.

        **Arguments:**

        - `state`: one state `(C, *spatial)`.
        - `key`: required if the emulator is stochastic or `stochastic_denoising=True`.

        **Returns:**

        - The next state.
        """
        if self.every != 1:
            raise ValueError(
                f"A ThermalizedStepper with every={self.every} checks only every "
                f"{self.every}-th state, which a stateless stepper call cannot count: "
                "roll it out with `thermalized.rollout(ic, num_steps, key=...)`, or build "
                "it with every=1 for trainax_fm.rollout."
            )
        if self.stochastic_denoising and key is None:
            raise ValueError(
                "stochastic_denoising=True draws noise in the reverse diffusion: pass "
                "`key=...` (trainax_fm.rollout(..., key=key))."
            )
        state, denoise_key = self._step(state, key)
        return self.thermalize(state, key=denoise_key)[0]

    def rollout(
        self,
        ic: Float[Array, "*batch_channels_spatial"],
        num_steps: int,
        *,
        key: Optional[PRNGKeyArray] = None,
        batched: bool = False,
    ) -> ThermalizedRollout:
        """Roll out `num_steps` steps, checking the level every `every` steps (after
        steps `every, 2·every, ...`), and report the interventions.

        **Arguments:**

        - `ic`: the initial state `(C, *spatial)`, or `(B, C, *spatial)` with
            `batched=True`.
        - `num_steps`: a positive int.
        - `key`: required if `needs_key`; step `t` uses `jax.random.split(key, T)[t]`
            (per trajectory `jax.random.split(key, B)[b]` first, if batched).
        - `batched`: whether `ic` has a leading batch axis.

        **Returns:**

        - A [`trainax_fm.flow.ThermalizedRollout`][].
        """
        num_steps = check_positive_int(num_steps, "num_steps")
        batched = check_bool(batched, "batched")
        if key is None and self.needs_key:
            raise ValueError(
                "This ThermalizedStepper is stochastic (its emulator needs a key, or "
                "stochastic_denoising=True): pass `key=jax.random.key(seed)`."
            )
        ic = jnp.asarray(ic)
        if batched:
            keys = None if key is None else jax.random.split(key, ic.shape[0])
            return jax.vmap(lambda x, k: _rollout(self, x, num_steps, k))(ic, keys)
        return _rollout(self, ic, num_steps, key)


def _identity(x):
    return x


@eqx.filter_jit
def _rollout(stepper: ThermalizedStepper, ic, num_steps: int, key) -> ThermalizedRollout:
    step_keys = None if key is None else jax.random.split(key, num_steps)
    indices = jnp.arange(1, num_steps + 1)

    def body(state, inputs):
        index, step_key = inputs
        state, denoise_key = stepper._step(state, step_key)
        checked = index % stepper.every == 0

        def check(s):
            return stepper.thermalize(s, key=denoise_key)

        def skip(s):
            return s, jnp.zeros((), jnp.int32), jnp.zeros((), bool)

        state, level, intervened = jax.lax.cond(checked, check, skip, state)
        return state, (state, level, intervened)

    _, (trajectory, levels, interventions) = jax.lax.scan(
        body, ic, (indices, step_keys), length=num_steps
    )
    return ThermalizedRollout(
        trajectory, levels, interventions, jnp.sum(interventions, dtype=jnp.int32)
    )
