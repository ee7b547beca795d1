"""The interface every transport implements, and what they share."""

from __future__ import annotations

import collections
import pickle
import queue
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from actorsim._errors import AskTimeoutError, RemoteError


@runtime_checkable
class Behaviour(Protocol):
    """What an actor does with a request.

    For a request sent with `Transport.stream`, `receive` returns an iterable
    whose items travel back one by one as they are produced.
    """

    def receive(self, request: Any) -> Any: ...


BehaviourFactory = Callable[[], Behaviour]
"""Builds the behaviour inside the actor's process; must pickle for multiprocess transports."""


@attrs.frozen
class ActorRef:
    """Names one actor of one transport; `address` is the backend's own handle.

    `pid` is the process the actor runs in (the caller's own for in-process transports).
    """

    name: str
    address: Any = attrs.field(eq=False, repr=False)
    pid: int | None = attrs.field(default=None, eq=False)


class Transport(Protocol):
    """Runs behaviours as actors and carries requests to them.

    One transport per run. `ask` and `stream` block the calling thread and
    raise the actor's own exception when its behaviour raised.
    """

    name: str

    def spawn(self, factory: BehaviourFactory, *, name: str, timeout: float) -> ActorRef:
        """Start an actor whose behaviour `factory` builds; names are unique per run."""

    def tell(self, to: ActorRef, request: Any) -> None:
        """Deliver without waiting for (or getting) an answer."""

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        """Deliver and wait for the behaviour's return value."""

    def stream(
        self, calls: Sequence[tuple[ActorRef, Any]], *, timeout: float
    ) -> Iterator[tuple[ActorRef, Any]]:
        """Send each request to its actor at once and yield their items as they come.

        Several calls share one stream because responders in a step run
        concurrently and their frames interleave; `timeout` bounds the wait
        for the next item from any of them. A call that fails (its behaviour
        raised, its actor died: `ActorDiedError`) ends with one `CallFailed`
        item; the others go on.
        """

    def stop(self, ref: ActorRef) -> None:
        """Stop one actor; later requests to it raise `ActorStoppedError`.

        Requests to an actor whose process died raise `ActorDiedError`.
        """

    def shutdown(self) -> None:
        """Stop every actor and release every process, port and file of the run."""


@attrs.frozen
class Failure:
    """An exception on its way back from an actor, packed so it always pickles."""

    payload: bytes | None
    type_name: str
    message: str
    remote_traceback: str

    @classmethod
    def capture(cls, error: BaseException) -> Failure:
        trace = "".join(traceback.format_exception(error))
        payload: bytes | None
        try:
            payload = pickle.dumps(error)
            pickle.loads(payload)
        except Exception:
            payload = None
        return cls(payload, type(error).__qualname__, str(error), trace)

    def error(self) -> BaseException:
        """The original exception where it unpickles, with the remote traceback as a note."""
        if self.payload is not None:
            error: BaseException = pickle.loads(self.payload)
            error.add_note(f"Raised in an actor:\n{self.remote_traceback}")
            return error
        return RemoteError(self.type_name, self.message, self.remote_traceback)


@attrs.frozen
class StreamEnd:
    """Marks the end of one streamed call."""


@attrs.frozen
class CallFailed:
    """The last item of a streamed call that failed: a supervisor decides what comes next."""

    error: BaseException


def merge_sink(
    sink: queue.SimpleQueue[tuple[ActorRef, Any]], refs: Sequence[ActorRef], timeout: float
) -> Iterator[tuple[ActorRef, Any]]:
    """Yield the items that producers put into `sink` until every call to `refs` has ended.

    Producers put `(ref, item)`, then `(ref, StreamEnd())`, or `(ref, Failure)`
    to end with an error, which is yielded as `CallFailed`.
    """
    open_calls = collections.Counter(ref.name for ref in refs)
    while open_calls:
        try:
            ref, item = sink.get(timeout=timeout)
        except queue.Empty:
            names = sorted(open_calls.elements())
            raise AskTimeoutError(f"no item from {names} within {timeout} s") from None
        if isinstance(item, StreamEnd | Failure):
            open_calls -= collections.Counter([ref.name])
            if isinstance(item, Failure):
                yield ref, CallFailed(item.error())
        else:
            yield ref, item


def run_into_sink(
    behaviour: Behaviour, ref: ActorRef, request: Any, sink: queue.SimpleQueue[tuple[ActorRef, Any]]
) -> None:
    """Run one streamed request and put its items, then its end, into `sink`."""
    try:
        for item in behaviour.receive(request):
            sink.put((ref, item))
    except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
        sink.put((ref, Failure.capture(error)))
    else:
        sink.put((ref, StreamEnd()))
