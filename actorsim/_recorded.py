"""`actorsim.recorded`: input the program reads itself, kept in the run log so that a replay or a resume reads it
again from there (Temporal's `side_effect`, Restate's `ctx.run`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from actorsim._runtime.current import current_runtime
from actorsim._runtime.runtime import Runtime

T = TypeVar("T")


def recorded(name: str, read: Callable[[], T], *, runtime: Runtime | None = None) -> T:
    """`read()`, recorded in the run log as the program's input `name`; in a replay or a resume, the recorded value.

    Wrap what the program reads from outside the run and what a run would otherwise not give back the
    same: a port it was given, the clock, a file, random numbers it draws itself (the library's own
    draws, such as routing seeds, are recorded already). Each read of one `name` is recorded apart, in
    order. The value must be JSON (str, number, bool, None, list, dict); it comes back as JSON does
    (a tuple as a list), live as in a replay. Call it once `actorsim.init` has started the run
    (`runtime`: another run). A replay that reaches a read its recording does not have diverges.
    Raises `TypeError` for a value that is not JSON.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"recorded: name must be a non-empty str, not {name!r}")
    return (runtime or current_runtime()).recorded(name, read)
