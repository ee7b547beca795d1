"""Actors as processes on one machine, through Thespian.

Base: `multiprocQueueBase`. Measured here (see the README's figures) it moves
actor-to-actor messages about ten times faster than `multiprocTCPBase`, and it
opens no socket at all, so two runs on one machine can never meet and nothing
listens beyond the machine. Its admin is a child of the driver: `shutdown()`
ends it, and every actor watches the driver so that a driver killed outright
takes the whole run down with it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import pickle
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import attrs
import psutil
from thespian.actors import Actor, ActorAddress, ActorExitRequest, ActorSystem

from actorsim._errors import ActorDiedError, ActorStoppedError, AskTimeoutError
from actorsim._placement import Placement
from actorsim.transport._base import (
    ActorRef,
    Behaviour,
    BehaviourFactory,
    CallFailed,
    Calls,
    Failure,
    StreamEnd,
    Transport,
)

if TYPE_CHECKING:
    from actorsim._runtime import RunOptions

SYSTEM_BASE = "multiprocQueueBase"
_DRIVER_POLL_SECONDS = 1.0
# How often a waiting driver looks at the processes it waits on. Thespian's own notice of a dead
# child (ChildActorExited) took up to 35 s on this base (see RUNTIMES.md); a look costs ~10 us.
_LIVENESS_POLL_SECONDS = 0.05
_FIRST_LOOK_SECONDS = 0.002  # the first look comes sooner: a request to a dead actor is noticed at once


@attrs.frozen
class _Start:
    call_id: int
    factory: BehaviourFactory
    driver_pid: int


@attrs.frozen
class _Request:
    call_id: int
    payload: bytes  # the request, pickled: see `_packed`
    streamed: bool


@attrs.frozen
class _Answer:
    call_id: int
    value: Any  # pickled on the wire (see `_packed`), unpickled once the driver takes it


def _packed(value: Any) -> bytes:
    """What goes over Thespian: bytes pickled by us, not the object.

    Thespian carries a large object graph far slower than the same graph
    pickled: measured here, an Environment snapshot of 0.7 MB took 7.7 s as an
    object and 0.04 s as bytes (a 12 MB one, 130 s). Small messages pay one
    pickling more, which the benchmarks do not show.
    """
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class _Died:
    """Stands for the answer of an actor whose process is gone."""

    @staticmethod
    def error(ref: ActorRef) -> ActorDiedError:
        return ActorDiedError(f"actor {ref.name!r} died (process {ref.pid} is gone)")


class ThespianShell(Actor):  # type: ignore[misc]
    """The Thespian actor that hosts one behaviour."""

    behaviour: Behaviour | None = None

    def receiveMessage(self, message: Any, sender: ActorAddress) -> None:  # noqa: N802
        if isinstance(message, _Start):
            self._start(message, sender)
        elif isinstance(message, _Request):
            self._handle(message, sender)
        # Thespian's own notices (ActorExitRequest, ChildActorExited, ...) need nothing from us.

    def _start(self, message: _Start, sender: ActorAddress) -> None:
        try:
            self.behaviour = message.factory()
        except Exception as error:
            self.send(sender, _Answer(message.call_id, _packed(Failure.capture(error))))
            return
        threading.Thread(target=_exit_with_driver, args=(message.driver_pid,), daemon=True).start()
        self.send(sender, _Answer(message.call_id, _packed((os.getpid(), os.getppid()))))

    def _handle(self, message: _Request, sender: ActorAddress) -> None:
        assert self.behaviour is not None, "request before start"
        try:
            result = self.behaviour.receive(pickle.loads(message.payload))
            if message.streamed:
                for item in result:
                    self.send(sender, _Answer(message.call_id, _packed(item)))
                result = StreamEnd()
            answer = _packed(result)
        except Exception as error:
            answer = _packed(Failure.capture(error))
        self.send(sender, _Answer(message.call_id, answer))


def _exit_with_driver(driver_pid: int) -> None:
    """End this actor, its admin and the admin's other children (the logger, other actors) once the driver is gone."""
    while True:
        time.sleep(_DRIVER_POLL_SECONDS)
        try:
            os.kill(driver_pid, 0)
        except ProcessLookupError:
            break
    admin_pid = os.getppid()
    if admin_pid not in (driver_pid, 1):
        with contextlib.suppress(psutil.Error):
            admin = psutil.Process(admin_pid)
            for process in [admin, *(child for child in admin.children() if child.pid != os.getpid())]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
    os._exit(0)


