from typing import Callable, Optional, Union

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._argument_checks import check_bool, check_positive_int

Time = Union[float, Float[Array, ""]]


def velocity_input_channels(
    num_channels: int, num_input_steps: int = 1, *, step_size_input: bool = False
) -> int:
    """Number of input channels the network of a [`trainax_fm.flow.ConditionalVelocity`][] needs.

    The default conditioning stacks `x_t` (`C` channels), the `H` previous states
    (`H*C` channels), one constant channel holding the flow time `t` and, with
    `step_size_input=True`, one more constant channel holding the step size `d`.

    **Arguments:**

    - `num_channels`: `C`, the channels of one state.
    - `num_input_steps`: `H`, the number of previous states the velocity is conditioned on.
    - `step_size_input`: whether the network also receives the step size `d`.

    **Returns:**

    - `C + H*C + 1` (`+ 1` with `step_size_input`). For an ODE state `(C,)` this is the
        number of input features of an MLP.
    """
    num_channels = check_positive_int(num_channels, "num_channels")
    num_input_steps = check_positive_int(num_input_steps, "num_input_steps", minimum=0)
    step_size_input = check_bool(step_size_input, "step_size_input")
    return num_channels * (1 + num_input_steps) + 1 + int(step_size_input)


def constant_channel(value: Time, like: Float[Array, "channels ..."]) -> Float[Array, "1 ..."]:
    """One channel shaped `(1, *spatial)` like `like`, filled with the scalar `value`."""
    value = jnp.asarray(value, dtype=like.dtype)
    if value.ndim != 0:
        raise ValueError(
            "The flow time `t` and the step size `d` are scalars per state (the "
            f"velocity sees one state, without batch axis), got shape {value.shape}. "
            "Use `jax.vmap` over the batch."
        )
    return jnp.broadcast_to(value, (1,) + tuple(like.shape[1:]))


