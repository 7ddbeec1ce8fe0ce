from typing import Optional

import equinox as eqx
import jax
from jaxtyping import Array, Float

from .._argument_checks import check_bool
from ._extend import with_step_size_input
from ._velocity import ConditionalVelocity, Time


def frozen(module):
    """`module` with `jax.lax.stop_gradient` applied to every array leaf."""
    params, static = eqx.partition(module, eqx.is_array)
    return eqx.combine(jax.lax.stop_gradient(params), static)


class FlowMap(eqx.Module):
    r"""A flow map `F_d(x_t, t)` for semigroup distillation, built on a trained velocity.

    $$F_d(x_t, y, t) = x_t + d\, v(x_t, y, t) + d^2 \big(\varphi(x_t, y, t, d) - v(x_t, y, t)\big)$$

    `v` is the trained flow-matching velocity, frozen (`jax.lax.stop_gradient` on its
    parameters, see `freeze_velocity`); `phi` is a second velocity network that also
    receives the step size `d`. By construction

    - `F_0 = identity` (exactly),
    - `dF_d/dd` at `d = 0` equals `v`, so small steps follow the trained flow,
    - if `phi == v` (its initialisation, see below), `F_d` is exactly one Euler step of
        size `d`, `x_t + d v(x_t, y, t)`, for every `d`.

    The semigroup loss ([`trainax_fm.configuration.SemigroupDistillation`][]) then
    teaches `phi` to make `F_d` compose like the exact flow, `F_d = F_{d/2} o F_{d/2}`,
    so that 1, 2, 4 ... map steps replace 10-100 velocity steps.

    Every evaluation of `F_d` costs two network evaluations (`v` and `phi`).

    **Arguments:**

    - `velocity`: the trained [`trainax_fm.flow.ConditionalVelocity`][]
        (`step_size_input=False`).
    - `correction`: `phi`, a `ConditionalVelocity` with `step_size_input=True`. `None`
        (default) builds it from `velocity` with
        [`trainax_fm.flow.with_step_size_input`][]: a copy whose input layer gets one
        zero-initialised channel for `d`, so `phi == v` at initialisation.
    - `freeze_velocity`: stop gradients into `v` (default `True`). Trainers also mask
        the optimizer so `v` never changes (see
        [`trainax_fm.flow.flow_map_optimizer`][]).
    """

    velocity: ConditionalVelocity
    correction: ConditionalVelocity
    freeze_velocity: bool = eqx.field(static=True)

    evaluations_per_step = 2

    def __init__(
        self,
        velocity: ConditionalVelocity,
        correction: Optional[ConditionalVelocity] = None,
        *,
        freeze_velocity: bool = True,
    ):
        if not isinstance(velocity, ConditionalVelocity):
            raise TypeError(
                "`velocity` must be a trainax_fm.flow.ConditionalVelocity (the trained "
                f"flow-matching velocity), got {type(velocity).__name__}."
            )
        if velocity.step_size_input:
            raise ValueError(
                "`velocity` must be a plain velocity (`step_size_input=False`); the step "
                "size enters only through the correction `phi`."
            )
        if correction is None:
            correction = with_step_size_input(velocity)
        elif not (
            isinstance(correction, ConditionalVelocity) and correction.step_size_input
        ):
            raise TypeError(
                "`correction` must be a ConditionalVelocity with `step_size_input=True` "
                f"(got {type(correction).__name__}); build it with "
                "trainax_fm.flow.with_step_size_input(velocity) or pass None."
            )
        self.velocity = velocity
        self.correction = correction
        self.freeze_velocity = check_bool(freeze_velocity, "freeze_velocity")

    def __call__(
        self,
        x_t: Float[Array, "channels ..."],
        y: Optional[Float[Array, "history_channels ..."]],
        t: Time,
        d: Time,
    ) -> Float[Array, "channels ..."]:
        """One map step of size `d` from `x_t` at flow time `t`.

        **Arguments:**

        - `x_t`: one state of the flow `(C, *spatial)`.
        - `y`: conditioning `(H*C, *spatial)` (or `None`).
        - `t`: scalar flow time.
        - `d`: scalar step size (`t + d <= 1` in use).

        **Returns:**

        - `F_d(x_t, y, t)`, shaped like `x_t`.
        """
        velocity = frozen(self.velocity) if self.freeze_velocity else self.velocity
        v = velocity(x_t, y, t)
        phi = self.correction(x_t, y, t, d)
        return x_t + d * v + d**2 * (phi - v)
