"""Behaviours for transport tests; module level so other processes can import them."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from typing import Any

import attrs


@attrs.frozen
class Append:
    value: Any


@attrs.frozen
class GetValues:
    pass


@attrs.frozen
class Sleep:
    seconds: float


@attrs.frozen
class Fail:
    message: str


@attrs.frozen
class Count:
    """Stream 0..n-1, waiting `pause` before each item."""

    n: int
    pause: float = 0.0


@attrs.frozen
class GetPid:
    pass


class Recorder:
    """Remembers what it was told, in order."""

    def __init__(self, start: tuple[Any, ...] = ()) -> None:
        self.values: list[Any] = list(start)

    @functools.singledispatchmethod
    def receive(self, request: Any) -> Any:
        raise TypeError(f"unexpected {request!r}")

    @receive.register
    def _append(self, request: Append) -> int:
        self.values.append(request.value)
        return len(self.values)

    @receive.register
    def _values(self, request: GetValues) -> list[Any]:
        return list(self.values)

    @receive.register
    def _sleep(self, request: Sleep) -> None:
        time.sleep(request.seconds)

    @receive.register
    def _fail(self, request: Fail) -> None:
        raise KeyError(request.message)

    @receive.register
    def _count(self, request: Count) -> Iterator[tuple[int, float]]:
        for index in range(request.n):
            if request.pause:
                time.sleep(request.pause)
            yield index, time.time()

    @receive.register
    def _pid(self, request: GetPid) -> int:
        return os.getpid()


class BrokenAtStart:
    def __init__(self) -> None:
        raise RuntimeError("cannot start")

    def receive(self, request: Any) -> Any:
        return None
