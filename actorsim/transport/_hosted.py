"""Hosted agents: many agents in one worker process, a pool of host actors instead of one actor each.

`HostedTransport` wraps the run's transport. A factory marked `Hosted` (an
agent spawned by a run started with `init(hosts=N)`) is not given an actor of
its own: it is built inside one of N host actors, the least loaded live one,
and its `ActorRef` names the agent while its address names the host. To the
runtime and its supervisor a hosted agent is an actor like any other: asks
reach it through its host, its crashes are counted and restarted one agent at
a time, its journal and memory snapshot are replayed into its successor. A
host that dies takes its agents down (every call and ask to them fails with
`ActorDiedError`); the supervisor restarts each one on a live host, a new host
taking the dead one's place.

Whatever grows with the swarm goes to a host in batches. New agents travel
together (`AddAgents`, built when the batch is full or the host is next asked
anything), asks to many agents go as one `ToAgents` per host (`ask_many`:
how thousands describe themselves and give their memories to `add_agents`),
and streamed calls to agents of one host travel in `RunBatch` calls of up to
`BATCH_CALLS`, to which the host answers with lists of what its agents
produced (everything ready at that moment): a few messages per host and burst
instead of one per frame. Measured on Thespian's queue base, actor-to-actor
messages top out near 5,000/s (see RUNTIMES.md), so one message per agent and
frame caps a swarm's round there.

Inside a host each agent's streamed call runs on a thread of one pool. Steps
and model clients are synchronous generators (`Agent.step`, `ChatModel`), so
threads run them unchanged, where asyncio would need every model client
rewritten; a model call waiting on the network releases the GIL. Measured here
(benchmarks/swarm_bench.py --slow 100): 100 hosted agents whose model takes
0.2 s finish one step in 0.31 s on 4 hosts. Threads are made only as calls
need them.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from actorsim._core.ref import ActorRef
from actorsim._errors import ActorDiedError, ActorStoppedError
from actorsim.llm._gate import CallGates
from actorsim.transport._base import BehaviourFactory, CallFailed, Calls, Failure, StreamEnd, Transport
from actorsim.transport._host import AddAgents, Hosted, HostFactory, RemoveAgent, RunBatch, ToAgent, ToAgents

if TYPE_CHECKING:
    from actorsim._core.placement import Placement
    from actorsim._runlog import RunLogConfig, Sink

ADD_BATCH = 256
"""Agents gathered for one host before they are sent to it in one request (sooner if it is asked anything)."""
UNSTARTED_BATCHES = 1
"""Batches sent to a host and not yet started there, at most; calls for it meanwhile wait, and go together.

