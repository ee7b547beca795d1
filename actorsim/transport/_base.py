"""The interface every transport implements, and what they share."""

from __future__ import annotations

import abc
import collections
import pickle
import queue
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import attrs

from actorsim._core.ref import ActorRef
from actorsim._errors import AskTimeoutError, RemoteError

if TYPE_CHECKING:
    from actorsim._core.options import RunOptions
    from actorsim._core.placement import Placement
    from actorsim._runlog import RunLogConfig, Sink


@runtime_checkable
class Behaviour(Protocol):
    """What an actor does with a request.

    For a request sent with `Transport.stream`, `receive` returns an iterable
    whose items travel back one by one as they are produced.
    """

    def receive(self, request: Any) -> Any:
        """The answer to `request`: a value for an ask, an iterable of items for a streamed call."""


BehaviourFactory = Callable[[], Behaviour]
"""Builds the behaviour inside the actor's process; must pickle for multiprocess transports."""
_Key = TypeVar("_Key")


class Detached(Iterator[Any]):
    """A streamed answer that runs apart from its actor's other requests: the actor takes its next request while
    this one still streams.

    For a behaviour whose streams share nothing unguarded with its other
    requests: a host, whose batches run on threads of their own and would
    otherwise wait for each other. Its factory says so (`streams_apart`), so
    that a transport which must make such an actor concurrent at its start
    (Ray's `max_concurrency`) does.
    """

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items

    def __next__(self) -> Any:
        return next(self._items)


def streams_apart(factory: BehaviourFactory) -> bool:
    """Whether the behaviours `factory` builds answer streamed calls with `Detached`."""
    return bool(getattr(factory, "streams_apart", False))


