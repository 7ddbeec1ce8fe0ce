import abc
from typing import Any, ClassVar, Optional

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._base import BaseConfiguration, CallInputs, Loss, Windows


def require_ref_stepper(config_name: str, ref_stepper: Any) -> None:
    if ref_stepper is None:
        raise ValueError(
            f"{config_name} compares against a reference simulator: pass "
            "`ref_stepper=...` (a function mapping one state to the next), e.g. to the "
            "trainer or to the configuration call."
        )


def require_residuum_fn(config_name: str, residuum_fn: Any) -> None:
    if residuum_fn is None:
        raise ValueError(
            f"{config_name} needs `residuum_fn=...`: a function `residuum_fn(u_next, "
            "u_prev)` of BATCHED states that returns the discrete residuum."
        )


def require_key(config_name: str, key: Any) -> None:
    if key is None:
        raise ValueError(
            f"{config_name} is stochastic and needs a random key: call it with "
            "`key=jax.random.PRNGKey(...)` (trainers pass a fresh key every step)."
        )


class AbstractCheckedConfiguration(BaseConfiguration):
    """A configuration whose call first checks the inputs its `needs_*` flags ask for.

    The public call signature is spelled out here once; it packs the shared keyword
    inputs into one [`CallInputs`][] record for `_loss`. Every built-in configuration
    raised the same error for a missing `ref_stepper`, `residuum_fn` or `key`; deriving
    the checks from the flags the trainers read keeps both in agreement. Subclasses
    implement `_loss`.
    """

    # Wrappers and composites set this to False: their members check the inputs
    # themselves, so the error names the member that needs them.
    checks_inputs: ClassVar[bool] = True

    def __call__(
        self,
        stepper: eqx.Module,
        data: PyTree[Float[Array, "batch window ..."]],
        *,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> Float[Array, ""]:
        if self.checks_inputs:
            name = type(self).__name__
            if self.needs_ref_stepper:
                require_ref_stepper(name, ref_stepper)
            if self.needs_residuum_fn:
                require_residuum_fn(name, residuum_fn)
            if self.needs_key:
                require_key(name, key)
        return self._loss(stepper, data, CallInputs(ref_stepper, residuum_fn, key, step))

    @abc.abstractmethod
    def _loss(self, stepper: eqx.Module, data: Windows, inputs: CallInputs) -> Loss:
        """The loss of one minibatch, called once the needed `inputs` are known present.

        **Arguments:**

        - `stepper`, `data`: as in `__call__`.
        - `inputs`: the keyword inputs of `__call__`.

        **Returns:**

        - The scalar loss.
        """
