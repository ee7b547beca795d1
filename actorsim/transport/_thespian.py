"""Actors as processes on one machine, through Thespian.

Base: `multiprocQueueBase`. Measured here (see the README's figures) it moves
actor-to-actor messages about ten times faster than `multiprocTCPBase`, and it
opens no socket at all, so two runs on one machine can never meet and nothing
listens beyond the machine. Its admin lives as long as the run: `shutdown()`
ends it, and every actor watches the driver so that a driver killed outright
takes the whole run down with it.

Its weak point: every message of the run passes through one multiprocessing
queue, the admin's. A process SIGKILLed while it writes to that queue keeps its
write lock for ever (or the room its unsent messages took), and then nothing
reaches anyone: seen in 6 of 25 test runs that kill hosts mid-round. So the
driver checks that the admin still routes (after a death, and after a second
of silence) and, when it does not, restarts the actor system: every actor of
the old one is dead to the runtime, whose supervisor restarts each with its
state, as after any crash.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import math
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import attrs
import psutil
from thespian.actors import (
    Actor,
    ActorAddress,
    ActorExitRequest,
    ActorSystem,
    ActorSystemFailure,
    InvalidActorAddress,
    WakeupMessage,
)
from thespian.system.messages.status import Thespian_StatusReq, Thespian_SystemStatus

from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._errors import ActorDiedError, ActorStoppedError, AskTimeoutError, TransportStartError
from actorsim._runlog import flush_logs
from actorsim.transport._base import (
    Behaviour,
    BehaviourFactory,
    CallFailed,
    Calls,
    Detached,
    Failure,
    StreamEnd,
    Transport,
    drain_into,
)

if TYPE_CHECKING:
    from actorsim._core.options import RunOptions

SYSTEM_BASE = "multiprocQueueBase"
_DRIVER_POLL_SECONDS = 1.0
_BUSY_EXIT_SECONDS = 1.0  # what a SIGTERMed actor is given to write out its log before it is killed
# How often a waiting driver looks at the processes it waits on. Thespian's own notice of a dead
# child (ChildActorExited) took up to 35 s on this base (see RUNTIMES.md); a look costs ~10 us.
_LIVENESS_POLL_SECONDS = 0.05
_FIRST_LOOK_SECONDS = 0.002  # the first look comes sooner: a request to a dead actor is noticed at once
# Whether the admin still routes is asked after a death, and after this long without a message while waiting.
# It answers in about 1 ms; one that has not answered after _PROBE_TIMEOUT of listening is taken for stuck.
_PROBE_AFTER_SECONDS = 1.0
_PROBE_TIMEOUT_SECONDS = 5.0
_START_TRIES = 2
"""An actor system whose admin does not answer is started again, once."""
# How soon an actor with a detached stream open looks again for its items: soon after items came, twice as long
# after each look that found none, up to the longest. A look costs the actor ~0.35 ms (Thespian's wakeup): looking
# every 2 ms took 5.5% of a core while the stream waited on its model, every 10 ms 3.5%.
_PASS_ON_SECONDS = (0.002, 0.064)


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


@attrs.frozen
class _Answers:
    """Items of detached streams, each `(call id, item)`, pickled as one: what a host's batches made since its
    last look goes in one message, not one each. Thespian routes every message through the admin, whose queue
    and each actor's are bounded: a host sending one message an item filled the admin's, the admin then waited
    for a host whose own queue was full of the driver's batches, and that host for the admin."""

    values: bytes


def _packed(value: Any) -> bytes:
    """What goes over Thespian: bytes pickled by us, not the object.

    Thespian carries a large object graph far slower than the same graph
    pickled: measured here, an Environment snapshot of 0.7 MB took 7.7 s as an
    object and 0.04 s as bytes (a 12 MB one, 130 s). Small messages pay one
    pickling more, which the benchmarks do not show.
    """
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


@attrs.frozen
class _Died:
    """Stands for the answer of an actor whose process is gone: why, in words."""

    why: str

    def error(self) -> ActorDiedError:
        return ActorDiedError(self.why)


