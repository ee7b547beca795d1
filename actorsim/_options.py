"""Which options a component class takes, so an unknown one is named with the accepted ones."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable


def accepted_options(cls: type, *, leave_out: Iterable[str] = ("self", "name")) -> list[str]:
    """The keyword options of `cls.__init__`, following `**options` up to the classes it passes them on to."""
    return list(_accepted_options(cls, frozenset(leave_out)))


@functools.lru_cache(maxsize=256)
def _accepted_options(cls: type, skip: frozenset[str]) -> tuple[str, ...]:
    """Cached: a swarm makes thousands of agents of one class, and reading a signature is slow."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                  and p.name not in skip and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


def check_options(cls: type, options: Iterable[str], *, leave_out: Iterable[str] = ("self", "name")) -> None:
    """Refuse options `cls` does not take, naming them and the accepted ones."""
    accepted = accepted_options(cls, leave_out=leave_out)
    unknown = [option for option in options if option not in accepted]
    if unknown:
        raise TypeError(
            f"{cls.__name__} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted)}"
        )
