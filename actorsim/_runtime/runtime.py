"""A run: one transport, its timeouts, and every actor started on it, under one supervisor.

`Runtime` is the driver's front end to its actors: it spawns, asks and stops
them through the supervisor, which restarts what dies. What a run also needs
lives beside it: the supervised stream of a step's calls (`stream`), the
driver's run log (`driver_log`), the supervisor (`supervisor`), the
interventions that hook into the run (`interventions`), and the process's
current run (`current`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import attrs
import orjson

from actorsim._core.budget import Budget, budget_from
from actorsim._core.ids import new_id
from actorsim._core.options import RunOptions
from actorsim._core.placement import Placement, placement_from
from actorsim._core.ref import ActorRef
from actorsim._core.supervision import Durable, Supervision
from actorsim._errors import ActorDiedError, ComponentFailedError
from actorsim._runlog import FlushSpans, LoggedBehaviour, RunLogConfig
from actorsim._runtime.driver_log import DriverLog
from actorsim._runtime.interventions import Intervention, Interventions, installed_handlers
from actorsim._runtime.limits import Limits
from actorsim._runtime.spending import ModelTraffic, Spending
from actorsim._runtime.stream import supervised_stream
from actorsim._runtime.supervisor import Supervisor
from actorsim.llm._openai import forget_refusals
from actorsim.transport import BehaviourFactory, Transport
from actorsim.transport._host import Hosted
from actorsim.transport._hosted import HostedTransport

SEND_SPANS_TIMEOUT_S = 5.0
"""How long a run's end waits for its processes to send their spans (live export)."""
SLOW_START_CALLS = 16
"""Hosted agents' calls a server whose limit is not given takes at first; twice as many each round it answers."""

T = TypeVar("T")


