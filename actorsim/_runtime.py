"""A run: one transport, its timeouts, and every actor started on it."""

from __future__ import annotations

import atexit
import collections
import functools
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from actorsim._errors import ActorDiedError, AskTimeoutError, ComponentFailedError
from actorsim._hosting import Hosted, HostedTransport
from actorsim._ids import new_id
from actorsim._intervention import Intervention, Interventions, installed_handlers
from actorsim._placement import Placement, placement_from
from actorsim._runlog import LoggedBehaviour, RunLogConfig, close_run_log, open_run_log
from actorsim._supervision import Durable, Supervision, Supervisor
from actorsim._validators import positive
from actorsim.transport import TRANSPORTS, ActorRef, BehaviourFactory, CallFailed, Transport, load_transport_class

if TYPE_CHECKING:
    from actorsim._replay import Replay

TRANSPORT_VARIABLE = "ACTORSIM_TRANSPORT"


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Made absolute at once, before a transport starts: joining a Ray cluster may change the working dir."""
    return Path(path).absolute()


@attrs.frozen
class RunOptions:
    """How long to wait: `ask_timeout` for one answer, `step_timeout` for the next frame of a step.

    Also what a backend builds itself from (`Transport.from_options`): `address`
    is the Ray cluster to join, `placement` where Ray actors run unless their
    component says, `log_dir` holds Thespian's output.
    """

    ask_timeout: float = attrs.field(default=60.0, validator=positive)
    step_timeout: float = attrs.field(default=600.0, validator=positive)
    log_dir: Path | None = attrs.field(default=Path("logs"), converter=attrs.converters.optional(_absolute))
    console_log: bool = False
    address: str | None = None
    placement: Placement | None = attrs.field(default=None, converter=placement_from)


def _cwd() -> str:
    """The working dir; a `ray job submit` driver's is deleted under it once it joins the cluster."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return f"{os.environ.get('PWD', '?')} (deleted)"


def _version() -> str:
    from actorsim import __version__

    return __version__


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@attrs.frozen
class Redelivered:
    """A streamed call's actor crashed and was restarted; its request is on its way again."""

    cause: BaseException


