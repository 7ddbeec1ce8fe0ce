import equinox as eqx
from jaxtyping import PyTree

from ._base import BaseCallback


class GetNetwork(BaseCallback):
    """Record the stepper itself every `every` updates (e.g. to keep snapshots).

    **Arguments:**

    - `every`: the period in updates.
    - `name`: the key of the result (default `"network"`).
    """

    def __init__(self, every: int, name: str = "network"):
        self.every = every
        self.name = name

    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> eqx.Module:
        """**Returns:** the current `stepper`."""
        return stepper
