"""Steppers that predict several states per call (multi-step outputs)."""

from typing import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_positive_int


class ChainedSteps(eqx.Module):
    """`k` chained calls of a one-step stepper, their states stacked on the channel
    axis: `(C, *spatial) -> (k*C, *spatial)`."""

    stepper: Callable
    num_steps: int = eqx.field(static=True)

    def __call__(self, state: Float[Array, "channels ..."]) -> Float[Array, "block_channels ..."]:
        states = []
        for _ in range(self.num_steps):
            state = self.stepper(state)
            states.append(state)
        return jnp.concatenate(states, axis=0)


class BlockStepper(eqx.Module):
    """A stepper that predicts the next `k` states in one call.

    It works on *blocks*: `k` consecutive states stacked on the channel axis,
    `(k*C, *spatial)`. From a block it takes the last `num_input_steps` states
    (`num_input_steps*C` channels), hands them to `network`, which returns the next
    `k` states as one block. Train it with any trainer and `num_output_steps=k` (the
    windows are then cut into blocks, so `num_rollout_steps=R` unrolls `R` blocks,
    `R*k` states); roll it out with `trainax_fm.rollout` as any stepper (it returns
    single states).

    **Arguments:**

    - `network`: maps `(num_input_steps*C, *spatial)` to `(k*C, *spatial)`.
    - `num_output_steps`: `k`, the states per call.
    - `num_input_steps`: how many of the latest states the network sees
        (`1 <= num_input_steps <= k`).
    """

    network: Callable
    num_output_steps: int = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)

    def __init__(self, network: Callable, num_output_steps: int, *, num_input_steps: int = 1):
        if not callable(network):
            raise TypeError(f"`network` must be callable, got {type(network).__name__}.")
        self.network = network
        self.num_output_steps = check_positive_int(num_output_steps, "num_output_steps")
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        if self.num_input_steps > self.num_output_steps:
            raise ValueError(
                f"`num_input_steps` ({num_input_steps}) must not exceed "
                f"`num_output_steps` ({num_output_steps}): the network sees the latest "
                "states of one block."
            )

    @classmethod
    def from_one_step(cls, stepper: Callable, num_output_steps: int) -> "BlockStepper":
        """The block stepper that chains `num_output_steps` calls of `stepper`; its
        rollout equals that of `stepper`.

        **Arguments:**

        - `stepper`: maps one state `(C, *spatial)` to the next.
        - `num_output_steps`: `k`.

        **Returns:**

        - A `BlockStepper` whose network is the `k` chained steps.
        """
        num_output_steps = check_positive_int(num_output_steps, "num_output_steps")
        return cls(ChainedSteps(stepper, num_output_steps), num_output_steps)

    def __call__(
        self, block: Float[Array, "block_channels ..."]
    ) -> Float[Array, "block_channels ..."]:
        """The next block from the latest one.

        **Arguments:**

        - `block`: `(k*C, *spatial)`, the latest `k` states, oldest first.

        **Returns:**

        - The next `k` states, `(k*C, *spatial)`.
        """
        if block.shape[0] % self.num_output_steps:
            raise ValueError(
                f"A BlockStepper with num_output_steps={self.num_output_steps} takes "
                f"blocks of {self.num_output_steps}*C channels, got an input of shape "
                f"{tuple(block.shape)}. Train it with `num_output_steps="
                f"{self.num_output_steps}` so windows are cut into blocks."
            )
        num_channels = block.shape[0] // self.num_output_steps
        first = (self.num_output_steps - self.num_input_steps) * num_channels
        return self.network(block[first:])