class Runtime:
    """The actor system of one run; a context manager that shuts it down."""

    def __init__(
        self,
        transport: Transport,
        options: RunOptions,
        run_id: str,
        interventions: Sequence[Intervention] = (),
    ) -> None:
        self.transport = transport
        self.options = options
        self.run_id = run_id
        self.interventions = Interventions([*installed_handlers(), *interventions])
        self.implicit = False  # started by `current_runtime`, not by the user's `init`
        self._actors: list[str] = []
        self._closed = False
        self.log_config = None
        if options.log_dir is not None:
            self.log_config = RunLogConfig(run_id, options.log_dir / run_id, options.console_log)
            self.log_config = attrs.evolve(self.log_config, sink=transport.log_sink(self.log_config))
        self._log = None if self.log_config is None else open_run_log(self.log_config, process="driver")
        self.supervisor = Supervisor(transport, timeout=options.ask_timeout, log=self.log)
        transport.report_to(self.log)
        self.log(
            "run.started",
            transport=transport.name,
            argv=sys.argv,
            cwd=_cwd(),
            python=sys.version.split()[0],
            actorsim=_version(),
            **{"replay_of": None, **self.interventions.run_started()},
        )

    def log(self, event: str, *, flush: bool = True, **fields: Any) -> str | None:
        """Record a driver-side event in this run's log; where it is (`path:line`), or None without a log.

        `flush=False` leaves the write to the next event that flushes: one write a step, not two.
        """
        if self._log is None:
            return None
        line = self._log.event(event, **fields)
        if flush:
            self._log.flush()
        return line

    @property
    def transport_name(self) -> str:
        """The name of the run's transport: "inline", "local", "thespian" or "ray"."""
        return self.transport.name

    def new_id(self) -> str:
        """The id of a message the driver makes (an intervention may choose it: a replay reuses the recorded ones)."""
        return self.interventions.new_id() or new_id()

    def failure(self, name: str) -> ComponentFailedError | None:
        """Why the supervisor gave up on `name`, once it did."""
        return self.supervisor.failure(name)

    def keep_snapshot(self, name: str, key: str, request: Callable[[], Any]) -> None:
        """After a restart of `name`, `request()` is sent to it to restore part of its state."""
        self.supervisor.keep_snapshot(name, key, request)

    def join_group(self, group: str, names: Sequence[str]) -> None:
        """Siblings that a `one_for_all` policy restarts together."""
        self.supervisor.join_group(group, names)

    def compact_with(self, name: str, request: Any) -> None:
        """`name`'s journal grows with the run: now and then `request` asks it for a snapshot to replace it."""
        self.supervisor.compact_with(name, request)

    def replay_with(self, name: str, make: Callable[[tuple[Any, ...]], Any]) -> None:
        """`name` takes its journal in one request, `make(journal)`, when restarted."""
        self.supervisor.replay_with(name, make)

    def restart_deferred(self) -> None:
        """Restart the siblings a `one_for_all` crash left owed a restart: between steps."""
        self.supervisor.restart_deferred()

    def spawn(
        self,
        factory: BehaviourFactory,
        *,
        name: str,
        supervision: Supervision | None = None,
        failure_type: type[ComponentFailedError] = ComponentFailedError,
        placement: Placement | str | None = None,
        hosted: bool = False,
    ) -> ActorRef:
        """Start an actor under the run's supervisor.

        `placement` (Ray only) overrides the run's for it; `hosted`: in a host actor, when the run has hosts.
        """
        chosen = self.check_placement(placement)
        if self.log_config is not None:
            factory = functools.partial(LoggedBehaviour, self.log_config, name, factory)
        if hosted and isinstance(self.transport, HostedTransport):
            factory = Hosted(factory)
        ref = self.supervisor.spawn(factory, name, supervision or Supervision(), failure_type, placement=chosen)
        self._actors.append(name)
        return ref

    def check_placement(self, placement: Placement | str | None) -> Placement | None:
        """`placement` parsed; raises ValueError for a bad one, or for any on a transport that does not place."""
        chosen = placement_from(placement)
        if chosen is not None and not self.transport.takes_placement:
            raise ValueError(f"placement= is for the 'ray' transport, not {self.transport_name!r}")
        return chosen

    @property
    def hosts_agents(self) -> bool:
        """Whether agents are hosted many to a host actor (`init(hosts=N)`): started in batches, described lazily."""
        return isinstance(self.transport, HostedTransport)

    @property
    def has_actors(self) -> bool:
        """Whether any actor of the run is running (an implicit run without any can be replaced)."""
        return bool(self._actors)

    def stop(self, ref: ActorRef) -> None:
        """Stop one actor and its supervision; later requests to it raise `ActorStoppedError`."""
        if ref.name in self._actors:
            self._actors.remove(ref.name)
        self.transport.stop(self.supervisor.forget(ref.name) or ref)
        self.log("actor.stopped", actor=ref.name)

    def ask(self, ref: ActorRef, request: Any) -> Any:
        """Ask the actor that now bears `ref`'s name; one whose process died is restarted first.

        A `Durable` request that succeeds is journaled, to be replayed into a successor.
        """
        while True:
            current = self.supervisor.current(ref.name)
            try:
                answer = self.transport.ask(current, request, timeout=self.options.ask_timeout)
            except ActorDiedError as died:
                self.supervisor.crashed(current, died)
                continue
            if isinstance(request, Durable):
                self.supervisor.journal(ref.name, request)
            return answer

    def ask_many(self, asks: Sequence[tuple[ActorRef, Any]]) -> list[Any]:
        """Ask several actors together (hosted agents: one request per host), as `ask` does each.

        Answers come in order, with the exception an ask raised in its answer's
        place; an actor found dead is restarted and asked again.
        """
        answers: list[Any] = [None] * len(asks)
        current: dict[int, tuple[ActorRef, Any]] = {}
        for index, (ref, request) in enumerate(asks):
            try:
                current[index] = (self.supervisor.current(ref.name), request)
            except Exception as error:  # noqa: BLE001 - stopped, or given up on: its answer
                answers[index] = error
        asked = self.transport.ask_many(list(current.values()), timeout=self.options.ask_timeout)
        for index, answer in zip(current, asked, strict=True):
            ref, request = current[index]
            answers[index] = answer
            if isinstance(answer, ActorDiedError):
                try:
                    self.supervisor.crashed(ref, answer)
                    answers[index] = self.ask(ref, request)
                except Exception as error:  # noqa: BLE001 - its answer, as for the others
                    answers[index] = error
            elif isinstance(request, Durable) and not isinstance(answer, BaseException):
                self.supervisor.journal(ref.name, request)
        return answers

    def stream(
        self,
        calls: Sequence[tuple[ActorRef, Any]],
        *,
        final: Callable[[Any], bool],
        context: Callable[[Any], Mapping[str, Any]] = lambda request: {},
        follow_ups: collections.deque[tuple[str, Any]] | None = None,
        on_idle: Callable[[], None] = lambda: None,
    ) -> Iterator[tuple[str, Any]]:
        """Stream `calls` as the transport does, under the supervisor: yields `(actor name, item)`.

        An actor that crashes mid-call is restarted as soon as its crash is
        seen, after its backoff, while the other calls go on streaming, and
        gets its request again (a `Redelivered` item says so) unless its
        `final` item already arrived. Past its budget the call ends with
        `CallFailed` carrying the supervisor's `ComponentFailedError`.
        `context(request)` says in the log what a crashed call was doing.
        A request the caller puts into `follow_ups` while it handles an item
        (`(actor name, request)`: a step resumed with a tool's answer) is sent
        into the stream at once; a crash after it delivers the first request again.
        `on_idle()` is called whenever the stream is about to wait for items:
        the caller sends on what it gathered from the items before.
        """
        follow_ups = follow_ups if follow_ups is not None else collections.deque()
        timeout = self.options.step_timeout
        requests = {ref.name: request for ref, request in calls}
        attempts: collections.Counter[str] = collections.Counter()
        finished: set[str] = set()  # calls whose final item arrived
        crashed: collections.deque[tuple[str, ActorRef, BaseException]] = collections.deque()
        due: dict[str, tuple[float, BaseException]] = {}  # restarts waiting out their backoff
        with self.transport.open_calls() as open_calls:

            def deliver(name: str) -> None:
                attempts[name] += 1
                current = self.supervisor.current(name)
                fault = self.interventions.before_delivery(name, requests[name], attempts[name])
                if fault is not None:
                    crashed.append((name, current, fault))
                else:
                    open_calls.add(current, requests[name])

            for name in requests:
                deliver(name)
            last_item = time.monotonic()
            while open_calls.open or crashed or due or follow_ups:
                while follow_ups:
                    name, request = follow_ups.popleft()
                    open_calls.add(self.supervisor.current(name), request)
                while crashed:
                    name, ref, error = crashed.popleft()
                    try:
                        delay = self.supervisor.note_crash(ref, error, **context(requests[name]))
                    except ComponentFailedError as failure:
                        yield name, CallFailed(failure)
                        continue
                    if delay is not None:
                        due[name] = (time.monotonic() + delay, error)
                    elif name not in finished:  # already restarted (a sibling's restart): deliver again
                        yield name, Redelivered(error)
                        deliver(name)
                for name, (deadline, error) in sorted(due.items(), key=lambda entry: entry[1][0]):
                    if deadline > time.monotonic():
                        break
                    del due[name]
                    try:
                        self.supervisor.restart(name)
                    except ComponentFailedError as failure:
                        yield name, CallFailed(failure)
                        continue
                    if name not in finished:
                        yield name, Redelivered(error)
                        deliver(name)
                if crashed:
                    continue
                next_restart = min((deadline for deadline, _ in due.values()), default=None)
                if not open_calls.ready:
                    on_idle()
                if not open_calls.open:
                    if next_restart is not None:
                        time.sleep(max(0.0, next_restart - time.monotonic()))
                    continue
                wait = timeout - (time.monotonic() - last_item)
                if next_restart is not None:
                    wait = min(wait, next_restart - time.monotonic())
                got = open_calls.next(max(0.0, wait))
                if got is None:
                    if open_calls.open and time.monotonic() - last_item >= timeout:
                        raise AskTimeoutError(f"no item from {sorted(requests)} within {timeout} s")
                    continue
                last_item = time.monotonic()
                ref, item = got
                if isinstance(item, CallFailed):
                    crashed.append((ref.name, ref, item.error))
                    continue
                if final(item):
                    finished.add(ref.name)
                yield ref.name, item

    def stop_all(self) -> None:
        """Stop every actor of the run, keeping the system up for new ones."""
        while self._actors:
            name = self._actors.pop()
            ref = self.supervisor.forget(name)
            if ref is not None:
                self.transport.stop(ref)
                self.log("actor.stopped", actor=name)

    def shutdown(self) -> None:
        """Stop every actor and the transport, and close the run log; calling it again does nothing."""
        global _current
        if self._closed:
            return
        self._closed = True
        self._actors.clear()
        self.transport.shutdown()
        self.log("run.stopped")
        close_run_log(self.run_id)
        if _current is self:
            _current = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        interrupted = isinstance(error, KeyboardInterrupt) or getattr(error, "interrupts_run", False)
        if interrupted and not self._closed:
            # Marks the log as ended by the user, so a replay stops where the run did.
            self.log("run.interrupted")
        elif isinstance(error, Exception) and not self._closed:
            # How the run ended, so that a replay can tell it ended the same way.
            self.log("run.failed", error=repr(error))
            self.interventions.run_failed(error)
        self.shutdown()