def new_run_id() -> str:
    """A run's id: when it started, then random hex, so that ids sort by time and never collide."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


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
        self._inputs: collections.Counter[str] = collections.Counter()  # reads of each recorded input so far
        self._owed: dict[str, Any] = {}  # by actor: a request to deliver before any other (see `owe`)
        self._closed = False
        self.driver_log = DriverLog(transport, options, run_id)
        self.supervisor = Supervisor(transport, timeout=options.ask_timeout, log=self.log)
        # Hosted calls that a server throttles wait on their hosts, out of the driver's reach: a server whose
        # limit is not given is not sent a whole swarm at once, but more calls each round (`ServerLimiter`).
        self.limits = Limits(slow_start=SLOW_START_CALLS if self.hosts_agents else None)
        """One limiter per model server, for every agent of the run (see `actorsim._runtime.limits`)."""
        self.spending = Spending(options.budget)
        """What the run's model calls have spent, against `budget`."""
        transport.report_to(self.log)
        self.driver_log.started(transport.name, **{"replay_of": None, **self.interventions.run_started()})

    @property
    def log_config(self) -> RunLogConfig | None:
        """Where the run logs (None: it does not), as its actors' processes are told."""
        return self.driver_log.config

    def log(self, event: str, *, flush: bool = True, **fields: Any) -> str | None:
        """Record a driver-side event in this run's log; where it is (`path:line`), or None without a log.

        `flush=False` leaves the write to the next event that flushes: one write a step, not two.
        """
        return self.driver_log.event(event, flush=flush, **fields)

    def model_traffic(self) -> ModelTraffic:
        """The run's model calls now: in flight, waiting for a permit, tokens and cost so far (a progress line)."""
        servers = self.limits.servers()
        return ModelTraffic(
            in_flight=sum(len(server.in_flight) for server in servers), waiting=self.limits.waiting(),
            tokens=self.spending.tokens, cost=self.spending.cost,
        )

    @property
    def budget(self) -> Budget | None:
        """What the run's model calls may spend (`init(budget=...)`); set it to raise or lift it and go on."""
        return self.spending.budget

    @budget.setter
    def budget(self, budget: Budget | Mapping[str, Any] | None) -> None:
        self.spending.budget = budget_from(budget)
        given = self.spending.budget
        self.log("budget.set", budget=attrs.asdict(given) if given is not None else None,
                 spent_tokens=self.spending.tokens, spent_cost=self.spending.cost)

    @property
    def transport_name(self) -> str:
        """The name of the run's transport: "inline", "local", "thespian" or "ray"."""
        return self.transport.name

    def new_id(self) -> str:
        """The id of a message the driver makes (an intervention may choose it: a replay reuses the recorded ones)."""
        return self.interventions.new_id() or new_id()

    def recorded(self, name: str, read: Callable[[], T]) -> T:
        """`read()`, logged as the program's input `name` (`input.recorded`); what the recording holds instead,
        in a replay or a resume. See `actorsim.recorded`."""
        index = self._inputs[name]
        self._inputs[name] += 1
        given = self.interventions.recorded_input(name, index)
        value = given.value if given is not None else read()
        try:
            as_json = orjson.dumps(value)
        except TypeError as error:
            raise TypeError(f"recorded input {name!r} must be JSON (str, number, bool, None, list, dict): {error}") \
                from None
        self.log("input.recorded", input=name, index=index, value=value)
        read_back: T = orjson.loads(as_json)  # as a replay gives it back: a tuple comes back a list, live as replayed
        return read_back

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
            factory = Hosted(factory, log=self.log_config)
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

    def host_of(self, name: str) -> int | None:
        """Which host holds agent `name` (None: none does, it is an actor of its own)."""
        return self.transport.host_of(name) if isinstance(self.transport, HostedTransport) else None

    @property
    def has_actors(self) -> bool:
        """Whether any actor of the run is running (an implicit run without any can be replaced)."""
        return bool(self._actors)

    def stop(self, ref: ActorRef) -> None:
        """Stop one actor and its supervision; later requests to it raise `ActorStoppedError`."""
        self._send_spans([ref.name])
        if ref.name in self._actors:
            self._actors.remove(ref.name)
        self._owed.pop(ref.name, None)
        self.limits.forget(ref.name)
        self.transport.stop(self.supervisor.forget(ref.name) or ref)
        self.log("actor.stopped", actor=ref.name)

    def actor(self, name: str) -> ActorRef:
        """The live ref of the actor `name`; raises `ActorStoppedError`, or its failure once given up on."""
        return self.supervisor.current(name)

    def ask(self, ref: ActorRef, request: Any, *, redeliver: Callable[[ActorDiedError], bool] | None = None) -> Any:
        """Ask the actor that now bears `ref`'s name; one whose process died is restarted and asked again.

        `redeliver(died)`, when given, is asked once the dead actor is restarted:
        False raises `died` instead of asking again (a request that must not
        run twice). A `Durable` request that succeeds is journaled, to be
        replayed into a successor. A request owed to the actor (`owe`) reaches it first.
        """
        if self._owed:
            self.settle(ref.name)
        while True:
            current = self.supervisor.current(ref.name)
            try:
                answer = self.transport.ask(current, request, timeout=self.options.ask_timeout)
            except ActorDiedError as died:
                self.supervisor.crashed(current, died)
                if redeliver is not None and not redeliver(died):
                    raise
                continue
            if isinstance(request, Durable):
                self.supervisor.journal(ref.name, request)
            return answer

    def owe(self, name: str, request: Any) -> None:
        """`request` must reach actor `name` before anything else is asked of it (`settle`).

        How a step that was dropped while an agent still ran it is undone: the agent's memory is set back
        by the request once the agent is free, and whatever reads the memory next (a view, the next step)
        reads it set back. A later `owe` for the same actor replaces the earlier one.
        """
        self._owed[name] = request

    def settle(self, name: str) -> None:
        """Deliver the request owed to actor `name`, if any; one that fails is owed no more (its actor failed)."""
        request = self._owed.pop(name, None)
        if request is not None:
            self.ask(self.supervisor.current(name), request)

    def ask_many(self, asks: Sequence[tuple[ActorRef, Any]]) -> list[Any]:
        """Ask several actors together (hosted agents: one request per host), as `ask` does each.

        Answers come in order, with the exception an ask raised in its answer's
        place; an actor found dead is restarted and asked again.
        """
        answers: list[Any] = [None] * len(asks)
        current: dict[int, tuple[ActorRef, Any]] = {}
        for index, (ref, request) in enumerate(asks):
            try:
                if self._owed:
                    self.settle(ref.name)
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
        arrivals: collections.deque[tuple[ActorRef, Any]] | None = None,
        held_back: Callable[[], float | None] = lambda: None,
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
        the caller sends on what it gathered from the items before. A request
        owed to an actor (`owe`) reaches it before its call, as in `ask`.
        Calls held back (for a permit of `limits`) are put into `arrivals` by
        the caller once let go; `held_back()` says when to look again (see
        `Limits.next_due`), and the stream lasts while any are.
        """
        if self._owed:
            for ref, _ in calls:
                self.settle(ref.name)
        return supervised_stream(
            self.transport, self.supervisor, self.interventions, calls, timeout=self.options.step_timeout,
            final=final, context=context, follow_ups=follow_ups if follow_ups is not None else collections.deque(),
            on_idle=on_idle, arrivals=arrivals, held_back=held_back,
        )

    def stop_all(self) -> None:
        """Stop every actor of the run, keeping the system up for new ones."""
        while self._actors:
            name = self._actors.pop()
            self.limits.forget(name)
            ref = self.supervisor.forget(name)
            if ref is not None:
                self.transport.stop(ref)
                self.log("actor.stopped", actor=name)

    def shutdown(self) -> None:
        """Stop every actor and the transport, and close the run log; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._send_spans(self._actors)
        self._actors.clear()
        self.transport.shutdown()
        forget_refusals()
        self.driver_log.close()

    def _send_spans(self, names: Iterable[str]) -> None:
        """Live export: the actors' processes send the spans they hold before they are stopped (one killed
        outright loses those of its last `SEND_EVERY_MS`); a process that does not answer is not waited for."""
        config = self.log_config
        if config is None or config.otel is None:
            return
        refs = []
        for name in names:
            with contextlib.suppress(Exception):  # stopped or given up on: nothing to send
                refs.append(self.supervisor.current(name))
        with contextlib.suppress(Exception):
            self.transport.ask_many([(ref, FlushSpans()) for ref in refs], timeout=SEND_SPANS_TIMEOUT_S)

    @property
    def closed(self) -> bool:
        """Whether the run was shut down."""
        return self._closed

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