@contextlib.contextmanager
def _standard_streams_to(path: Path) -> Iterator[None]:
    """Point fds 1 and 2 at `path` while child processes are forked.

    Thespian's processes inherit the driver's stdout and stderr; a driver whose
    output is a pipe would otherwise wait for them to close it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


class _ThespianCalls(Calls):
    """Streamed calls: answers are matched to calls by id, other calls' answers kept for them."""

    def __init__(self, transport: ThespianTransport) -> None:
        self._transport = transport
        self._calls: dict[int, ActorRef] = {}
        self._holding = False

    def add(self, ref: ActorRef, request: Any) -> None:
        transport = self._transport
        if not self._holding:
            transport._lock.acquire()  # released by close(): the endpoint serves one thread at a time
            self._holding = True
        address = transport._address(ref)
        call_id = transport._open_call()
        self._calls[call_id] = ref
        transport._system.tell(address, _Request(call_id, _packed(request), streamed=True))

    @property
    def open(self) -> int:
        return len(self._calls)

    @property
    def ready(self) -> bool:
        """Answers already taken from the endpoint for these calls; what it still holds is not looked at."""
        return not self._transport._kept.isdisjoint(self._calls)

    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        deadline = time.monotonic() + timeout
        while self._calls:
            answer = self._transport._next_answer(self._calls, max(0.0, deadline - time.monotonic()))
            if answer is None:
                return None
            ref = self._calls[answer.call_id]
            if isinstance(answer.value, StreamEnd | Failure | _Died):
                self._end(answer.call_id)
            if isinstance(answer.value, Failure):
                return ref, CallFailed(answer.value.error())
            if isinstance(answer.value, _Died):
                return ref, CallFailed(_Died.error(ref))
            if not isinstance(answer.value, StreamEnd):
                return ref, answer.value
        return None

    def _end(self, call_id: int) -> None:
        del self._calls[call_id]
        self._transport._forget_call(call_id)

    def close(self) -> None:
        for call_id in list(self._calls):
            self._end(call_id)
        if self._holding:
            self._holding = False
            self._transport._lock.release()