@attrs.frozen
class _Address:
    """An actor's Thespian address, the run's actor system it belongs to, and its process once started.

    A restarted system hands out the same addresses again: one of an old
    system must never reach the new system's actor that now bears it. The
    process is kept, not its pid: pids come round again (32,768 of them
    here), and a new process under a dead actor's pid must not look like it.
    """

    system: int
    actor: ActorAddress
    process: psutil.Process | None = None


class ThespianShell(Actor):  # type: ignore[misc]
    """The Thespian actor that hosts one behaviour.

    A stream its behaviour detaches (`Detached`) runs on a thread of its own
    while the actor takes its next requests. A Thespian actor sends only
    from its own thread, so that thread passes the stream's items on: after
    each message it handles, and every `_PASS_ON_SECONDS` while a detached
    stream is open (`wakeupAfter`).
    """

    behaviour: Behaviour | None = None
    _detached: queue.SimpleQueue[tuple[tuple[ActorAddress, int], Any]] | None = None  # detached streams' items
    _detached_open = 0
    _look_after = 0.0  # how long the last look for their items waited
    _wakeup_at = math.inf  # when the soonest look asked for comes

    def receiveMessage(self, message: Any, sender: ActorAddress) -> None:  # noqa: N802
        if isinstance(message, _Start):
            self._start(message, sender)
        elif isinstance(message, _Request):
            self._handle(message, sender)
        elif isinstance(message, WakeupMessage) and time.monotonic() >= self._wakeup_at - _PASS_ON_SECONDS[0] / 2:
            self._wakeup_at = math.inf
        # Thespian's other notices (ActorExitRequest, ChildActorExited, ...) need nothing from us.
        if self._detached_open:
            self._pass_on()

    def _start(self, message: _Start, sender: ActorAddress) -> None:
        try:
            self.behaviour = message.factory()
        except Exception as error:
            self.send(sender, _Answer(message.call_id, _packed(Failure.capture(error))))
            return
        threading.Thread(target=_exit_with_driver, args=(message.driver_pid,), daemon=True).start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_now)
        self.send(sender, _Answer(message.call_id, _packed((os.getpid(), os.getppid()))))

    def _handle(self, message: _Request, sender: ActorAddress) -> None:
        assert self.behaviour is not None, "request before start"
        try:
            result = self.behaviour.receive(pickle.loads(message.payload))
            if message.streamed and isinstance(result, Detached):
                self._detach(result, message.call_id, sender)
                return
            if message.streamed:
                for item in result:
                    self.send(sender, _Answer(message.call_id, _packed(item)))
                result = StreamEnd()
            answer = _packed(result)
        except Exception as error:
            answer = _packed(Failure.capture(error))
        self.send(sender, _Answer(message.call_id, answer))

    def _detach(self, items: Detached, call_id: int, sender: ActorAddress) -> None:
        """Run a detached stream on a thread of its own; its items wait in `_detached` for `_pass_on`."""
        if self._detached is None:
            self._detached = queue.SimpleQueue()
        self._detached_open += 1
        self._look_after = 0.0  # its first items are looked for soon
        threading.Thread(target=drain_into, args=(items, (sender, call_id), self._detached),
                         name=f"actorsim:stream-{call_id}", daemon=True).start()

    def _pass_on(self) -> None:
        """Send what the detached streams produced so far; look again soon while one is open."""
        assert self._detached is not None
        passed: list[tuple[ActorAddress, list[tuple[int, Any]]]] = []  # per caller (the driver, as a rule)
        while True:
            try:
                (sender, call_id), item = self._detached.get_nowait()
            except queue.Empty:
                break
            if not passed or passed[-1][0] != sender:
                passed.append((sender, []))
            passed[-1][1].append((call_id, item))
            if isinstance(item, StreamEnd | Failure):
                self._detached_open -= 1
        for sender, answers in passed:
            self.send(sender, _Answers(_packed(answers)))
        if not self._detached_open:
            return
        soonest, longest = _PASS_ON_SECONDS
        self._look_after = soonest if passed else min(max(2 * self._look_after, soonest), longest)
        look_at = time.monotonic() + self._look_after
        if look_at < self._wakeup_at:  # none asked for comes as soon: another is
            self._wakeup_at = look_at
            self.wakeupAfter(datetime.timedelta(seconds=self._look_after))


