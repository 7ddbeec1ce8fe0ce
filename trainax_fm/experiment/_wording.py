"""How messages name options: in the words of the caller.

The runner's messages tell the user what to do next ("continue it with ..."). From
Python that is a keyword argument (`resume=True`), from the shell a flag (`--resume`).
The command line switches the wording for the duration of one command with
`cli_wording()`; everything else reads `term(...)`.
"""

import contextlib
import contextvars
from collections.abc import Iterator

_PYTHON = {
    "resume": "resume=True",
    "overwrite": "overwrite=True",
    "name": "name=",
    "data": "data",
    "num_rollout_steps": "num_rollout_steps",
    "resume_run": "run_experiment(CONFIG, resume=True)",
    "default_config": "default_config()",
}
_CLI = {
    "resume": "--resume",
    "overwrite": "--overwrite",
    "name": "--name",
    "data": "--data",
    "num_rollout_steps": "--num-rollout-steps",
    "resume_run": "trainax-fm train CONFIG --resume",
    "default_config": "trainax-fm train --default",
}
_WORDING = contextvars.ContextVar("trainax_fm_wording", default=_PYTHON)


def term(option: str) -> str:
    """How the current caller spells `option` (a key of the tables above)."""
    return _WORDING.get()[option]


@contextlib.contextmanager
def cli_wording() -> Iterator[None]:
    """Within the block, messages name command-line flags instead of arguments."""
    token = _WORDING.set(_CLI)
    try:
        yield
    finally:
        _WORDING.reset(token)
