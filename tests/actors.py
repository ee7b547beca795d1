"""Behaviours and agents for tests; module level so other processes can import them."""

from __future__ import annotations

import functools
import gc
import multiprocessing.queues
import os
import signal
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from actorsim import ChatMessage, Hash, Message, Post, RolePlay
from actorsim._core.supervision import Durable
from actorsim.agents import StepItem
from tests.gates import Barrier, Gate


@attrs.frozen
class Append:
    value: Any


@attrs.frozen
class DurableAppend(Append, Durable):
    """An append the supervisor replays into a restarted Recorder."""


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
class Lockstep:
    """Stream 0..n-1, waiting at gate k before item k (from 1): the test sees each item before the next is made."""

    n: int
    gate: Gate


@attrs.frozen
class Meet:
    """Answer only once `barrier` has all its parties waiting at once."""

    barrier: Barrier


@attrs.frozen
class GetPid:
    pass


@attrs.frozen
class JamAdmin:
    """Die by SIGKILL holding the write lock of Thespian's admin queue: what a kill mid-message can do."""


def jam_thespian_admin() -> None:
    """Take the admin queue's write lock (multiprocQueueBase, Thespian 4.0.1 internals) and SIGKILL this process.

    Every message of the run passes through that queue; no one else can write
    to it again. A real kill does this only when it lands mid-write.
    """
    from thespian.system.transport.MultiprocessQueueTransport import MAX_ADMIN_QUEUESIZE

    # Queues of earlier actor systems of the run, copied into this process by fork, are taken too, harmlessly
    # (or not at all, when one was jammed before).
    for queue in gc.get_objects():
        if isinstance(queue, multiprocessing.queues.Queue) and queue._maxsize == MAX_ADMIN_QUEUESIZE:  # type: ignore[attr-defined]
            queue._wlock.acquire(timeout=1)  # type: ignore[attr-defined]
    os.kill(os.getpid(), signal.SIGKILL)


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
    def _lockstep(self, request: Lockstep) -> Iterator[int]:
        for index in range(request.n):
            if index:
                request.gate.wait(index)
            yield index

    @receive.register
    def _meet(self, request: Meet) -> int:
        request.barrier.wait()
        return len(self.values)

    @receive.register
    def _pid(self, request: GetPid) -> int:
        return os.getpid()

    @receive.register
    def _jam(self, request: JamAdmin) -> None:
        jam_thespian_admin()


class BrokenAtStart:
    def __init__(self) -> None:
        raise RuntimeError("cannot start")

    def receive(self, request: Any) -> Any:
        return None


class UnstartableAgent(RolePlay):
    """Its constructor raises, as an agent's whose storage cannot be read would."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        raise RuntimeError(f"{name} cannot start")


class TouchyAgent(RolePlay):
    """Raises on any message that mentions `trigger`.

    With `once_marker` (a file path) only the first time: the file remembers
    across the processes of restarted agents.
    """

    def __init__(self, name: str, *, trigger: str, once_marker: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self.trigger = trigger
        self.once_marker = Path(once_marker) if once_marker else None

    def step(self, received: Sequence[Message], **options: Any) -> Generator[str, None, str]:
        if any(self.trigger in message.content for message in received):
            if self.once_marker is None or not self.once_marker.exists():
                if self.once_marker is not None:
                    self.once_marker.touch()
                raise RuntimeError(f"{self.role} cannot stand {self.trigger!r}")
        return super().step(received, **options)


class JammingAgent(RolePlay):
    """Jams Thespian's admin (`jam_thespian_admin`) once its first reply has streamed, before it returns it.

    `once_marker`, a file path, remembers the jam across the processes of restarted agents.
    """

    def __init__(self, name: str, *, once_marker: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.once_marker = Path(once_marker)

    def step(self, received: Sequence[Message], **options: Any) -> Generator[StepItem, Any, str | list[Post]]:
        reply = yield from super().step(received, **options)
        if not self.once_marker.exists():
            self.once_marker.touch()
            jam_thespian_admin()
        return reply


class ContextReportingAgent(RolePlay):
    """Tells, as its prompt, what a user's structlog logger would see bound while it handles a message."""

    def user_turn(self, received: Sequence[Message], task: str | None) -> str:
        return f"bound: {structlog.contextvars.get_contextvars()}"


def item_key(message: Message) -> str:
    """`Hash`'s key for a `Splitter`'s posts: the item itself."""
    return message.content


class Splitter(RolePlay):
    """Sends each comma-separated item it receives to the worker that owns it, and tells `report_to` how many.

    Items it has met before (in its memory) are not sent again; `workers`
    names the group. With
    `tool`, it first calls that tool of its own with the items.
    """

    def __init__(
        self, name: str, *, report_to: str | None = None, tool: str | None = None, workers: str = "workers",
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.report_to = report_to
        self.tool = tool
        self.workers = workers

    def step(self, received: Sequence[Message], **options: Any) -> Generator[Any, Any, list[Post]]:
        seen = {turn.content for turn in self.memory.get_history() if turn.role == "user"}
        source: dict[str, str] = {}  # item -> the first message that named it
        for message in received:
            for item in message.content.split(","):
                if item and item not in seen:
                    source.setdefault(item, message.message_id)
        items = list(source)
        if self.tool is not None:
            outcome = yield from self.use_tool(self.tool, {"items": items}, reply_id=options.get("reply_id"))
            yield f"{self.tool}: {outcome.for_model()}"
        self.memory.update_history([ChatMessage("user", item) for item in items],
                                   handled=[message.message_id for message in received])
        posts = [Post(item, send_to=Hash(self.workers, key=item_key), parent_ids=[source[item]]) for item in items]
        if self.report_to is not None:
            posts.append(Post(f"{len(items)} items", send_to=self.report_to))
        return posts


def count_items(items: list[str]) -> int:
    """How many items there are.

    Args:
        items: the items
    """
    return len(items)
