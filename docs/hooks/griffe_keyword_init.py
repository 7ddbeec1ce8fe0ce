"""Griffe extension: a class whose `__init__ = keyword_init(Record)` takes `Record`'s
parameters.

trainax_fm's one-line trainers declare their keywords once, as a dataclass record
(`trainax_fm/trainer/_keywords.py`), and build their `__init__` from it at import time.
Griffe reads the source without running it, so without this extension the API reference
would show no parameters for them. Records are dataclasses, whose `__init__` griffe's
built-in dataclass support writes; this extension copies that signature onto the
trainer, so it must run after that support: list griffe's `dataclasses` extension first
(mkdocs.yml does, for mkdocstrings; `tests/test_loop.py` loads both the same way).
"""

from typing import Any

import griffe

INIT_FACTORY = "keyword_init"


class KeywordInit(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for module in _modules(pkg):
            for member in list(module.members.values()):
                if not member.is_alias and member.is_class:
                    _replace_init(member)


def _modules(module: griffe.Module):
    yield module
    for member in module.members.values():
        if not member.is_alias and member.is_module:
            yield from _modules(member)


def _replace_init(cls: griffe.Class) -> None:
    init = cls.members.get("__init__")
    if init is None or init.is_alias or not init.is_attribute:
        return
    call = init.value
    if not (
        isinstance(call, griffe.ExprCall)
        and str(call.function) == INIT_FACTORY
        and len(call.arguments) == 1
    ):
        return
    record = cls.parent.members.get(str(call.arguments[0]))
    record_init = None if record is None else record.members.get("__init__")
    if record_init is None or not record_init.is_function:
        raise ValueError(
            f"{cls.path}: `__init__ = {INIT_FACTORY}({call.arguments[0]})` needs a dataclass "
            "record defined in the same module, and griffe's `dataclasses` extension listed "
            "before this one (it writes the record's `__init__`)"
        )
    cls.set_member(
        "__init__",
        griffe.Function(
            "__init__",
            lineno=init.lineno,
            endlineno=init.endlineno,
            parameters=griffe.Parameters(*record_init.parameters),
            returns="None",
        ),
    )
