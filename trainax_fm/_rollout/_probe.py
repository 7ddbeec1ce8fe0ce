"""Checks of a stepper before a rollout: its input layout, and whether it needs a key."""

from typing import Any, Callable, Optional

import jax
from jaxtyping import PRNGKeyArray


def shape_hint(batched: bool, num_input_steps: int) -> str:
    layout = "(C, *spatial)" if num_input_steps == 1 else "(H, C, *spatial)"
    if batched:
        layout = "(B, " + layout[1:]
    return (
        f"With batched={batched} and num_input_steps={num_input_steps} `ic` must be "
        f"shaped {layout}. Pass batched=True if `ic` carries a leading batch axis, and "
        "num_input_steps=H if it holds the last H states."
    )


def probe_stepper(
    stepper: Callable,
    input_struct: jax.ShapeDtypeStruct,
    key: Optional[PRNGKeyArray],
    hint: str,
) -> Any:
    """Abstractly evaluate one stepper call; turn the usual mistakes into clear errors."""
    if key is None:

        def call(x, _):
            return stepper(x)

    else:

        def call(x, key):
            return stepper(x, key=jax.random.split(key)[0])

    try:
        return jax.eval_shape(call, input_struct, key)
    except TypeError as err:
        message = str(err)
        if key is None and "key" in message:
            raise ValueError(
                "The stepper requires a random key (it failed with: "
                f"{message!r}), but `key=None`. Stochastic steppers are called as "
                "`stepper(x, key=subkey)`; pass `key=jax.random.key(seed)` to `rollout`."
            ) from err
        if key is not None and "key" in message:
            raise ValueError(
                "A `key` was given but the stepper does not accept a keyword argument "
                f"`key` (it failed with: {message!r}). Stochastic steppers must accept "
                "`stepper(x, key=subkey)`; for a deterministic stepper pass `key=None`."
            ) from err
        raise ValueError(
            f"The stepper failed on an input of shape {tuple(input_struct.shape)}: "
            f"{message}. {hint}"
        ) from err
    except ValueError as err:
        raise ValueError(
            f"The stepper failed on an input of shape {tuple(input_struct.shape)} "
            f"(dtype {input_struct.dtype}): {err}. {hint}"
        ) from err
