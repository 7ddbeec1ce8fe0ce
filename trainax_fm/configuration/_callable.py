import functools
import inspect
from typing import Callable, ClassVar

import equinox as eqx

from ._base import BaseConfiguration, CallInputs, Loss, Windows
from ._checks import AbstractCheckedConfiguration


class CallableConfiguration(AbstractCheckedConfiguration):
    """A configuration written for trainax, wrapped where it enters trainax_fm.

    trainax accepts any callable `fn(stepper, data, *, ref_stepper, residuum_fn)` as a
    configuration. This final wrapper declares, once, what such a callable can do, so
    that the engine, composites and wrappers call every configuration the same way and
    never ask a configuration what it accepts. Built by `as_configuration`; not
    public.

    **Arguments:**

    - `fn`: the wrapped callable.
    - `takes_key`, `takes_step`: whether `fn` accepts the `key`/`step` keywords.
    - `window_length`: its `required_window_length` (1 if it names none).
    - `ref_stepper_needed`, `residuum_fn_needed`, `key_needed`: its `needs_*` flags
        (False if it names none).
    """

    fn: Callable
    # trainax never checked a configuration's inputs for it; neither does the wrapper.
    checks_inputs: ClassVar[bool] = False
    takes_key: bool = eqx.field(static=True)
    takes_step: bool = eqx.field(static=True)
    window_length: int = eqx.field(static=True)
    ref_stepper_needed: bool = eqx.field(static=True)
    residuum_fn_needed: bool = eqx.field(static=True)
    key_needed: bool = eqx.field(static=True)

    @property
    def required_window_length(self) -> int:
        return self.window_length

    @property
    def needs_ref_stepper(self) -> bool:
        return self.ref_stepper_needed

    @property
    def needs_residuum_fn(self) -> bool:
        return self.residuum_fn_needed

    @property
    def needs_key(self) -> bool:
        return self.key_needed

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        extras = {}
        if self.takes_key:
            extras["key"] = inputs.key
        if self.takes_step:
            extras["step"] = inputs.step
        return self.fn(
            stepper,
            data,
            ref_stepper=inputs.ref_stepper,
            residuum_fn=inputs.residuum_fn,
            **extras,
        )


def _accepted_extras(configuration: Callable) -> tuple[bool, bool]:
    # The callable's own signature: for a configuration object that is its class's
    # `__call__`, for a plain function the function itself (its type's `__call__`
    # takes `**kwargs` and would claim every keyword).
    try:
        parameters = inspect.signature(configuration).parameters
    except (TypeError, ValueError):
        return False, False
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return True, True
    return "key" in parameters, "step" in parameters


@functools.lru_cache(maxsize=256)
def _declares_full_call(configuration_type: type) -> bool:
    # Cached per class: trainers that build their problem every step (the
    # trainax-style `step_fn`) must not pay for a signature lookup each time.
    return _accepted_extras(configuration_type.__call__) == (True, True)


def as_configuration(configuration: Callable) -> BaseConfiguration:
    """`configuration` as a trainax_fm configuration: itself if it is one whose call
    takes `key` and `step`, else wrapped once in a `CallableConfiguration`.

    This is the one place that asks a callable what it accepts and needs; trainers call
    it where a configuration enters, so everything behind them relies on the declared
    [`trainax_fm.configuration.BaseConfiguration`][] protocol.

    **Arguments:**

    - `configuration`: a trainax_fm configuration or a trainax-style callable
        `fn(stepper, data, *, ref_stepper, residuum_fn)`.

    **Returns:**

    - A [`trainax_fm.configuration.BaseConfiguration`][].
    """
    if isinstance(configuration, BaseConfiguration) and _declares_full_call(
        type(configuration)
    ):
        return configuration
    takes_key, takes_step = _accepted_extras(configuration)
    return CallableConfiguration(
        configuration,
        takes_key,
        takes_step,
        getattr(configuration, "required_window_length", 1),
        getattr(configuration, "needs_ref_stepper", False),
        getattr(configuration, "needs_residuum_fn", False),
        getattr(configuration, "needs_key", False),
    )