class ThespianTransport(Transport):
    """Every actor is a process under one Thespian admin owned by this run.

    Thespian's driver endpoint is not thread-safe: one re-entrant lock
    (`_lock`) serialises the driver's calls, and answers are matched to calls
    by id, so that an answer to a call given up on is never taken for another's.

    What the lock means for callers: calls from several threads are safe but
    take turns, each waiting for the one before to be answered. A stream holds
    the lock from its first item until it ends or is closed, so while one is
    open other threads' calls wait for its end; the thread iterating it may
    still call (the lock is re-entrant), which is how a step publishes its
    replies. A thread that keeps a stream open while it waits for another
    thread's call to this transport deadlocks: iterate a stream to its end,
    or close it, before waiting on another thread.
    """

    name = "thespian"

    @classmethod
    def from_options(cls, options: RunOptions, run_id: str) -> Self:
        """Thespian's processes write their own output to `thespian-<run_id>.out` in the run's log folder."""
        cls.check_options(options)
        output_dir = options.log_dir / run_id if options.log_dir is not None else Path(tempfile.gettempdir())
        return cls(output_path=output_dir / f"thespian-{run_id}.out")

    def __init__(self, *, output_path: Path) -> None:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        with _standard_streams_to(output_path):
            self._system = ActorSystem(SYSTEM_BASE, transientUnique=True)
        self._refs: dict[str, ActorRef] = {}
        self._lock = threading.RLock()
        self._call_ids = itertools.count(1)
        self._waiting: dict[int, collections.deque[_Answer]] = {}
        self._kept: set[int] = set()  # calls with answers in `_waiting`: looked up without scanning every call
        self._processes: dict[int, psutil.Process] = {}
        self._admin: psutil.Process | None = None  # the parent of every actor process
        self._lost_an_actor = False

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        with self._lock:
            if name in self._refs:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            address = self._system.createActor(ThespianShell)
            call_id = self._open_call()
            self._system.tell(address, _Start(call_id, factory, os.getpid()))
            try:
                pid, parent = self._await(ActorRef(name, address), call_id, timeout)
                self._processes[pid] = psutil.Process(pid)
                if self._admin is None:
                    self._admin = psutil.Process(parent)
            except BaseException:
                self._system.tell(address, ActorExitRequest())
                raise
            ref = self._refs[name] = ActorRef(name, address, pid)
            return ref

    def _address(self, ref: ActorRef) -> ActorAddress:
        if self._refs.get(ref.name) is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")
        return ref.address

    def _open_call(self) -> int:
        call_id = next(self._call_ids)
        self._waiting[call_id] = collections.deque()
        return call_id

    def _forget_call(self, call_id: int) -> None:
        self._waiting.pop(call_id, None)
        self._kept.discard(call_id)

    def _next_answer(self, calls: dict[int, ActorRef], timeout: float) -> _Answer | None:
        """The next answer to one of `calls`, a `_Died` answer if its actor's process is gone, or None after `timeout`.

        Answers to other open calls are kept for them (a step publishes while
        its stream is open); answers to calls given up on are dropped.
        """
        kept_for = next((call_id for call_id in self._kept if call_id in calls), None)
        if kept_for is not None:
            kept = self._waiting[kept_for]
            if len(kept) == 1:
                self._kept.discard(kept_for)
            return kept.popleft()
        now = time.monotonic()
        deadline, next_look = now + timeout, now + _FIRST_LOOK_SECONDS
        while (now := time.monotonic()) < deadline:
            answer = self._system.listen(max(0.0, min(deadline, next_look) - now))
            if isinstance(answer, _Answer):
                answer = _Answer(answer.call_id, pickle.loads(answer.value))
                if answer.call_id in calls:
                    return answer
                if answer.call_id in self._waiting:
                    self._waiting[answer.call_id].append(answer)
                    self._kept.add(answer.call_id)
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + _LIVENESS_POLL_SECONDS
                for call_id, ref in calls.items():
                    if not self._alive(ref):
                        self._lost_an_actor = True
                        return _Answer(call_id, _Died())
        return None

    def _alive(self, ref: ActorRef) -> bool:
        """False once the actor's process is gone; an actor still starting (no pid yet) counts as alive."""
        process = self._processes.get(ref.pid) if ref.pid is not None else None
        if process is None:
            return True
        try:
            return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    def _await(self, ref: ActorRef, call_id: int, timeout: float) -> Any:
        try:
            answer = self._next_answer({call_id: ref}, timeout)
        finally:
            self._forget_call(call_id)
        if answer is None:
            raise AskTimeoutError(f"actor {ref.name!r} did not answer within {timeout} s")
        if isinstance(answer.value, _Died):
            raise _Died.error(ref)
        if isinstance(answer.value, Failure):
            raise answer.value.error()
        return answer.value

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        with self._lock:
            call_id = self._open_call()
            self._system.tell(self._address(to), _Request(call_id, _packed(request), streamed=False))
            return self._await(to, call_id, timeout)

    def open_calls(self) -> Calls:
        """Holds the driver's endpoint until closed; the same thread may still ask and spawn meanwhile."""
        return _ThespianCalls(self)

    def stop(self, ref: ActorRef) -> None:
        with self._lock:
            if self._refs.get(ref.name) is ref:
                # Its process stays in `_processes`: a call still open to it must see it die, not wait for ever.
                del self._refs[ref.name]
                self._system.tell(ref.address, ActorExitRequest())

    def shutdown(self) -> None:
        """Shut the admin down; after a lost actor, end its processes ourselves.

        An admin that lost a child to SIGKILL mid-message was seen to wait out its
        own shutdown (10 s) and then live on, holding the driver's output open.
        """
        with self._lock:
            if not self._lost_an_actor:
                self._system.shutdown()
            self._end_admin_processes()
            self._refs.clear()
            self._processes.clear()

    def _end_admin_processes(self) -> None:
        """Kill what is left of this run's admin and its children (the logger, actors): by pid, never by name."""
        if self._admin is None:
            return
        try:
            left = [self._admin, *self._admin.children(recursive=True)] if self._admin.is_running() else []
        except psutil.NoSuchProcess:
            return
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(left, timeout=5)


transport_class = ThespianTransport