def _exit_now(signal_number: int, frame: Any) -> None:
    """SIGTERM from the run's stop: write out this process's log and exit, whatever it was doing."""
    flush_logs()
    os._exit(0)


def _exit_with_driver(driver_pid: int) -> None:
    """End this actor, its admin and the admin's other children (the logger, other actors) once the driver is gone."""
    while True:
        time.sleep(_DRIVER_POLL_SECONDS)
        try:
            # A driver killed while its parent does not reap it (one reading its output to the end first) is a
            # zombie: gone for this purpose, and its processes must go too, or that parent waits for ever.
            if psutil.Process(driver_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
    admin_pid = os.getppid()
    if admin_pid not in (driver_pid, 1):
        with contextlib.suppress(psutil.Error):
            admin = psutil.Process(admin_pid)
            for process in [admin, *(child for child in admin.children() if child.pid != os.getpid())]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
    flush_logs()  # what this actor logged since its last handled message: a resumed run may answer from it
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
        transport._check_not_stopped(ref)
        call_id = transport._open_call()
        self._calls[call_id] = ref
        transport._busy[call_id] = ref.pid
        transport._send(ref, call_id, _Request(call_id, _packed(request), streamed=True))

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
                self._transport._busy.pop(answer.call_id, None)
                self._end(answer.call_id)
            if isinstance(answer.value, Failure | _Died):
                return ref, CallFailed(answer.value.error())
            if not isinstance(answer.value, StreamEnd):
                return ref, answer.value
        return None

    def _end(self, call_id: int) -> None:
        del self._calls[call_id]
        self._transport._forget_call(call_id)

    def close(self) -> None:
        for call_id in list(self._calls):
            self._end(call_id)  # given up on before its end (Ctrl-C, a failed step): it stays in `_busy`
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

    An admin that stops routing is replaced with its whole actor system (see
    the module's docstring): `transport.restarted` in the run log says when
    and why, and each actor's crash names the restart as its cause.
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
        self._output_path = output_path
        self._system_number = 1  # which actor system of the run is the current one
        self._system = self._start_system()
        self._refs: dict[str, ActorRef] = {}
        self._lock = threading.RLock()
        self._call_ids = itertools.count(1)
        self._waiting: dict[int, collections.deque[_Answer]] = {}
        self._kept: set[int] = set()  # calls with answers in `_waiting`: looked up without scanning every call
        self._admin: psutil.Process | None = None  # the parent of every actor process
        self._system_processes: dict[int, psutil.Process] = {}  # the current system's admin, logger and actors
        self._actor_pids: set[int] = set()  # which of those are actors
        self._lost_an_actor = False
        self._busy: dict[int, int | None] = {}  # streamed calls not seen to end, by id: their actors' pids
        self._lost_with_system: dict[tuple[int, int], str] = {}  # (system, pid) ended by its system's restart: why
        self._last_heard = time.monotonic()  # when the endpoint last took a message
        self._probe_waited: float | None = None  # listened for the admin's status since asking; None: not asking
        self._report: Callable[..., object] = lambda event, **fields: None

    def _start_system(self) -> ActorSystem:
        """A new actor system. An admin that does not answer within Thespian's 5 s is killed with what it
        started, and one more is tried: a driver forked while its heap was bad (seen once, after dozens of
        runs in one process) left an admin that never answered, and Thespian raised its own error."""
        failure: InvalidActorAddress | None = None
        for _ in range(_START_TRIES):
            before = {child.pid for child in _forked_children()}
            try:
                with _standard_streams_to(self._output_path):
                    return ActorSystem(SYSTEM_BASE, transientUnique=True)
            except InvalidActorAddress as error:  # Thespian's word for an admin that did not answer
                failure = error
                _end([child for child in _forked_children() if child.pid not in before], psutil.Process.kill, 5.0)
        raise TransportStartError(
            f"Thespian's admin did not start ({failure}), {_START_TRIES} times; its output is in {self._output_path}"
        ) from failure

    def report_to(self, log: Callable[..., object]) -> None:
        """`transport.restarted` goes to the run log through `log`."""
        self._report = log

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        with self._lock:
            if name in self._refs:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            if self._lost_an_actor:
                self._check_admin(wait=True)
            try:
                actor = self._system.createActor(ThespianShell)
            except ActorSystemFailure:  # Thespian gave up on its admin (after 50 s): a stuck admin's sign
                self._check_admin(wait=True)
                actor = self._system.createActor(ThespianShell)
            address = _Address(self._system_number, actor)
            call_id = self._open_call()
            starting = ActorRef(name, address)
            self._send(starting, call_id, _Start(call_id, factory, os.getpid()))
            try:
                pid, parent = self._await(starting, call_id, timeout)
                process = self._system_processes[pid] = psutil.Process(pid)
                self._actor_pids.add(pid)
                if self._admin is None:
                    self._admin = psutil.Process(parent)
                    self._system_processes.update(  # its logger too: a child of the admin from the start
                        (other.pid, other) for other in [self._admin, *self._admin.children()] if other.pid != pid
                    )
            except BaseException:
                self._send(starting, None, ActorExitRequest())
                raise
            ref = self._refs[name] = ActorRef(name, attrs.evolve(address, process=process), pid)
            return ref

    def _check_not_stopped(self, ref: ActorRef) -> None:
        if self._refs.get(ref.name) is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")

    def _send(self, ref: ActorRef, call_id: int | None, message: Any) -> None:
        """Tell `ref`'s actor `message`; to an actor of a restarted system nothing is sent, and its call ends dead.

        A message Thespian cannot hand to its admin is a stuck admin's sign:
        the system is checked and restarted, or the error raised.
        """
        address: _Address = ref.address
        if address.system == self._system_number:
            try:
                self._system.tell(address.actor, message)
                return
            except ActorSystemFailure:
                self._check_admin(wait=True)
                if address.system == self._system_number:
                    raise
        if call_id is not None:
            self._keep(_Answer(call_id, _Died(self._death(ref))))

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
        if (kept_for := self._kept_for(calls)) is not None:
            return self._pop(kept_for)
        now = time.monotonic()
        deadline, next_look = now + timeout, now + _FIRST_LOOK_SECONDS
        while (now := time.monotonic()) < deadline:
            call_id = self._listen(max(0.0, min(deadline, next_look) - now))
            if call_id in calls:
                return self._pop(call_id)
            if call_id is not None and (kept_for := self._kept_for(calls)) is not None:  # one of several taken
                return self._pop(kept_for)
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + _LIVENESS_POLL_SECONDS
                self._look_after(calls)  # may keep a `_Died` answer, or the answers it took while it asked the admin
                if (kept_for := self._kept_for(calls)) is not None:
                    return self._pop(kept_for)
        return None

    def _kept_for(self, calls: dict[int, ActorRef]) -> int | None:
        """One of `calls` with an answer kept for it; only calls with answers are looked at, not every call."""
        return next((call_id for call_id in self._kept if call_id in calls), None)

    def _keep(self, answer: _Answer) -> None:
        self._waiting[answer.call_id].append(answer)
        self._kept.add(answer.call_id)

    def _pop(self, call_id: int) -> _Answer:
        kept = self._waiting[call_id]
        if len(kept) == 1:
            self._kept.discard(call_id)
        return kept.popleft()

    def _listen(self, timeout: float) -> int | None:
        """Take the next message within `timeout`: an answer is kept for its call, whose id is returned (of a
        message with several, the last kept).

        An answer to a call given up on is dropped; the admin's status
        answers its probe. Only time spent listening counts against a probe:
        its answer may wait in the driver's queue while no one listens.
        """
        started = time.monotonic()
        message = self._system.listen(timeout)
        if self._probe_waited is not None:
            self._probe_waited += time.monotonic() - started
        if message is None:
            return None
        self._last_heard = time.monotonic()
        if isinstance(message, _Answer):
            if message.call_id in self._waiting:
                self._keep(_Answer(message.call_id, pickle.loads(message.value)))
                return message.call_id
        elif isinstance(message, _Answers):
            kept = None
            for call_id, value in pickle.loads(message.values):
                if call_id in self._waiting:
                    self._keep(_Answer(call_id, value))
                    kept = call_id
            return kept
        elif isinstance(message, Thespian_SystemStatus):
            self._probe_waited = None
        return None

    def _look_after(self, calls: dict[int, ActorRef]) -> None:
        """Run while waiting: a dead actor's calls end with `_Died`; a dead or stuck admin has its system restarted.

        The admin is asked whether it still routes after each death, and
        after a second without a message.
        """
        if self._admin is not None and not _running(self._admin):
            self._restart_system(f"its admin (process {self._admin.pid}) is gone")
        for call_id, ref in calls.items():
            if call_id not in self._kept and not self._alive(ref):
                self._keep(_Answer(call_id, _Died(self._death(ref))))
                if ref.address.system == self._system_number:
                    self._lost_an_actor = True
                    self._check_admin(wait=True)
        self._check_admin(wait=False)

    def _check_admin(self, *, wait: bool) -> None:
        """Ask the admin whether it still routes; restart the system once it has not answered for too long.

        `wait`: ask now and wait for the answer (after a death, before a
        spawn); otherwise ask after a quiet second and look again later.
        """
        if self._probe_waited is None and (wait or time.monotonic() - self._last_heard >= _PROBE_AFTER_SECONDS):
            self._probe_waited = 0.0
            try:
                self._system.tell(_admin_address(self._system), Thespian_StatusReq())
            except ActorSystemFailure:
                self._restart_system("its admin refused a message")
                return
        if wait:
            while self._probe_waited is not None and self._probe_waited < _PROBE_TIMEOUT_SECONDS:
                self._listen(_PROBE_TIMEOUT_SECONDS - self._probe_waited)
        if self._probe_waited is not None and self._probe_waited >= _PROBE_TIMEOUT_SECONDS:
            self._restart_system(f"its admin did not answer within {_PROBE_TIMEOUT_SECONDS:g} s")

    def _restart_system(self, why: str) -> None:
        """Replace the actor system by a new one; its actors are dead to the runtime, which restarts them.

        Every process of the old system is killed (by pid), so that no old
        actor answers for ever or holds the run's output open.
        """
        started = time.monotonic()
        lost = [pid for pid in self._actor_pids if _running(self._system_processes[pid])]
        self._lost_with_system.update(((self._system_number, pid), why) for pid in lost)
        self._end_system_processes()
        _abandon(self._system)
        self._system_number += 1
        self._system = self._start_system()
        self._admin, self._system_processes, self._actor_pids = None, {}, set()
        self._lost_an_actor, self._probe_waited, self._last_heard = False, None, time.monotonic()
        self._report(
            "transport.restarted", transport=self.name, reason=why, actors_lost=len(lost),
            restart_s=round(time.monotonic() - started, 3),
        )

    def _alive(self, ref: ActorRef) -> bool:
        """False once the actor's process is gone; an actor still starting (no pid yet) counts as alive."""
        address: _Address = ref.address
        if address.system != self._system_number:
            return False
        return address.process is None or _running(address.process)

    def _death(self, ref: ActorRef) -> str:
        why = self._lost_with_system.get((ref.address.system, ref.pid)) if ref.pid is not None else None
        if why is not None:
            return f"actor {ref.name!r} was lost with its Thespian actor system, restarted because {why}"
        if ref.pid is None:
            return f"actor {ref.name!r} was lost with its Thespian actor system while it started"
        return f"actor {ref.name!r} died (process {ref.pid} is gone)"

    def _await(self, ref: ActorRef, call_id: int, timeout: float) -> Any:
        try:
            answer = self._next_answer({call_id: ref}, timeout)
        finally:
            self._forget_call(call_id)
        if answer is None:
            raise AskTimeoutError(f"actor {ref.name!r} did not answer within {timeout} s")
        if isinstance(answer.value, _Died | Failure):
            raise answer.value.error()
        return answer.value

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        with self._lock:
            self._check_not_stopped(to)
            call_id = self._open_call()
            try:
                self._send(to, call_id, _Request(call_id, _packed(request), streamed=False))
            except BaseException:
                self._forget_call(call_id)
                raise
            return self._await(to, call_id, timeout)

    def open_calls(self) -> Calls:
        """Holds the driver's endpoint until closed; the same thread may still ask and spawn meanwhile."""
        return _ThespianCalls(self)

    def stop(self, ref: ActorRef) -> None:
        with self._lock:
            if self._refs.get(ref.name) is ref:
                # Its ref keeps its process: a call still open to it must see it die, not wait for ever.
                del self._refs[ref.name]
                self._send(ref, None, ActorExitRequest())

    def shutdown(self) -> None:
        """Shut the admin down; after a lost actor, end its processes ourselves.

        An admin that lost a child to SIGKILL mid-message was seen to wait out its
        own shutdown (10 s) and then live on, holding the driver's output open.
        """
        with self._lock:
            busy = self._end_busy_actors()
            if not (self._lost_an_actor or busy):
                self._system.shutdown()
            self._end_system_processes()
            self._refs.clear()

    def _end_busy_actors(self) -> bool:
        """SIGTERM the actors of calls not seen to end (given up on, or still going): each writes out its log
        and exits at once.

        Thespian's own shutdown waits for an actor to finish what it is doing (a model call and its retries
        may take minutes) and gives up after 10 s; a stop must not wait for either. Whether there were any.
        """
        ours = self._current_processes()
        busy = [ours[pid] for pid in set(self._busy.values()) if pid in ours and _running(ours[pid])]
        self._busy.clear()
        _end(busy, psutil.Process.terminate, _BUSY_EXIT_SECONDS)
        return bool(busy)

    def _end_system_processes(self) -> None:
        """Kill what is left of the current system (its admin, logger and actors): by pid, never by name."""
        _end(self._current_processes().values(), psutil.Process.kill, 5.0)

    def _current_processes(self) -> dict[int, psutil.Process]:
        """The current system's processes by pid: those it started with, and the admin's children now."""
        found = dict(self._system_processes)
        with contextlib.suppress(psutil.Error):
            if self._admin is not None and _running(self._admin):
                found.update((child.pid, child) for child in self._admin.children(recursive=True))
        return found


def _end(processes: Iterable[psutil.Process], signal_them: Callable[[psutil.Process], None], wait_s: float) -> None:
    """Signal each of `processes`, then wait at most `wait_s` for them all to be gone."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            signal_them(process)
    # Not psutil.wait_procs: it waits for processes that are not our children to be reaped (2 s seen here).
    deadline = time.monotonic() + wait_s
    while any(_running(process) for process in processes) and time.monotonic() < deadline:
        time.sleep(0.005)


def _forked_children() -> list[psutil.Process]:
    """This process's descendants that are forks of it (same command line), as Thespian's admin and its
    children are: not a subprocess the program started."""
    me = psutil.Process()
    with contextlib.suppress(psutil.Error):
        command = me.cmdline()
        found = []
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.cmdline() == command:
                    found.append(child)
        return found
    return []


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _admin_address(system: ActorSystem) -> ActorAddress:
    """The admin's address, to ask it for its status. Thespian 4.0.1 internals (the pin in setup.cfg)."""
    return system._systemBase.adminAddr


def _abandon(system: ActorSystem) -> None:
    """Let the driver exit although it gives up a system whose admin is gone. Thespian 4.0.1 internals.

    The driver's writer thread for the admin's queue may wait for ever on the
    lock a killed process held, and Python joins that thread at exit unless
    told not to; the thread that reads the driver's own queue is stopped.
    """
    transport = system._systemBase.transport
    for name in ("_adminQ", "_myInputQ"):
        getattr(transport, name).cancel_join_thread()
    core = transport._QCore
    core._full_close = True
    core.abort_core_run()


transport_class = ThespianTransport
