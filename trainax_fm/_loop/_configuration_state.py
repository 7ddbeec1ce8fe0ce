"""Carrying a configuration's state (e.g. adaptive loss weights) in the train state.

The loop carries the stepper and the optimizer state through every dispatch mode,
seed axis, checkpoint and resume. A stateful configuration's state rides along inside
the optimizer state, so all of those carry it without knowing it exists.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree


class ConfigurationOptState(eqx.Module):
    """The optimizer state of a run whose configuration has a state.

    **Arguments:**

    - `inner`: the state of the user's optimizer.
    - `configuration_state`: the configuration's state after the last update.
    """

    inner: optax.OptState
    configuration_state: PyTree


def with_configuration_state(
    optimizer: optax.GradientTransformation, configuration: Any
) -> optax.GradientTransformationExtraArgs:
    """`optimizer` whose state also holds `configuration.init_state()`.

    `update(grads, state, params, configuration_state=...)` updates the inner state
    and stores the configuration's new state (the compiled update passes it).
    """

    # The inner optimizer sees the extra arguments the update is given (e.g. `value`
    # for `optax.contrib.reduce_on_plateau`), whether or not it takes any.
    inner_optimizer = optax.with_extra_args_support(optimizer)

    def init(params):
        return ConfigurationOptState(inner_optimizer.init(params), configuration.init_state())

    def update(updates, state, params=None, *, configuration_state=None, **extra_args):
        new_updates, inner = inner_optimizer.update(updates, state.inner, params, **extra_args)
        if configuration_state is None:
            configuration_state = state.configuration_state
        return new_updates, ConfigurationOptState(inner, configuration_state)

    return optax.GradientTransformationExtraArgs(init, update)


def ensure_configuration_state(opt_state, configuration: Any, num_seeds):
    """`opt_state` with a fresh configuration state if `configuration` needs one and a
    plain optimizer state was passed (e.g. `optimizer.init(params)` by the user)."""
    if not configuration.has_state or isinstance(opt_state, ConfigurationOptState):
        return opt_state
    state = configuration.init_state()
    if num_seeds is not None:
        state = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (num_seeds,) + jnp.shape(x)), state
        )
    return ConfigurationOptState(opt_state, state)
