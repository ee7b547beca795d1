"""Events that cross processes, for tests that wait on what happened rather than on a clock.

A gate or barrier is a folder: it pickles, so an actor on any transport
waits on the one the test holds. Each waits with a timeout and then raises,
so a test whose premise fails fails instead of hanging.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs

_LOOK_SECONDS = 0.002


def _wait_for(done: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(_LOOK_SECONDS)


@attrs.frozen
class Gate:
    """Numbered gates that an actor waits at until the test opens them.

    As a model's injected `sleep` (`ScriptedModel(..., sleep=gate)`) it waits at gate 1.
    """

    folder: Path
    timeout: float = 30.0

    def open(self, number: int = 1) -> None:
        (self.folder / f"open-{number}").touch()

    def is_open(self, number: int = 1) -> bool:
        return (self.folder / f"open-{number}").exists()

    def wait(self, number: int = 1) -> None:
        _wait_for(lambda: self.is_open(number), f"gate {number} was not opened", self.timeout)

    def __call__(self, seconds: float) -> None:
        """Stands in for `time.sleep` in a model: wait at gate 1, whatever `seconds` says."""
        self.wait(1)


@attrs.frozen
class Barrier:
    """Lets its callers on only once `parties` of them wait at once: proof that they run concurrently.

    Callable in place of `time.sleep`, so a model can wait at it before its reply.
    """

    folder: Path
    parties: int
    timeout: float = 30.0

    def wait(self) -> None:
        (self.folder / f"arrived-{uuid.uuid4().hex}").touch()
        _wait_for(
            lambda: len(list(self.folder.glob("arrived-*"))) >= self.parties,
            f"fewer than {self.parties} callers were waiting at once",
            self.timeout,
        )

    def __call__(self, seconds: float) -> None:
        self.wait()