A host starts a batch as soon as it takes it, so this costs a batch the
time its host takes to say so. Without it, a driver letting steps go one
by one (slow start) sent a host a batch each, and on Thespian, whose
queues are bounded (an actor's holds 10 messages) and go through its
admin, a host's queue filled while the host sent its items: the admin
waited to pass it one more, the host to pass the admin its items.
"""
BATCH_CALLS = 64
"""Calls sent to a host in one batch, at most; the rest follow, a batch at a time, as the host starts each.

A step of thousands let go at once (a limit far above need) went to each
host as one batch of its 500 steps: 5 MB to cross Thespian's admin and be
unpacked before the host's first call could start.
"""


@attrs.frozen
class _Placement:
    """The address of a hosted agent: the host slot it lives in, and that host's ref when placed."""

    slot: int
    host: ActorRef


@attrs.define
class _Slot:
    ref: ActorRef | None = None
    agents: set[str] = attrs.Factory(set)
    incarnation: int = 0
    adding: dict[str, BehaviourFactory] = attrs.Factory(dict)  # placed here, not sent to the host yet
    add_timeout: float = 60.0  # the spawn timeout they were placed with


class HostedTransport(Transport):
    """The run's transport, with `Hosted` factories placed on a pool of `hosts` host actors.

    Everything else (the Environment, the Registry, tool services, agents not
    hosted) goes straight to the wrapped transport.
    """

    def __init__(self, inner: Transport, hosts: int) -> None:
        if not isinstance(hosts, int) or hosts < 1:
            raise ValueError(f"hosts must be a positive int, not {hosts!r}")
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.takes_placement = inner.takes_placement  # type: ignore[misc]
        self._slots = [_Slot() for _ in range(hosts)]
        self._placed: dict[str, ActorRef] = {}
        self._lock = threading.RLock()
        self._gates = CallGates()  # the hosts' gates: shared by hosts that share a process (local), else each its own

    @property
    def hosts(self) -> list[ActorRef]:
        """The live host actors."""
        return [slot.ref for slot in self._slots if slot.ref is not None]

    def log_sink(self, config: RunLogConfig) -> Sink | None:
        """The wrapped transport's: hosts log as its actors do."""
        return self.inner.log_sink(config)

    def report_to(self, log: Callable[..., object]) -> None:
        self.inner.report_to(log)

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        """Start `factory` as an actor, or inside the least loaded host when it is `Hosted`.

        A host started for a hosted agent is placed by that agent's `placement`.
        Hosted agents are sent to their host in batches (`ADD_BATCH`, or
        before anything else is sent to it): starting thousands costs a
        round trip per batch, not per agent. A hosted agent whose factory
        raises raises that error at its first request, as Ray's actors do.
        """
        if not isinstance(factory, Hosted):
            return self.inner.spawn(factory, name=name, timeout=timeout, placement=placement)
        with self._lock:
            if name in self._placed:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            index = min(range(len(self._slots)), key=lambda i: len(self._slots[i].agents))
            slot = self._slots[index]
            if slot.ref is None:
                slot.incarnation += 1
                host_name = f"host-{index}.{slot.incarnation}"
                slot.ref = self.inner.spawn(
                    HostFactory(host_name, log=factory.log, process=f"host-{index}", gates=self._gates),
                    name=host_name, timeout=timeout, placement=placement,
                )
            host = slot.ref
            slot.agents.add(name)
            slot.adding[name] = factory.factory
            slot.add_timeout = timeout
            ref = self._placed[name] = ActorRef(name, _Placement(index, host), host.pid)
            if len(slot.adding) >= ADD_BATCH:
                try:
                    self._send_adds(host)
                except ActorDiedError:
                    del self._placed[name]  # not started: its supervisor may start it again, on a new host
                    raise
            return ref

    def _send_adds(self, host: ActorRef) -> None:
        """Send the agents placed on `host` and not sent yet; its requests come after them."""
        with self._lock:
            slot = next((slot for slot in self._slots if slot.ref is host), None)
            if slot is None or not slot.adding:
                return
            adding, slot.adding = slot.adding, {}
            try:
                self.inner.ask(host, AddAgents(tuple(adding.items())), timeout=slot.add_timeout)
            except ActorDiedError:
                self._host_died(host)
                raise

    def _host_died(self, host: ActorRef) -> None:
        """Forget a dead host: its agents are gone with it, and its slot gets a new host on the next spawn."""
        with self._lock:
            for slot in self._slots:
                if slot.ref is host:
                    slot.ref = None
                    slot.agents.clear()
                    slot.adding.clear()
                    self.inner.stop(host)

    def host_of(self, name: str) -> int | None:
        """Which host (its slot, kept across the host's restarts) holds agent `name`; None for an actor of its own."""
        ref = self._placed.get(name)
        return None if ref is None else ref.address.slot

    def _placement(self, ref: ActorRef) -> _Placement:
        if self._placed.get(ref.name) is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")
        placement: _Placement = ref.address
        if self._slots[placement.slot].ref is not placement.host:
            raise ActorDiedError(f"agent {ref.name!r} died with its host {placement.host.name!r}")
        return placement

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        """Ask an actor, or a hosted agent through its host."""
        if not isinstance(to.address, _Placement):
            return self.inner.ask(to, request, timeout=timeout)
        host = self._placement(to).host
        try:
            self._send_adds(host)
            return self.inner.ask(host, ToAgent(to.name, request), timeout=timeout)
        except ActorDiedError as error:
            self._host_died(host)
            raise ActorDiedError(f"agent {to.name!r} died with its host {host.name!r}") from error

    def ask_many(self, asks: Sequence[tuple[ActorRef, Any]], *, timeout: float) -> list[Any]:
        """One request per host for its agents' asks (actors not hosted are asked one by one)."""
        answers: list[Any] = [None] * len(asks)
        actors: list[int] = []
        per_host: dict[ActorRef, list[int]] = {}
        for index, (to, _) in enumerate(asks):
            if not isinstance(to.address, _Placement):
                actors.append(index)
                continue
            try:
                per_host.setdefault(self._placement(to).host, []).append(index)
            except (ActorDiedError, ActorStoppedError) as error:
                answers[index] = error
        for index, answer in zip(actors, self.inner.ask_many([asks[i] for i in actors], timeout=timeout), strict=True):
            answers[index] = answer
        for host, indexes in per_host.items():
            try:
                self._send_adds(host)
                batch = self.inner.ask(host, ToAgents(tuple((asks[i][0].name, asks[i][1]) for i in indexes)),
                                       timeout=timeout)
            except ActorDiedError:
                self._host_died(host)
                for i in indexes:
                    answers[i] = ActorDiedError(f"agent {asks[i][0].name!r} died with its host {host.name!r}")
                continue
            for i, answer in zip(indexes, batch, strict=True):
                answers[i] = answer.error() if isinstance(answer, Failure) else answer
        return answers

    def open_calls(self) -> Calls:
        """Calls to hosted agents of one host go as one batch, sent when the next item is awaited."""
        return _HostedCalls(self, self.inner.open_calls())

    def stop(self, ref: ActorRef) -> None:
        """Stop an actor, or take a hosted agent off its host (nothing to do if the host died)."""
        if not isinstance(ref.address, _Placement):
            self.inner.stop(ref)
            return
        with self._lock:
            if self._placed.get(ref.name) is not ref:
                return
            del self._placed[ref.name]
            if not self._placed:
                self._gates.forget_idle()  # the run's servers are forgotten with its last agent (`Limits.forget`)
            slot = self._slots[ref.address.slot]
            if slot.ref is not ref.address.host:
                return
            slot.agents.discard(ref.name)
            if slot.adding.pop(ref.name, None) is not None:
                return  # never sent to its host
            try:
                self.inner.ask(slot.ref, RemoveAgent(ref.name), timeout=60.0)
            except ActorDiedError:
                self._host_died(ref.address.host)

    def shutdown(self) -> None:
        """Shut the wrapped transport down, hosts and all."""
        self._placed.clear()
        self.inner.shutdown()


class _HostedCalls(Calls):
    """Streamed calls over the wrapped transport's, hosted agents' calls batched per host."""

    def __init__(self, transport: HostedTransport, inner: Calls) -> None:
        self._transport = transport
        self._inner = inner
        self._ids = itertools.count(1)
        self._waiting: dict[ActorRef, list[tuple[int, str, Any]]] = {}  # per host, not sent yet
        self._calls: dict[int, ActorRef] = {}  # open hosted calls: call id -> the agent's ref
        self._batches: dict[ActorRef, set[int]] = {}  # per host, its open hosted calls
        self._batch_of: dict[int, int] = {}  # open hosted call id -> its batch
        self._batch_left: dict[int, int] = {}  # per batch, its calls still open (a host runs batches side by side)
        self._batch_ids = itertools.count(1)
        self._unstarted: collections.Counter[ActorRef] = collections.Counter()  # per host, batches not started
        self._ready: collections.deque[tuple[ActorRef, Any]] = collections.deque()

    def add(self, ref: ActorRef, request: Any) -> None:
        if not isinstance(ref.address, _Placement):
            self._inner.add(ref, request)
            return
        try:
            host = self._transport._placement(ref).host
        except ActorDiedError as died:
            self._ready.append((ref, CallFailed(died)))
            return
        call_id = next(self._ids)
        self._calls[call_id] = ref
        self._waiting.setdefault(host, []).append((call_id, ref.name, request))

    @property
    def open(self) -> int:
        return len(self._calls) + len(self._ready) + max(0, self._inner.open - len(self._batch_left))

    @property
    def ready(self) -> bool:
        return bool(self._ready) or self._inner.ready

    def _send_waiting(self) -> None:
        for host, calls in list(self._waiting.items()):
            if self._unstarted[host] >= UNSTARTED_BATCHES:
                continue  # they go with the next batch, once the host has started this one
            calls, rest = calls[:BATCH_CALLS], calls[BATCH_CALLS:]
            if rest:
                self._waiting[host] = rest
            else:
                del self._waiting[host]
            try:
                self._transport._send_adds(host)
            except ActorDiedError as died:
                for call_id, _, _ in calls:
                    self._ready.append((self._calls.pop(call_id), CallFailed(died)))
                continue
            self._unstarted[host] += 1
            self._inner.add(host, RunBatch(tuple(calls)))
            self._batches.setdefault(host, set()).update(call_id for call_id, _, _ in calls)
            batch = next(self._batch_ids)
            self._batch_left[batch] = len(calls)
            self._batch_of.update((call_id, batch) for call_id, _, _ in calls)

    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        self._send_waiting()
        while not self._ready:
            got = self._inner.next(timeout)
            if got is None:
                return None
            ref, item = got
            if ref not in self._batches:
                return got
            if isinstance(item, CallFailed):  # the host died, or failed as a whole: so did its open calls
                self._unstarted[ref] = 0
                if isinstance(item.error, ActorDiedError):
                    self._transport._host_died(ref)
                for call_id in sorted(self._batches[ref]):
                    self._call_over(call_id)
                    agent = self._calls.pop(call_id)
                    died = ActorDiedError(f"agent {agent.name!r} died with its host {ref.name!r}")
                    self._ready.append((agent, CallFailed(died)))
                self._batches[ref].clear()
                for call_id, _, _ in self._waiting.pop(ref, ()):  # calls that waited for a batch to start there
                    agent = self._calls.pop(call_id)
                    died = ActorDiedError(f"agent {agent.name!r} died with its host {ref.name!r}")
                    self._ready.append((agent, CallFailed(died)))
                continue
            if not item:  # the host has taken a batch: the calls that waited for it go
                self._unstarted[ref] -= 1
                self._send_waiting()
                continue
            for call_id, value in item:
                caller = self._calls.get(call_id)
                if caller is None:
                    continue
                if isinstance(value, StreamEnd | Failure):
                    self._call_over(call_id)
                    del self._calls[call_id]
                    self._batches[ref].discard(call_id)
                    if isinstance(value, Failure):
                        self._ready.append((caller, CallFailed(value.error())))
                else:
                    self._ready.append((caller, value))
        return self._ready.popleft()

    def _call_over(self, call_id: int) -> None:
        batch = self._batch_of.pop(call_id)
        self._batch_left[batch] -= 1
        if not self._batch_left[batch]:
            del self._batch_left[batch]

    def close(self) -> None:
        self._unstarted.clear()
        self._calls.clear()
        self._batch_of.clear()
        self._batch_left.clear()
        self._waiting.clear()
        self._ready.clear()
        self._inner.close()
