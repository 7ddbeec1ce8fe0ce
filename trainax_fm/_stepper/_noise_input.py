"""A stochastic one-step emulator built from any network: noise as extra input channels."""

from typing import Callable, ClassVar, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._argument_checks import check_positive_int


class NoiseInputStepper(eqx.Module):
    r"""A stochastic stepper: the network sees the state plus `k` channels of fresh
    standard Gaussian noise.

    $$u_{n+1} = f_\theta\big([u_n,\ \xi_n]\big),\qquad \xi_n \sim \mathcal{N}(0, I)
    \ \text{shaped}\ (k, *\text{spatial})$$

    Every call draws new noise from its `key`, so repeated calls from one state sample
    a distribution of next states at the cost of one network evaluation each. Trained
    with [`trainax_fm.configuration.CRPSEnsemble`][] this is an ensemble emulator in the
    style of CRPS-trained weather models (FGN, AIFS-CRPS): the network learns to turn
    the noise into the spread of the next state. It declares `needs_key = True`, so
    `trainax_fm.rollout(stepper, ic, n, key=key)` samples a trajectory and
    `num_samples=M` an ensemble.

    **Arguments:**

    - `network`: any channels-first network taking `H*C + k` input channels (the
        stacked history, then the noise) and returning the `C` channels of one state,
        e.g. `eqx.nn.Conv1d(C + k, C, ...)` or a pdequinox architecture; for ODE states
        `(C,)` an MLP with `C + k` input features.
    - `num_noise_channels`: `k` (>= 1), the number of noise channels appended.
    """

    network: Callable
    num_noise_channels: int = eqx.field(static=True)

    # The protocol of `trainax_fm._stepper._protocol.needs_key`: every call draws noise.
    needs_key: ClassVar[bool] = True

    def __init__(self, network: Callable, num_noise_channels: int = 1):
        if not callable(network):
            raise TypeError(f"`network` must be callable, got {type(network).__name__}.")
        self.network = network
        self.num_noise_channels = check_positive_int(num_noise_channels, "num_noise_channels")

    def __call__(
        self,
        state: Float[Array, "channels ..."],
        *,
        key: Optional[PRNGKeyArray] = None,
    ) -> Float[Array, "channels ..."]:
        """One sample of the next state.

        **Arguments:**

        - `state`: the input state `(C, *spatial)` (or the `H` stacked past states
            `(H*C, *spatial)`); one unbatched array, vmap for batches.
        - `key`: a JAX random key for the noise (required).

        **Returns:**

        - What the network returns for `[state, noise]` on the channel axis.
        """
        if key is None:
            raise ValueError(
                "NoiseInputStepper is stochastic (it draws fresh noise every call) and "
                "needs a random key: call it as `stepper(u, key=jax.random.key(0))`, or "
                "roll it out with `trainax_fm.rollout(stepper, ic, n, key=...)`."
            )
        state = jnp.asarray(state)
        if state.ndim < 1:
            raise ValueError(
                "NoiseInputStepper expects a state shaped (C, *spatial) with a channel "
                f"axis first, got shape {tuple(state.shape)}."
            )
        noise = jax.random.normal(
            key, (self.num_noise_channels,) + tuple(state.shape[1:]), dtype=state.dtype
        )
        return self.network(jnp.concatenate([state, noise], axis=0))