class Transport(abc.ABC):
    """Runs behaviours as actors and carries requests to them; every backend subclasses it.

    One transport per run, built by `from_options`. `ask` and `stream` block
    the calling thread and raise the actor's own exception when its behaviour
    raised, with the actor's traceback as a note where it ran elsewhere.

    Threads: `spawn`, `ask`, `stream` and `stop` may be called from several
    threads at once, and the thread that iterates a stream may call them while
    the stream is open (a step publishes its replies as they end). An actor
    still handles one request at a time, in the order they reached it, but
    for the streams its behaviour answers `Detached`, which run apart. A
    stream is iterated by the thread that started it. `shutdown` comes last,
    with no other call in flight. A backend that serialises calls says so in
    its docstring and names the lock (Thespian's driver endpoint: one lock, held
    by a stream from its first item to its end).
    """

    name: ClassVar[str]
    """How `load_transport` and the run log name this backend."""

    takes_placement: ClassVar[bool] = False
    """Whether `spawn` places actors on nodes; the others run on one machine and are never given a placement."""

    @classmethod
    def from_options(cls, options: RunOptions, run_id: str) -> Self:
        """Start this backend for run `run_id`; a backend with options of its own overrides it.

        Raises ValueError for an option this backend does not take.
        """
        cls.check_options(options)
        return cls()

    @classmethod
    def check_options(cls, options: RunOptions) -> None:
        """Refuse, before anything starts, the options this backend cannot honour.

        Only a backend that places actors on a cluster's nodes (`takes_placement`)
        takes `address` and `placement`. Raises ValueError naming the option.
        """
        if cls.takes_placement:
            return
        if options.address is not None:
            raise ValueError(f"address= is for the 'ray' transport, not {cls.name!r}")
        if options.placement is not None:
            raise ValueError(f"placement= is for the 'ray' transport, not {cls.name!r}")

    def log_sink(self, config: RunLogConfig) -> Sink | None:
        """Where actor processes send their run-log lines, when they cannot write the run's folder themselves.

        None (the default): each process appends its own file there, as it
        shares the driver's file system.
        """
        return None

    def report_to(self, log: Callable[..., object]) -> None:  # noqa: B027 - optional, empty by default
        """Record this backend's own events with `log(event, **fields)`: the runtime passes its run log's.

        Events no actor causes, such as an actor system the backend had to
        restart; a backend without any ignores it.
        """

    @abc.abstractmethod
    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        """Start an actor whose behaviour `factory` builds; names are unique per run.

        `placement` is only ever given to a backend that `takes_placement`.

        Raises ValueError for a name in use, and the factory's own exception if it fails.
        """

    @abc.abstractmethod
    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        """Deliver and wait for the behaviour's return value.

        Raises `AskTimeoutError` after `timeout`, `ActorStoppedError` or
        `ActorDiedError` for an actor that cannot answer.
        """

    def ask_many(self, asks: Sequence[tuple[ActorRef, Any]], *, timeout: float) -> list[Any]:
        """Each ask's answer in order, or the exception it raised in its place.

        One by one here; a transport that can gather asks (hosted agents, one
        request per host) does better. `timeout` bounds each request.
        """
        answers: list[Any] = []
        for to, request in asks:
            try:
                answers.append(self.ask(to, request, timeout=timeout))
            except Exception as error:  # noqa: BLE001 - one ask's error is its answer, the others go on
                answers.append(error)
        return answers

    def stream(
        self, calls: Sequence[tuple[ActorRef, Any]], *, timeout: float
    ) -> Iterator[tuple[ActorRef, Any]]:
        """Send each request to its actor at once and yield their items as they come.

        Several calls share one stream because responders in a step run
        concurrently and their frames interleave; `timeout` bounds the wait
        for the next item from any of them (`AskTimeoutError`). A call that
        fails (its behaviour raised, its actor died: `ActorDiedError`) ends
        with one `CallFailed` item; the others go on.
        """
        return stream_calls(self.open_calls(), calls, timeout)

    @abc.abstractmethod
    def open_calls(self) -> Calls:
        """An empty set of streamed calls, to which calls are added while their items are taken.

        What `stream` is built on; a supervisor uses it to deliver a request
        again to a restarted actor while the other calls go on.
        """

    @abc.abstractmethod
    def stop(self, ref: ActorRef) -> None:
        """Stop one actor; later requests to it raise `ActorStoppedError`.

        Requests to an actor whose process died raise `ActorDiedError`.
        """

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every actor and release every process, port and file of the run."""


def add_remote_traceback(error: BaseException, remote_traceback: str) -> BaseException:
    """Show where an actor raised `error`: its traceback ran in another thread or process."""
    error.add_note(f"Raised in an actor:\n{remote_traceback}")
    return error


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
            return add_remote_traceback(pickle.loads(self.payload), self.remote_traceback)
        return RemoteError(self.type_name, self.message, self.remote_traceback)


@attrs.frozen
class StreamEnd:
    """Marks the end of one streamed call."""


@attrs.frozen
class CallFailed:
    """The last item of a streamed call that failed: a supervisor decides what comes next."""

    error: BaseException


class Calls(abc.ABC):
    """Streamed calls in flight; more may be added while items are taken. Close it when done."""

    @abc.abstractmethod
    def add(self, ref: ActorRef, request: Any) -> None:
        """Send `request` to `ref` as a streamed call."""

    @abc.abstractmethod
    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        """The next item of any open call; None when none came within `timeout`, or every call has ended.

        A call that failed ends with one `CallFailed` item; a call that ended
        normally ends silently.
        """

    @property
    @abc.abstractmethod
    def open(self) -> int:
        """How many calls have not ended yet."""

    @property
    def ready(self) -> bool:
        """Whether `next` has an item to give at once; False where the transport cannot tell without waiting.

        A hint for batching: what the caller gathered while items were ready
        it sends on when none is.
        """
        return False

    @abc.abstractmethod
    def close(self) -> None:
        """Stop waiting for the open calls; items they still send are dropped."""

    def __enter__(self) -> Calls:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def stream_calls(
    calls: Calls, requests: Sequence[tuple[ActorRef, Any]], timeout: float
) -> Iterator[tuple[ActorRef, Any]]:
    """`Transport.stream` on top of `Transport.open_calls`."""
    with calls:
        for ref, request in requests:
            calls.add(ref, request)
        while calls.open:
            item = calls.next(timeout)
            if item is None and calls.open:
                raise AskTimeoutError(f"no item from {calls_waited_on(requests)} within {timeout} s")
            if item is not None:
                yield item


def calls_waited_on(requests: Sequence[tuple[ActorRef, Any]]) -> list[str]:
    return sorted({ref.name for ref, _ in requests})


class SinkCalls(Calls):
    """Calls whose producers put their items into one queue: the in-process transports.

    Producers put `(ref, item)`, then `(ref, StreamEnd())`, or `(ref, Failure)`
    to end with an error, which comes out as `CallFailed`.
    """

    def __init__(self, send: Callable[[ActorRef, Any, queue.SimpleQueue[tuple[ActorRef, Any]]], None]) -> None:
        self._send = send
        self.sink: queue.SimpleQueue[tuple[ActorRef, Any]] = queue.SimpleQueue()
        self._open: collections.Counter[str] = collections.Counter()

    def add(self, ref: ActorRef, request: Any) -> None:
        self._send(ref, request, self.sink)
        self._open[ref.name] += 1

    def close(self) -> None:
        self._open.clear()  # producers still running put into a queue no one reads

    @property
    def open(self) -> int:
        return self._open.total()

    @property
    def ready(self) -> bool:
        return not self.sink.empty()

    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        deadline = time.monotonic() + timeout
        while self._open:
            try:
                ref, item = self.sink.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if isinstance(item, StreamEnd | Failure):
                self._open -= collections.Counter([ref.name])
                if isinstance(item, Failure):
                    return ref, CallFailed(item.error())
                continue
            return ref, item
        return None


def run_into_sink(
    behaviour: Behaviour, ref: ActorRef, request: Any, sink: queue.SimpleQueue[tuple[ActorRef, Any]],
    *, apart: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """Run one streamed request and put its items, then its end, into `sink`.

    An answer the behaviour `Detached` is drained by `apart` (on a thread of its own) where one is given, so
    that the actor takes its next request at once.
    """
    try:
        items = behaviour.receive(request)
    except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
        sink.put((ref, Failure.capture(error)))
        return
    if isinstance(items, Detached) and apart is not None:
        apart(lambda: drain_into(items, ref, sink))
    else:
        drain_into(items, ref, sink)


def drain_into(items: Iterable[Any], key: _Key, out: queue.SimpleQueue[tuple[_Key, Any]]) -> None:
    """Put a stream's items into `out`, each as `(key, item)`, then its end: `StreamEnd`, or the `Failure` it
    raised."""
    try:
        for item in items:
            out.put((key, item))
    except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
        out.put((key, Failure.capture(error)))
    else:
        out.put((key, StreamEnd()))
