from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import equinox as eqx
from jaxtyping import PyTree

from ._base import BaseCallback

CallbackLike = Union[BaseCallback, Callable[[int, eqx.Module, PyTree], dict]]


class CompositeCallback(eqx.Module):
    """Several callbacks run as one; their result dictionaries are merged.

    Children are [`trainax_fm.callback.BaseCallback`][] instances or plain functions
    `f(update_i, stepper, data) -> dict`. They run in order and the merged dictionary
    holds every child's keys; if two children use the same key the later one wins.

    **Arguments:**

    - `callbacks`: a sequence of callbacks and/or plain functions.
    """

    callbacks: tuple

    def __init__(self, callbacks: Sequence[CallbackLike]):
        if callable(callbacks) or not isinstance(callbacks, Sequence):
            raise TypeError(
                "`callbacks` must be a list or tuple of callbacks, got "
                f"{type(callbacks).__name__}. Wrap a single callback in a list."
            )
        for index, child in enumerate(callbacks):
            if not callable(child):
                raise TypeError(
                    f"`callbacks[{index}]` must be a callback or a function "
                    f"`f(update_i, stepper, data) -> dict`, got {child!r} of type "
                    f"{type(child).__name__}."
                )
        self.callbacks = tuple(callbacks)

    def is_active(self, update_i: int) -> bool:
        """Whether any child computes a result at update `update_i`.

        Children without an `is_active` method (plain functions) count as always
        active.

        **Arguments:**

        - `update_i`: the index of the update (a concrete integer).

        **Returns:**

        - `True` if at least one child is active.
        """
        for child in self.callbacks:
            child_is_active = getattr(child, "is_active", None)
            if child_is_active is None or child_is_active(update_i):
                return True
        return False

    def __call__(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> dict[str, Any]:
        """Run every child and merge their dictionaries.

        **Arguments:**

        - `update_i`: the index of the current update.
        - `stepper`: the current emulator.
        - `data`: the minibatch of the current update.

        **Returns:**

        - The union of the children's result dictionaries.
        """
        merged = {}
        for index, child in enumerate(self.callbacks):
            result = child(update_i, stepper, data)
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"`callbacks[{index}]` must return a dict of results, got "
                    f"{type(result).__name__}."
                )
            merged.update(result)
        return merged
