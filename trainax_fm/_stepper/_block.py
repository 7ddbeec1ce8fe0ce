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

    **Longer contexts.** With `num_input_blocks=H > 1` the stepper is called on a
    history of the latest `H` blocks, `(H*k*C, *spatial)` time-major (what a trainer
    with `num_input_steps=H` and `num_output_steps=k` hands it), and its network sees
    the latest `num_context_steps = (H - 1)*k + num_input_steps` states of them; with
    `num_input_steps=k`, all `H*k` (a sliding context, as a forecaster with
    `context_length = H*k` needs). `trainax_fm.rollout` then takes `ic` with
    `num_context_steps` states and `num_input_steps=num_context_steps`; after each call
    the newest `k` states enter the context and the oldest `k` leave it.

    **Arguments:**

    - `network`: maps `(num_context_steps*C, *spatial)` to `(k*C, *spatial)`.
    - `num_output_steps`: `k`, the states per call.
    - `num_input_steps`: how many of the latest states of the oldest block in the
        history the network sees (`1 <= num_input_steps <= k`); with the default
        `num_input_blocks=1`, simply how many of the latest states it sees.
    - `num_input_blocks`: `H`, the blocks of history the stepper is called on.
    """

    network: Callable
    num_output_steps: int = eqx.field(static=True)
    num_input_steps: int = eqx.field(static=True)
    num_input_blocks: int = eqx.field(static=True)

    def __init__(
        self,
        network: Callable,
        num_output_steps: int,
        *,
        num_input_steps: int = 1,
        num_input_blocks: int = 1,
    ):
        if not callable(network):
            raise TypeError(f"`network` must be callable, got {type(network).__name__}.")
        self.network = network
        self.num_output_steps = check_positive_int(num_output_steps, "num_output_steps")
        self.num_input_steps = check_positive_int(num_input_steps, "num_input_steps")
        self.num_input_blocks = check_positive_int(num_input_blocks, "num_input_blocks")
        if self.num_input_steps > self.num_output_steps:
            raise ValueError(
                f"`num_input_steps` ({num_input_steps}) must not exceed "
                f"`num_output_steps` ({num_output_steps}): it counts the states the "
                "network sees of one block. For a longer context pass "
                "`num_input_blocks=H` (and `num_input_steps=k`): the network then sees "
                "the latest H blocks."
            )

    @property
    def num_context_steps(self) -> int:
        """The states the network sees: `(num_input_blocks - 1)*k + num_input_steps`."""
        return (self.num_input_blocks - 1) * self.num_output_steps + self.num_input_steps

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

    @classmethod
    def sliding(
        cls, network: Callable, num_output_steps: int, context_length: int
    ) -> "BlockStepper":
        """The block stepper of a forecaster over a sliding context.

        `network` maps the latest `context_length` states to the next `k`; the block
        stepper keeps `H = ceil(context_length / k)` blocks of history, so its
        `num_context_steps` is `context_length` and a rollout (with
        `num_input_steps=context_length`) moves the context by `k` states per call.

        **Arguments:**

        - `network`: maps `(context_length*C, *spatial)` to `(k*C, *spatial)`.
        - `num_output_steps`: `k`.
        - `context_length`: the states the network sees (any positive int).

        **Returns:**

        - `BlockStepper(network, k, num_input_steps=context_length - (H-1)*k,
            num_input_blocks=H)`.
        """
        k = check_positive_int(num_output_steps, "num_output_steps")
        context_length = check_positive_int(context_length, "context_length")
        num_blocks = -(-context_length // k)
        return cls(
            network,
            k,
            num_input_steps=context_length - (num_blocks - 1) * k,
            num_input_blocks=num_blocks,
        )

    def __call__(
        self, block: Float[Array, "history_channels ..."]
    ) -> Float[Array, "block_channels ..."]:
        """The next block from the latest `num_input_blocks` ones.

        **Arguments:**

        - `block`: `(H*k*C, *spatial)`, the latest `H = num_input_blocks` blocks of
            `k` states, oldest first (`H = 1`: one block).

        **Returns:**

        - The next `k` states, `(k*C, *spatial)`.
        """
        states_per_input = self.num_input_blocks * self.num_output_steps
        if block.shape[0] % states_per_input:
            history = (
                ""
                if self.num_input_blocks == 1
                else f"histories of {self.num_input_blocks} "
            )
            raise ValueError(
                f"A BlockStepper with num_output_steps={self.num_output_steps} and "
                f"num_input_blocks={self.num_input_blocks} takes {history}blocks of "
                f"{self.num_output_steps}*C channels, got an input of shape "
                f"{tuple(block.shape)}. Train it with `num_output_steps="
                f"{self.num_output_steps}` and `num_input_steps={self.num_input_blocks}` "
                "so windows are cut into blocks and histories of blocks."
            )
        num_channels = block.shape[0] // states_per_input
        first = (states_per_input - self.num_context_steps) * num_channels
        return self.network(block[first:])
