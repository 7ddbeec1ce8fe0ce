"""The one place that reads what a user's stepper declares about itself."""

from typing import Any


def needs_key(stepper: Any) -> bool:
    """Whether `stepper` is stochastic, i.e. must be called as `stepper(x, key=key)`.

    The protocol: a stepper that consumes a random key declares `needs_key = True`
    (a class attribute or a property); every other stepper, including any plain
    callable written for trainax, is deterministic. A user's stepper is an arbitrary
    callable, so this is the single boundary at which the declaration is read; the
    library's own wrappers (normalised, with loss weights, flow steppers) declare
    `needs_key` themselves and forward it from what they wrap through this function.

    **Arguments:**

    - `stepper`: any callable stepper.

    **Returns:**

    - `True` only if the stepper declares `needs_key` as exactly `True`.
    """
    # `is True`, not truthiness: a stray non-bool attribute (a mock, an array) must not
    # switch a deterministic stepper into the stochastic calling convention.
    return getattr(stepper, "needs_key", False) is True