class ConditionalVelocity(eqx.Module):
    r"""A conditional velocity field `v(x_t, y, t)` built from any channels-first network.

    The network receives the concatenation on the channel axis (axis 0)

    ```
    [x_t, y, t * ones]            (step_size_input=False)
    [x_t, y, t * ones, d * ones]  (step_size_input=True)
    ```

    where `x_t` is the current point of the flow `(C, *spatial)`, `y` the conditioning
    (the `H` previous physical states stacked on the channel axis, `(H*C, *spatial)`,
    or `None` for an unconditional field) and `t`, `d` scalar flow time and step size,
    broadcast to a constant channel. The network must map `C + H*C + 1` (`+ 1`)
    channels to `C` channels at the same resolution, e.g. a pdequinox `ConvNet`/`UNet`,
    an `eqx.nn.Conv`, or, for ODE states `(C,)` whose "channels" are just concatenated
    scalars, an `eqx.nn.MLP` with that many input features. Use
    [`trainax_fm.flow.velocity_input_channels`][] to size it.

    With the flow-matching convention of trainax_fm (`t=0` noise, `t=1` data,
    `x_t = t x_1 + (1-t) x_0`) the trained field transports noise to the conditional
    distribution of the next state given `y` by integrating `dx/dt = v(x, y, t)` from
    `t=0` to `t=1`.

    A velocity with `step_size_input=True` is an *average* velocity over a step of size
    `d`: one step from `t` is `x + d * v(x, y, t, d)`. It is what progressive
    distillation can train as a student (see
    [`trainax_fm.flow.with_step_size_input`][]); it is only stepped with Euler's form.

    **Arguments:**

    - `network`: a callable (usually an `eqx.Module`) mapping one network input
        `(C_in, *spatial)` to `(C, *spatial)`.
    - `step_size_input`: whether the network also receives the step size `d`.
    """

    network: Callable
    step_size_input: bool = eqx.field(static=True)

    def __init__(self, network: Callable, *, step_size_input: bool = False):
        if not callable(network):
            raise TypeError(
                "`network` must be a callable (an eqx.Module such as an eqx.nn.MLP or a "
                f"pdequinox ConvNet), got {type(network).__name__}."
            )
        if isinstance(network, ConditionalVelocity):
            raise TypeError(
                "`network` is already a ConditionalVelocity; pass its `.network` (or use "
                "the ConditionalVelocity itself) instead of wrapping it twice."
            )
        self.network = network
        self.step_size_input = check_bool(step_size_input, "step_size_input")

    def network_input(
        self,
        x_t: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Optional[Time] = None,
    ) -> Float[Array, "input_channels ..."]:
        """The network input: `[x_t, y, t(, d)]` concatenated on the channel axis.

        **Arguments:**

        - `x_t`: one point of the flow, `(C, *spatial)`.
        - `y`: conditioning `(H*C, *spatial)` or `None`.
        - `t`: scalar flow time.
        - `d`: scalar step size; required if `step_size_input`, else ignored.

        **Returns:**

        - The array `(C + H*C + 1 (+1), *spatial)`.
        """
        x_t = jnp.asarray(x_t)
        if x_t.ndim < 1:
            raise ValueError(
                "`x_t` must be one state `(C, *spatial)` (an ODE state is `(C,)`), got a "
                "scalar. Use `jax.vmap` for batches."
            )
        parts = [x_t]
        if y is not None:
            y = jnp.asarray(y, dtype=x_t.dtype)
            if y.ndim != x_t.ndim or y.shape[1:] != x_t.shape[1:]:
                raise ValueError(
                    f"The conditioning `y` has shape {tuple(y.shape)} but `x_t` has shape "
                    f"{tuple(x_t.shape)}; they must share the spatial axes "
                    "`(*, *spatial)` and differ at most in the channel axis (y holds the "
                    "H previous states stacked on the channels). Pass unbatched states; "
                    "vmap for batches."
                )
            parts.append(y)
        parts.append(constant_channel(t, x_t))
        if self.step_size_input:
            if d is None:
                raise ValueError(
                    "This ConditionalVelocity has `step_size_input=True` and needs the "
                    "step size: call it as `velocity(x_t, y, t, d)`."
                )
            parts.append(constant_channel(d, x_t))
        return jnp.concatenate(parts, axis=0)

    def __call__(
        self,
        x_t: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Optional[Time] = None,
    ) -> Float[Array, "channels ..."]:
        """Evaluate the velocity at one state.

        **Arguments:**

        - `x_t`: the current point of the flow `(C, *spatial)`.
        - `y`: the conditioning `(H*C, *spatial)` (or `None`).
        - `t`: the scalar flow time in `[0, 1]`.
        - `d`: the scalar step size (used only with `step_size_input=True`).

        **Returns:**

        - The velocity `(C, *spatial)`.
        """
        inputs = self.network_input(x_t, y, t, d)
        try:
            output = self.network(inputs)
        except (TypeError, ValueError) as err:
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(
                f"The velocity network failed on its input of shape "
                f"{tuple(inputs.shape)} ([x_t, y, t{', d' if self.step_size_input else ''}] "
                f"concatenated on the channel axis): {err}. Build the network with "
                f"{inputs.shape[0]} input channels and {x_t.shape[0]} output channels "
                "(see trainax_fm.flow.velocity_input_channels)."
            ) from err
        if getattr(output, "shape", None) != x_t.shape:
            raise ValueError(
                f"The velocity network maps its input of shape {tuple(inputs.shape)} "
                f"to {getattr(output, 'shape', type(output).__name__)}, but a velocity "
                f"must have the shape of the state, {tuple(x_t.shape)}. Build the "
                f"network with {inputs.shape[0]} input channels and {x_t.shape[0]} "
                "output channels (see trainax_fm.flow.velocity_input_channels) and keep "
                "the resolution (e.g. circular padding)."
            )
        return output
