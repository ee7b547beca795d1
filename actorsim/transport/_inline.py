"""No actors at all: the seed's `remote=False` mode.

Behaviours are plain objects called in the caller's thread. Only a step's
responders run on pooled threads, so that they answer concurrently as on
every other transport.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from typing import Any

from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._errors import ActorStoppedError
from actorsim.transport._base import (
    Behaviour,
    BehaviourFactory,
    Calls,
    SinkCalls,
    Transport,
    run_into_sink,
)


class InlineTransport(Transport):
    """Calls behaviours directly; a lock per behaviour keeps one call at a time.

    Calls to different behaviours from several threads run at once.
    """

    name = "inline"

    def __init__(self) -> None:
        self._behaviours: dict[str, tuple[Behaviour, threading.Lock]] = {}
        self._spawning = threading.Lock()  # one name, one behaviour, however many threads spawn
        # Threads are reused across steps; the bound is far above any step's responders.
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=4096, thread_name_prefix="actorsim")

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        with self._spawning:
            if name in self._behaviours:
                raise ValueError(f"a component named {name!r} already exists")
            self._behaviours[name] = (factory(), threading.Lock())
        return ActorRef(name, name, os.getpid())

    def _entry(self, ref: ActorRef) -> tuple[Behaviour, threading.Lock]:
        try:
            return self._behaviours[ref.name]
        except KeyError:
            raise ActorStoppedError(f"component {ref.name!r} is stopped") from None

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        behaviour, lock = self._entry(to)
        with lock:
            return behaviour.receive(request)

    def open_calls(self) -> Calls:
        return SinkCalls(self._send_streamed)

    def _send_streamed(self, ref: ActorRef, request: Any, sink: queue.SimpleQueue[tuple[ActorRef, Any]]) -> None:
        behaviour, lock = self._entry(ref)
        self._workers.submit(self._locked_run, behaviour, lock, ref, request, sink)

    @staticmethod
    def _locked_run(
        behaviour: Behaviour,
        lock: threading.Lock,
        ref: ActorRef,
        request: Any,
        sink: queue.SimpleQueue[tuple[ActorRef, Any]],
    ) -> None:
        with lock:
            run_into_sink(behaviour, ref, request, sink)

    def stop(self, ref: ActorRef) -> None:
        self._behaviours.pop(ref.name, None)

    def shutdown(self) -> None:
        self._behaviours.clear()
        self._workers.shutdown(wait=False)


transport_class = InlineTransport
