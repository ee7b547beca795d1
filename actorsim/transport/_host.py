"""A host actor's behaviour: many agents' behaviours in one process, and the requests it takes.

The driver's side, which places agents on hosts and batches what it sends
them, is `HostedTransport` (`actorsim.transport._hosted`).

A host runs several batches at once: each batch's calls run on threads of
its pool, and its answer is `Detached`, so that the host takes the next
batch while one still streams. A batch sent to a host busy with another
would otherwise wait for all of it, the permits its steps were lent idle
meanwhile. An agent still handles one request at a time: its calls and
asks take its lock.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import attrs

from actorsim._core.context import current_stop_event, stop_waits_with, wait_in_place
from actorsim._errors import ActorStoppedError
from actorsim._runlog import RunLogConfig, hosted_by, open_run_log
from actorsim.llm._gate import CallGates, Lease, LeasedGates
from actorsim.transport._base import Behaviour, BehaviourFactory, Detached, Failure, StreamEnd

HOST_THREADS = 512
"""Streamed calls one host runs at once; threads are started only when needed."""


@attrs.frozen
class Hosted:
    """A behaviour factory to be built inside a host actor, not in an actor of its own.

    `log` is the run log the host writes to (None: it writes none).
    """

    factory: BehaviourFactory
    log: RunLogConfig | None = None

    def __call__(self) -> Behaviour:
        return self.factory()


@attrs.frozen
class HostFactory:
    """Builds a `Host` in its actor's process; its streams run apart (`Detached`)."""

    streams_apart: ClassVar[bool] = True
    name: str
    log: RunLogConfig | None
    process: str
    gates: CallGates

    def __call__(self) -> Host:
        return Host(self.name, log=self.log, process=self.process, gates=self.gates)


@attrs.frozen
class AddAgents:
    """Build these agents, each `(name, factory)`; one whose factory raises answers every request with that error."""

    agents: tuple[tuple[str, BehaviourFactory], ...]


@attrs.frozen
class RemoveAgent:
    name: str


@attrs.frozen
class ToAgent:
    name: str
    request: Any


@attrs.frozen
class ToAgents:
    """Asks to several agents of one host, each `(agent name, request)`: answered by a list, a `Failure` where one
    raised."""

    asks: tuple[tuple[str, Any], ...]


@attrs.frozen
class RunBatch:
    """Streamed calls to several agents of one host, each `(call id, agent name, request)`."""

    calls: tuple[tuple[int, str, Any], ...]


class Host:
    """The behaviour of a host actor: many agents' behaviours, keyed by agent name.

    Its answer to a `RunBatch` is a stream of lists of `(call id, item)`,
    the first empty (the host has taken the batch): the items of every call
    of the batch as they come, a call ending with
    `StreamEnd` or with the `Failure` it raised; the batch itself never fails
    for one agent's error.
    """

    def __init__(
        self, name: str = "host", *, log: RunLogConfig | None = None, process: str = "host",
        gates: CallGates | None = None,
    ) -> None:
        """`name` is the host's actor name; with a `log`, the host writes `<process>-<pid>.jsonl`, its agents too.

        Its agents' calls wait for their servers at `gates` (`actorsim.llm._gate`): hosts in one process share them.
        """
        self._name = name
        if log is not None:
            run_log = open_run_log(log, process=process)
            run_log.write("actor.started", {"behaviour": type(self).__qualname__}, run_log.tail(actor=name))
            run_log.flush()
        self._agents: dict[str, Behaviour] = {}
        self._locks: dict[str, threading.Lock] = {}  # per agent: one request at a time, call or ask
        self._broken: dict[str, BaseException] = {}  # agents whose factory raised, with what it raised
        self._pool = ThreadPoolExecutor(max_workers=HOST_THREADS, thread_name_prefix="agent")
        self._gates = gates or CallGates(whole_run=False)

    def receive(self, request: Any) -> Any:
        """Add, remove, ask or stream the agents it hosts."""
        if isinstance(request, RunBatch):
            return self._run_batch(request.calls)
        if isinstance(request, ToAgent):
            agent = self._agent(request.name)
            with self._locks[request.name]:
                return agent.receive(request.request)
        if isinstance(request, ToAgents):
            return [self._answer(name, one) for name, one in request.asks]
        if isinstance(request, AddAgents):
            for name, factory in request.agents:
                self._add(name, factory)
            return None
        if isinstance(request, RemoveAgent):
            self._agents.pop(request.name, None)
            self._locks.pop(request.name, None)
            self._broken.pop(request.name, None)
            return None
        raise TypeError(f"a host does not understand {type(request).__name__}")

    def _add(self, name: str, factory: BehaviourFactory) -> None:
        try:
            with hosted_by(self._name):  # each agent's `actor.started` says which host holds it
                self._agents[name] = factory()
                self._locks.setdefault(name, threading.Lock())
        except Exception as error:  # noqa: BLE001 - the agent's first request raises it, as its own actor's would
            error.add_note(f"raised while starting agent {name!r}")
            self._broken[name] = error

    def _agent(self, name: str) -> Behaviour:
        agent = self._agents.get(name)
        if agent is None:
            if name in self._broken:
                raise self._broken[name]
            raise ActorStoppedError(f"agent {name!r} is not hosted here")
        return agent

    def _answer(self, name: str, request: Any) -> Any:
        try:
            agent = self._agent(name)
            with self._locks[name]:
                return agent.receive(request)
        except Exception as error:  # noqa: BLE001 - one agent's error is its answer, not the batch's
            return Failure.capture(error)

    def _run_batch(self, calls: Sequence[tuple[int, str, Any]]) -> Detached:
        """Start the batch's calls, each on a thread of the pool, and stream what they produce apart from the
        host's other requests."""
        out: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        stopping = current_stop_event()  # the host's: stopping it cuts its agents' waits short, on any thread
        for call_id, name, request in calls:
            # A step lent a share of its server's permits (`Lease`) waits at its lease's gate: the batch keeps to it.
            gates = self._gates.leased(lease if isinstance(lease := getattr(request, "lease", None), Lease) else None)
            self._pool.submit(self._run_call, call_id, name, request, out, gates, stopping)
        return Detached(self._answers(out, len(calls)))

    @staticmethod
    def _answers(out: queue.SimpleQueue[tuple[int, Any]], open_calls: int) -> Iterator[list[tuple[int, Any]]]:
        yield []  # the batch is taken: the driver may send the host its next (`_hosted.UNSTARTED_BATCHES`)
        while open_calls:
            ready = [out.get()]
            while True:
                try:
                    ready.append(out.get_nowait())
                except queue.Empty:
                    break
            open_calls -= sum(isinstance(item, StreamEnd | Failure) for _, item in ready)
            yield ready

    def _run_call(
        self, call_id: int, name: str, request: Any, out: queue.SimpleQueue[tuple[int, Any]],
        gates: CallGates | LeasedGates, stopping: threading.Event | None = None,
    ) -> None:
        stop_waits_with(stopping)
        wait_in_place(gates)
        try:
            agent = self._agent(name)
            with self._locks[name]:
                for item in agent.receive(request):
                    out.put((call_id, item))
        except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
            out.put((call_id, Failure.capture(error)))
        else:
            out.put((call_id, StreamEnd()))
        finally:
            if isinstance(gates, LeasedGates):
                gates.done()
