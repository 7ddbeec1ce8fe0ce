from collections.abc import Callable
from typing import Optional

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._loss import AbstractConfigurationCallback
from ._weight_norm import l2_norm


class GradNorm(AbstractConfigurationCallback):
    """The L2 norm of the loss gradient with respect to the stepper.

    The gradient of `loss_configuration(stepper, data, ref_stepper=ref_stepper,
    residuum_fn=residuum_fn)` is taken with `eqx.filter_grad` on the current minibatch;
    all of its array leaves count as one long vector.

    **Arguments:**

    - `every`: the period in updates.
    - `loss_configuration`: the configuration to differentiate.
    - `squared`: return the squared norm instead of the norm.
    - `ref_stepper`: the reference stepper handed to the configuration.
    - `residuum_fn`: the residuum function handed to the configuration.
    - `key`: a fixed `jax.random` key for stochastic configurations (a trainax_fm
        addition; with `None` no key is passed).
    - `name`: the key of the result (required).
    """

    squared: bool = eqx.field(static=True)

    def __init__(
        self,
        every: int,
        loss_configuration: Callable,
        *,
        squared: bool = False,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[Callable] = None,
        key: Optional[PRNGKeyArray] = None,
        name: str,
    ):
        self.every = every
        self.loss_configuration = loss_configuration
        self.squared = bool(squared)
        self.ref_stepper = ref_stepper
        self.residuum_fn = residuum_fn
        self.key = key
        self.name = name

    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> Float[Array, ""]:
        """**Returns:** the (squared) gradient norm, a scalar."""
        grad = eqx.filter_grad(self.evaluate)(stepper, data)
        return l2_norm(grad, self.squared)
