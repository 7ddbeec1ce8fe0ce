from typing import ClassVar

import equinox as eqx

from ._base import BaseConfiguration
from ._checks import AbstractCheckedConfiguration


class AbstractWrapperConfiguration(AbstractCheckedConfiguration):
    """A configuration that changes how another one (`configuration`) is called:
    what the wrapped one needs (window length, reference, residuum, key), the
    wrapper needs too, unless a subclass says otherwise."""

    configuration: eqx.AbstractVar[BaseConfiguration]

    checks_inputs: ClassVar[bool] = False

    @property
    def required_window_length(self) -> int:
        return self.configuration.required_window_length

    @property
    def needs_ref_stepper(self) -> bool:
        return self.configuration.needs_ref_stepper

    @property
    def needs_residuum_fn(self) -> bool:
        return self.configuration.needs_residuum_fn

    @property
    def needs_key(self) -> bool:
        return self.configuration.needs_key
