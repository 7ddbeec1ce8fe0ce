import abc
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray, PyTree

from ._base import BaseConfiguration, CallInputs, Loss, Windows, call_configuration
from ._callable import as_configuration
from ._checks import AbstractCheckedConfiguration, require_key


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


class AbstractAugmentation(AbstractWrapperConfiguration):
    """A wrapper that transforms every minibatch with random draws before the wrapped
    configuration sees it (training noise, symmetry augmentation).

    The key of the update is split once into `(augmentation_key, inner_key)`:
    `augment` draws with the first, the wrapped configuration gets the second. The
    wrapped configuration's state (e.g. a balancing `Composite`) is passed through.

    Subclasses declare `configuration` and implement `augment`.
    """

    @abc.abstractmethod
    def augment(self, data: Windows, key: PRNGKeyArray) -> Windows:
        """The transformed minibatch of windows (same shapes as `data`)."""

    @property
    def needs_key(self) -> bool:
        return True

    @property
    def has_state(self) -> bool:
        return self.configuration.has_state

    def init_state(self) -> PyTree:
        return self.configuration.init_state()

    def _augmented(self, data: Windows, inputs: CallInputs) -> tuple[Windows, CallInputs]:
        """The augmented `data`, and the inputs of the wrapped call (a fresh key)."""
        require_key(type(self).__name__, inputs.key)
        augmentation_key, inner_key = jax.random.split(inputs.key)
        return self.augment(data, augmentation_key), inputs._replace(key=inner_key)

    def _stateful_loss(
        self, stepper: eqx.Module, data: Windows, state: PyTree, inputs: CallInputs
    ) -> tuple[Loss, PyTree]:
        augmented, inner = self._augmented(data, inputs)
        return self.configuration.stateful_loss(stepper, augmented, state, **inner._asdict())

    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        augmented, inner = self._augmented(data, inputs)
        return call_configuration(self.configuration, stepper, augmented, inner)


def check_wrapped(configuration: BaseConfiguration) -> BaseConfiguration:
    """`configuration` checked to be a configuration; one written without `key`/`step`
    is wrapped once, here."""
    if not isinstance(configuration, BaseConfiguration):
        raise TypeError(
            "`configuration` must be a trainax_fm configuration (e.g. Supervised()), "
            f"got {type(configuration).__name__}."
        )
    return as_configuration(configuration)
