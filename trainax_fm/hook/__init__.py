"""Hooks: what observes the training loop (checkpoints, guards, validation, logs, progress).

The loop of every trainer runs compiled updates and returns to Python only where a
hook asks for it, emitting a few events (start, before and after each dispatch, at
boundaries, end). Every run has the built-in hooks its engine options ask for
([`trainax_fm.EngineOptions`][]); pass your own with `trainer.train(..., hooks=[...])`
by subclassing [`trainax_fm.hook.AbstractHook`][]. A hook may end training early with
`loop.request_stop(reason)`. A hook whose state a resumed run must continue from
declares a `state_name` and keeps an [`trainax_fm.hook.AbstractHookState`][] there;
train states and checkpoints keep it by that name.
"""

from ._base import AbstractHook as AbstractHook
from ._callbacks import Callbacks as Callbacks
from ._checkpoint import Checkpoint as Checkpoint
from ._log_writers import AbstractLogWriter as AbstractLogWriter
from ._log_writers import CsvWriter as CsvWriter
from ._log_writers import JsonLinesWriter as JsonLinesWriter
from ._log_writers import TensorBoardWriter as TensorBoardWriter
from ._logging import Logger as Logger
from ._nonfinite import NonFiniteGuard as NonFiniteGuard
from ._progress import ProgressBar as ProgressBar
from ._validation import Validation as Validation
from .._state._hook_state import AbstractHookState as AbstractHookState
from .._loop._history import LossChunk as LossChunk
from .._loop._loop import Loop as Loop
