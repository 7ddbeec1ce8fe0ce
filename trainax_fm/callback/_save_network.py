import os

import equinox as eqx
from jaxtyping import PyTree

from .._atomic import save_tree_atomic
from ._base import BaseCallback, _as_python_int


class SaveNetwork(BaseCallback):
    """Serialise the stepper to disk every `every` updates.

    Writes `{path}/{file_name}_{update_i}.eqx` with `eqx.tree_serialise_leaves`
    (read it back with `eqx.tree_deserialise_leaves` and a stepper of the same
    structure). The directory is created when missing. The file is first written to a
    temporary file in the same directory and then moved into place with `os.replace`,
    so an interrupted run never leaves a truncated checkpoint under the final name.

    **Arguments:**

    - `every`: the period in updates.
    - `path`: the directory of the checkpoints.
    - `file_name`: the stem of the file names.
    - `name`: the key of the result (default `"network_saved"`).
    """

    path: str = eqx.field(static=True)
    file_name: str = eqx.field(static=True)

    def __init__(
        self,
        every: int,
        path: str,
        file_name: str,
        name: str = "network_saved",
    ):
        self.every = every
        self.path = os.fspath(path)
        self.file_name = str(file_name)
        self.name = name

    def file_path(self, update_i: int) -> str:
        """The checkpoint path written at update `update_i`."""
        return os.path.join(
            self.path, f"{self.file_name}_{_as_python_int(update_i)}.eqx"
        )

    def callback(
        self,
        update_i: int,
        stepper: eqx.Module,
        data: PyTree,
    ) -> bool:
        """**Returns:** `True` once the checkpoint is on disk."""
        target = self.file_path(update_i)
        save_tree_atomic(target, stepper)
        return True
