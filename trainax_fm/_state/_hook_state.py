"""What a hook saves: its state, a PyTree that train states and checkpoints keep by name.

A stateful hook (see [`trainax_fm.hook.AbstractHook`][]) keeps what a resumed run must
continue from in `loop.hook_states[hook.state_name]`, as an `AbstractHookState`. The
train state and its checkpoints hold these states by name without knowing their types:
a checkpoint records each state's type and `describe()`, and rebuilds its structure on
load with that type's `like`. So a new stateful hook needs no change to the loop, the
train state or the checkpoint format.
"""

import abc
from typing import Any, Optional

import equinox as eqx

# Every state type by `module.qualname`, filled as the types are defined, so a
# checkpoint can name the type of each state it holds.
_STATE_TYPES: dict[str, type] = {}

# Names that checkpoints written before a state type moved to another module record,
# mapped to the type's name now, so those checkpoints still load.
_MOVED_STATE_TYPES: dict[str, str] = {
    "trainax_fm._validation_history.ValidationHistory": (
        "trainax_fm._state._validation_history.ValidationHistory"
    ),
}


class AbstractHookState(eqx.Module):
    """The saved state of a stateful hook (a PyTree of arrays and static fields).

    Subclass it for the state of your own hook: implement `describe` (what fixes the
    state's structure: shapes, names, static fields) and `like` (a state of that
    structure, to read the saved values into). The hook declares its `state_name`,
    starts the state in `init_state(loop)` and replaces
    `loop.hook_states[state_name]` as it goes (see [`trainax_fm.hook.AbstractHook`][]).
    [`trainax_fm.ValidationHistory`][], the state of the validation hook, is one.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _STATE_TYPES[state_type_name(cls)] = cls

    @abc.abstractmethod
    def describe(self) -> dict:
        """What `like` needs to rebuild this state's structure (JSON-serialisable)."""

    @classmethod
    @abc.abstractmethod
    def like(
        cls, description: dict, stepper_like: Any, num_seeds: Optional[int]
    ) -> "AbstractHookState":
        """A state with the structure `description` records, to read a saved one into.

        **Arguments:**

        - `description`: what `describe()` returned for the saved state.
        - `stepper_like`: a stepper with the structure of the run's stepper.
        - `num_seeds`: the seed axis length of the run, or `None`.
        """


def state_type_name(cls: type) -> str:
    """The name a checkpoint records for a state type."""
    return f"{cls.__module__}.{cls.__qualname__}"


def state_type(name: str) -> type:
    """The state type a checkpoint names (its module must have been imported)."""
    name = _MOVED_STATE_TYPES.get(name, name)
    if name not in _STATE_TYPES:
        raise ValueError(
            f"the checkpoint holds a hook state of type {name!r}, which is not defined in "
            "this process; import the module that defines it before loading."
        )
    return _STATE_TYPES[name]
