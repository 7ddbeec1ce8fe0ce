import abc
from typing import NamedTuple, Optional

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


# The annotations every configuration's loss shares: a minibatch of windows
# `(B, W, C, *spatial)` (or a PyTree of them) and a scalar loss.
Windows = PyTree[Float[Array, "batch window ..."]]
Loss = Float[Array, ""]


class CallInputs(NamedTuple):
    """The keyword inputs every configuration call shares, as one record."""

    ref_stepper: Optional[eqx.Module]
    residuum_fn: Optional[eqx.Module]
    key: Optional[PRNGKeyArray]
    step: Optional[int]


class BaseConfiguration(eqx.Module):
    """Base class of every training configuration (the second layer).

    A configuration decides how the trainable `stepper`, an optional reference stepper
    (`ref_stepper`), an optional residuum function and a minibatch of data windows are
    chained into one scalar loss: how many steps are rolled out, where the reference
    branches off, where gradients are cut, and which noise or flow time is drawn.

    `data` is a minibatch of windows shaped `(B, W, C, *spatial)` (or a PyTree of such
    arrays) whose time index 0 is the initial condition.

    Subclasses implement `__call__` and may override
    [`trainax_fm.configuration.BaseConfiguration.required_window_length`][].
    """

    @abc.abstractmethod
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
        """Scalar loss of `stepper` on one minibatch of windows.

        **Arguments:**

        - `stepper`: the trainable emulator; maps one state `(C, *spatial)` to the next.
            It is `jax.vmap`-ed over the batch by the configuration.
        - `data`: windows `(B, W, C, *spatial)` or a PyTree of them.
        - `ref_stepper`: the reference simulator (same signature as `stepper`), for
            configurations that compare against it.
        - `residuum_fn`: `residuum_fn(u_next, u_prev)` on BATCHED states, for residuum
            training.
        - `key`: a `jax.random` key for stochastic configurations (teacher forcing,
            flow matching); deterministic configurations ignore it.
        - `step`: the current training step, used by schedules (e.g. the teacher-forcing
            probability). `None` outside of training.

        **Returns:**

        - The scalar loss.
        """

    @property
    def required_window_length(self) -> int:
        """Number of snapshots (including the initial condition) a window must hold."""
        return 1

    @property
    def needs_ref_stepper(self) -> bool:
        """Whether `__call__` requires a `ref_stepper`."""
        return False

    @property
    def needs_residuum_fn(self) -> bool:
        """Whether `__call__` requires a `residuum_fn`."""
        return False

    @property
    def needs_key(self) -> bool:
        """Whether `__call__` draws random numbers and therefore requires a `key`."""
        return False

    @property
    def has_state(self) -> bool:
        """Whether training carries a state from update to update (e.g. the adaptive
        weights of a [`trainax_fm.configuration.Composite`][] with `balancing=`)."""
        return False

    def init_state(self) -> PyTree:
        """The state before the first update (`None` for stateless configurations)."""
        return None

    def stateful_loss(
        self,
        stepper: eqx.Module,
        data: PyTree[Float[Array, "batch window ..."]],
        state: PyTree,
        *,
        ref_stepper: Optional[eqx.Module] = None,
        residuum_fn: Optional[eqx.Module] = None,
        key: Optional[PRNGKeyArray] = None,
        step: Optional[int] = None,
    ) -> tuple[Float[Array, ""], PyTree]:
        """The loss of one training update and the state for the next.

        Trainers call this instead of `__call__`; the engine keeps the state in the
        optimizer state. Stateless configurations return `(self(...), state)`.

        **Arguments:**

        - `state`: the state after the previous update (`init_state()` at first).
        - the others: as in `__call__`.

        **Returns:**

        - `(loss, new_state)`.
        """
        return self._stateful_loss(
            stepper, data, state, CallInputs(ref_stepper, residuum_fn, key, step)
        )

    def _stateful_loss(
        self, stepper: eqx.Module, data: Windows, state: PyTree, inputs: CallInputs
    ) -> tuple[Loss, PyTree]:
        """`stateful_loss` on the call inputs as one record; stateful configurations
        override this."""
        return call_configuration(self, stepper, data, inputs), state


def call_configuration(
    configuration: BaseConfiguration, stepper: eqx.Module, data: PyTree, inputs: CallInputs
) -> Float[Array, ""]:
    """Call `configuration` through its public signature with the shared `inputs`."""
    return configuration(stepper, data, **inputs._asdict())