_current: Runtime | None = None


def init(
    transport: str | None = None,
    *,
    address: str | None = None,
    placement: str | None = None,
    ask_timeout: float = 60.0,
    step_timeout: float = 600.0,
    log_dir: str | os.PathLike[str] | None = "logs",
    console_log: bool = False,
    replay: Replay | str | os.PathLike[str] | None = None,
    interventions: Sequence[Intervention] = (),
    hosts: int | None = None,
) -> Runtime:
    """Start the run that `create_component(..., remote=True)` will use.

    Call it first: a component created with `remote=True` before it starts an
    implicit run (see `current_runtime`), which this replaces only while it has
    no actors.

    `transport` is "local", "thespian" or "ray" (default: $ACTORSIM_TRANSPORT,
    else "local"). On "ray", `address` (else $RAY_ADDRESS, as `ray submit` and
    `ray job submit` set it) is the cluster to join, "auto" the one started on
    this machine; with neither, or "local", a private instance is started.
    `placement` says where Ray actors run: "spread" over the live nodes, "pack"
    on the driver's node, "node:<node id>", or "label:<key>=<value>" (default:
    Ray's choice); a component's own `placement=` overrides it. Every process of
    the run logs to `log_dir/<run_id>/` (`log_dir=None`: no run log);
    `console_log=True` also shows the events readably on stderr. `replay`
    (a `Replay`, or a recorded run's folder) answers every model call and
    human input from that recording and checks each message against it;
    `interventions` hook into the run (see `Intervention`). The run is shut
    down by `shutdown()`, by leaving the `with` block, or at interpreter exit.
    `hosts=N` places the run's agents many to a process, on a pool of N host
    actors, instead of one actor each (see `actorsim._hosting`); they start
    in batches, so an agent whose constructor raises raises at its first use.

    Raises `ValueError` for an unknown transport, or a bad placement, or
    `address`/`placement` on a transport other than "ray"; `RuntimeError` when a run
    is already going, `TransportUnavailableError` when its package is missing,
    `ClusterUnreachableError` when no cluster answers at the address.
    """
    global _current
    name = transport or os.environ.get(TRANSPORT_VARIABLE) or "local"
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")
    options = RunOptions(
        ask_timeout=ask_timeout, step_timeout=step_timeout, log_dir=log_dir, console_log=console_log,
        address=address, placement=placement_from(placement),
    )
    backend = load_transport_class(name)
    backend.check_options(options)  # a refused option is named before any run is replaced or refused
    if _current is not None and _current.implicit and not _current.has_actors:
        _current.shutdown()  # nothing runs on it yet: the user's explicit choice wins
    if _current is not None:
        if _current.implicit:
            raise RuntimeError(
                f"actorsim already runs an implicit {_current.transport_name!r} run, started when a component "
                f"was created with remote=True before actorsim.init (transport from ${TRANSPORT_VARIABLE}, "
                "else 'local'), and it has actors; call actorsim.init(...) before creating components, "
                "or actorsim.shutdown() first"
            )
        raise RuntimeError(
            f"actorsim is already initialised with the {_current.transport_name!r} transport; "
            "call actorsim.shutdown() first"
        )
    run_id = new_run_id()
    handlers = [*interventions, *([replay_from(replay)] if replay is not None else [])]
    started: Transport = backend.from_options(options, run_id)
    if hosts is not None:
        started = HostedTransport(started, hosts)
    _current = Runtime(started, options, run_id, handlers)
    atexit.register(_current.shutdown)
    return _current


def replay_from(replay: Replay | str | os.PathLike[str]) -> Replay:
    """A `Replay` as given, or of the run recorded in that folder."""
    from actorsim._replay import Replay

    return replay if isinstance(replay, Replay) else Replay(Path(replay))


def shutdown() -> None:
    """Shut the current run down; nothing it started keeps running."""
    if _current is not None:
        _current.shutdown()


def current_runtime() -> Runtime:
    """The current run; without `actorsim.init`, an implicit one started here.

    The implicit run is what `init()` with no arguments starts: the transport
    from $ACTORSIM_TRANSPORT, else "local", logging to ./logs. A later explicit
    `init` replaces it while it has no actors, and otherwise says why not.
    """
    if _current is not None:
        return _current
    runtime = init()
    runtime.implicit = True
    return runtime
