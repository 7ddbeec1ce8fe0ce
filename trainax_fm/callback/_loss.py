from collections.abc import Callable
from typing import Any, Optional, Union

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..data._conditioned import bind_to_windows
from ._base import BaseCallback


class AbstractConfigurationCallback(BaseCallback):
    """A callback that evaluates a configuration on the current minibatch.

    Not public: holds what [`trainax_fm.callback.Loss`][] and
    [`trainax_fm.callback.GradNorm`][] share.
    """

    loss_configuration: Callable
    ref_stepper: Optional[eqx.Module]
    residuum_fn: Optional[Callable]
    key: Optional[PRNGKeyArray]

    def __check_init__(self):
        if not callable(self.loss_configuration):
            raise TypeError(
                "`loss_configuration` must be a configuration (e.g. "
                "`trainax_fm.configuration.Supervised(...)`), got "
                f"{self.loss_configuration!r} of type "
                f"{type(self.loss_configuration).__name__}."
            )

    def configuration_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the configuration call; `key` only when one is set.

        Leaving `key` out when it is `None` keeps configurations written for trainax
        (whose `__call__` has no `key` parameter) working.
        """
        kwargs = {"ref_stepper": self.ref_stepper, "residuum_fn": self.residuum_fn}
        if self.key is not None:
            kwargs["key"] = self.key
        return kwargs

    def evaluate(self, stepper: eqx.Module, data: PyTree) -> Float[Array, ""]:
        """The configuration's loss on `data` (conditioned windows bind the stepper)."""
        kwargs = self.configuration_kwargs()
        data, stepper, configuration, kwargs["ref_stepper"], kwargs["residuum_fn"] = (
            bind_to_windows(
                data, stepper, self.loss_configuration, kwargs["ref_stepper"],
                kwargs["residuum_fn"],
            )
        )
        return configuration(stepper, data, **kwargs)


class Loss(AbstractConfigurationCallback):
    """The loss of a configuration on the current minibatch, every `every` updates.

    The configuration may differ from the one used for training (e.g. record a long
    rollout loss while training one step ahead). It is called as
    `loss_configuration(stepper, data, ref_stepper=ref_stepper,
    residuum_fn=residuum_fn)`.

    **Arguments:**

    - `every`: the period in updates.
    - `loss_configuration`: the configuration to evaluate.
    - `with_grad`: also return the gradient of the loss with respect to the stepper
        (via `eqx.filter_value_and_grad`).
    - `ref_stepper`: the reference stepper handed to the configuration.
    - `residuum_fn`: the residuum function handed to the configuration.
    - `key`: a fixed `jax.random` key for stochastic configurations (a trainax_fm
        addition; with `None` no key is passed).
    - `name`: the key of the result (required).
    """

    with_grad: bool = eqx.field(static=True)

    def __init__(
        self,
        every: int,
        loss_configuration: Callable,
        *,
        with_grad: bool = False,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[Callable] = None,
        key: Optional[PRNGKeyArray] = None,
        name: str,
    ):
        self.every = every
        self.loss_configuration = loss_configuration
        self.with_grad = bool(with_grad)
        self.ref_stepper = ref_stepper
        self.residuum_fn = residuum_fn
        self.key = key
        self.name = name

    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> Union[Float[Array, ""], tuple[Float[Array, ""], PyTree]]:
        """**Returns:** the scalar loss, or `(loss, grad)` if `with_grad`, where
        `grad` has the structure of `stepper`."""
        if self.with_grad:
            return eqx.filter_value_and_grad(self.evaluate)(stepper, data)
        return self.evaluate(stepper, data)
