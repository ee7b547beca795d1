"""Actors as threads with mailboxes, in the calling process.

For tests and debugging: the same one-message-at-a-time semantics as the
multiprocess transports, with nothing to start and tracebacks in one place.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import attrs

from actorsim._core.context import stop_waits_with
from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._errors import ActorStoppedError, AskTimeoutError
from actorsim.transport._base import (
    Behaviour,
    BehaviourFactory,
    Calls,
    Failure,
    SinkCalls,
    Transport,
    run_into_sink,
)

_Sink = queue.SimpleQueue[tuple[ActorRef, Any]]
STOP_WAIT_S = 2.0
"""How long stopping an actor waits for the request it is handling to end."""


@attrs.frozen
class _Delivery:
    request: Any
    sink: _Sink
    streamed: bool


class _Stop:
    """Ends a mailbox loop."""


class _Mailbox:
    def __init__(self, ref: ActorRef, behaviour: Behaviour) -> None:
        self.ref = ref
        self.behaviour = behaviour
        self.inbox: queue.SimpleQueue[_Delivery | _Stop] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"actorsim:{ref.name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        stop_waits_with(self.stopping)  # a wait for another try in this actor ends when it is stopped
        while not isinstance(delivery := self.inbox.get(), _Stop):
            if delivery.streamed:
                run_into_sink(self.behaviour, self.ref, delivery.request, delivery.sink, apart=self._apart)
                continue
            try:
                result: Any = self.behaviour.receive(delivery.request)
            except Exception as error:
                result = Failure.capture(error)
            delivery.sink.put((self.ref, result))

    def _apart(self, drain: Callable[[], None]) -> None:
        """A stream its behaviour detached runs on a thread of its own, which a stop of the actor ends too."""

        def run() -> None:
            stop_waits_with(self.stopping)
            drain()

        threading.Thread(target=run, name=f"actorsim:{self.ref.name}:stream", daemon=True).start()


class LocalTransport(Transport):
    """Each actor is a thread that handles one request at a time.

    Any thread may call at once: a request waits in its actor's mailbox, and
    one lock guards the table of actors while they are spawned and stopped.
    """

    name = "local"

    def __init__(self) -> None:
        self._mailboxes: dict[str, _Mailbox] = {}
        self._lock = threading.Lock()

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        with self._lock:
            if name in self._mailboxes:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            ref = ActorRef(name, name, os.getpid())
            self._mailboxes[name] = _Mailbox(ref, factory())
        return ref

    def _mailbox(self, ref: ActorRef) -> _Mailbox:
        mailbox = self._mailboxes.get(ref.name)
        if mailbox is None or mailbox.ref is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")
        return mailbox

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        sink: _Sink = queue.SimpleQueue()
        self._mailbox(to).inbox.put(_Delivery(request, sink, streamed=False))
        try:
            _, result = sink.get(timeout=timeout)
        except queue.Empty:
            raise AskTimeoutError(f"actor {to.name!r} did not answer within {timeout} s") from None
        if isinstance(result, Failure):
            raise result.error()
        return result

    def open_calls(self) -> Calls:
        return SinkCalls(self._send_streamed)

    def _send_streamed(self, ref: ActorRef, request: Any, sink: _Sink) -> None:
        self._mailbox(ref).inbox.put(_Delivery(request, sink, streamed=True))

    def stop(self, ref: ActorRef) -> None:
        with self._lock:
            mailbox = self._mailboxes.get(ref.name)
            if mailbox is None or mailbox.ref is not ref:
                return
            del self._mailboxes[ref.name]
        mailbox.stopping.set()
        mailbox.inbox.put(_Stop())
        # A request it is still handling ends at its next wait; one stuck elsewhere (a model server that does not
        # answer) is left to its daemon thread rather than hold up the run's stop.
        mailbox.thread.join(STOP_WAIT_S)

    def shutdown(self) -> None:
        for mailbox in list(self._mailboxes.values()):
            self.stop(mailbox.ref)


transport_class = LocalTransport
