"""A host's own limiter per model server, for the calls its threads make.

A host runs hundreds of agents' steps as batches, and the driver's answer to
a throttled call would reach it only with a new request, so those calls wait
for their server on the host: every try of every call goes through a gate. A
batch lent a share of the server's permits (`Lease`) keeps its calls within
it at a gate of its own, starting the next as one ends; a host runs several
batches at once, each within its own lease. Calls lent nothing (the server's
limit unknown, sought in slow start, or paced per minute by the driver) wait
at their host's gate for the server, which learns its share of the server
from the 429s its host's calls get, as the driver's limiter does
(`actorsim.llm._limiter`), so that hundreds of calls do not each retry on
their own schedule into a server that is full.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
from collections.abc import Callable

import attrs

from actorsim._core.context import current_stop_event
from actorsim._errors import ActorStoppedError
from actorsim.llm._limiter import ServerKey, ServerLimiter
from actorsim.llm._limits import ServerLimits

_STOP_POLL_S = 0.5
"""How often a waiting call looks whether its host is being stopped."""


@attrs.frozen
class Lease:
    """How many of a host's calls to `server` may be in flight at once while it runs its present batch.

    The driver's limiter lends a host a share of a server's permits and sends
    it more steps than that share (`actorsim._engine.permits`): as one call
    ends, the host starts the next itself, without waiting for the driver.
    """

    server: ServerKey
    permits: int
    batch: int = 0
    """Which of the driver's batches it was lent to: two leases of the same size are not one."""


class ServerGate:
    """Calls to one server from one host, or from one lease: each try holds a place while it is in flight, and
    waits for one.

    `whole_run`: the gate sees every call of the run to its server (the hosts
    share the driver's process), so what the server's 429s teach it holds for
    all of them and it keeps it, as the driver's limiter does. A host's own
    gate sees only its share: a throttle cuts it to the calls its host has
    streaming, and it does not rise back (the hosts' shares, each rising to
    what it saw served, came to more than the server took: a 429 on Ray right
    after the first `Retry-After`). It forgets its cut once its host has no
    call to the server left: the next batches are sized, or lent their
    permits, by the driver's limiter, which has learnt from every host.
    """

    def __init__(
        self, key: ServerKey, limits: ServerLimits, clock: Callable[[], float] = time.monotonic, *,
        whole_run: bool = False, on_pause: Callable[[float], None] | None = None,
    ) -> None:
        """`on_pause(until)` is told of a pause the server asks for, to hold the other gates of its host to it."""
        self._limiter = ServerLimiter(key, limits, clock, rises_back=whole_run)
        self._on_pause = on_pause
        self.given = limits  # the bound its agents' config gives, when no lease is
        self._whole_run = whole_run
        self._clock = clock
        self._lock = threading.Lock()
        self._wakers: dict[str, threading.Event] = {}  # waiting tries: set once granted, or to take over the timer
        self._ids = itertools.count(1)

    @property
    def allowed(self) -> int | None:
        return self._limiter.allowed

    @property
    def idle(self) -> bool:
        """No try is in flight or waiting."""
        with self._lock:
            return self._limiter.idle

    @property
    def paused_until(self) -> float:
        """Until when the server asked its calls to wait (`Retry-After`)."""
        return self._limiter.paused_until

    def pause_until(self, when: float) -> None:
        with self._lock:
            self._limiter.paused_until = max(self._limiter.paused_until, when)

    def enter(self, wait_s: float = 0.0) -> str:
        """A place for one try, first come first served, not before `wait_s` from now: its ticket."""
        ticket = f"try-{next(self._ids)}"
        with self._lock:
            if self._limiter.ask(ticket, wait_s):
                return ticket
            woken = self._wakers[ticket] = threading.Event()
        stopping = current_stop_event()
        while True:
            with self._lock:
                self._grant_due()
                if ticket in self._limiter.in_flight:
                    return ticket
                woken.clear()
                timeout = self._timeout_for(ticket)
            if stopping is not None:
                timeout = _STOP_POLL_S if timeout is None else min(timeout, _STOP_POLL_S)
            woken.wait(timeout)
            if stopping is not None and stopping.is_set():
                with self._lock:
                    self._wakers.pop(ticket, None)
                    self._limiter.release(ticket, succeeded=False)
                    self._grant_due()
                raise ActorStoppedError("the agent was stopped while its call waited for its model server")

    def admitted(self, ticket: str) -> None:
        """The server took the try: it is streaming."""
        with self._lock:
            self._limiter.admitted(ticket)

    def throttled(self, ticket: str, retry_after: float | None, *, pauses_server: bool = False) -> None:
        """The server refused the try for being over its limit: its place comes back, and the allowance is cut;
        its `Retry-After` holds every try back when `pauses_server` (`Throttled`), else the refused call's own."""
        with self._lock:
            paused_until = self._limiter.paused_until
            self._limiter.throttled(ticket, retry_after, pauses_server=pauses_server)
            self._grant_due()
            paused_now = self._limiter.paused_until
        if paused_now > paused_until and self._on_pause is not None:
            self._on_pause(paused_now)

    def leave(self, ticket: str, succeeded: bool) -> None:
        """The try is over, answered or failed otherwise: its place comes back."""
        with self._lock:
            self._limiter.release(ticket, succeeded=succeeded)
            self._grant_due()

    def _grant_due(self) -> None:
        """Wake the tries granted a place, and the first still waiting if a time (not a release) lets it go;
        a host's own gate with none in flight or waiting forgets what the server taught (its batches are over)."""
        if not self._whole_run and self._limiter.idle:
            self._limiter.unlearn()
            return
        for ticket in self._limiter.grant_due(self._wakers.keys()):
            self._wakers.pop(ticket).set()
        due = self._limiter.next_due()
        if due is not None and not math.isinf(due) and self._wakers:
            self._wakers[next(iter(self._limiter.waiting))].set()

    def _timeout_for(self, ticket: str) -> float | None:
        """How long `ticket` sleeps: until the due time if it keeps the timer (the first waiting), else until woken."""
        due = self._limiter.next_due()
        if due is None or math.isinf(due) or next(iter(self._limiter.waiting)) != ticket:
            return None
        return max(0.0, due - self._clock())


class CallGates:
    """A host's gates, one per server its agents call; shared by the hosts of the driver's process.

    Sent to another process, it arrives empty: a host there learns its share of its servers for itself.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, whole_run: bool = True) -> None:
        self._clock = clock
        self._whole_run = whole_run
        self._lock = threading.Lock()
        self._gates: dict[ServerKey, ServerGate] = {}
        self._leases: dict[Lease, _LeaseGate] = {}

    def gate(self, key: ServerKey, limits: ServerLimits) -> ServerGate:
        """The gate of server `key`; `limits.max_concurrency` bounds it from the first call (the driver's bound,
        which a host cannot pass anyway)."""
        with self._lock:
            gate = self._gates.get(key)
            given = ServerLimits(limits.max_concurrency)
            if gate is None:
                gate = self._gates[key] = ServerGate(key, given, self._clock, whole_run=self._whole_run,
                                                     on_pause=functools.partial(self._pause, key))
            gate.given = given
            return gate

    def forget_idle(self) -> None:
        """No agent calls through these gates any more: a gate with no try in flight or waiting goes, with what
        its server taught it, as the driver's limiter of a server no agent calls goes (`Limits.forget`)."""
        with self._lock:
            for key, gate in list(self._gates.items()):
                if gate.idle:
                    del self._gates[key]

    def leased(self, lease: Lease | None) -> CallGates | LeasedGates:
        """The gates one call of a batch waits at: its `lease`'s own gate for the server lent, bounded to the
        permits lent; its host's gates for any other server. Hand the view back with `LeasedGates.done` once the
        call is over: the lease's gate goes with its last call.

        Gates shared by the hosts of the driver's process see every call of the run already, and keep to the
        server's whole limit, not to one batch's lease.
        """
        if lease is None or self._whole_run:
            return self
        with self._lock:
            held = self._leases.get(lease)
            if held is None:
                gate = ServerGate(lease.server, ServerLimits(lease.permits), self._clock,
                                  on_pause=functools.partial(self._pause, lease.server))
                if (host_gate := self._gates.get(lease.server)) is not None:
                    gate.pause_until(host_gate.paused_until)  # a pause the server asked for holds for every call
                held = self._leases[lease] = _LeaseGate(gate)
            held.calls += 1
        return LeasedGates(self, lease, held.gate)

    def _pause(self, key: ServerKey, until: float) -> None:
        """A pause the server asked one gate for holds for every call of this host to it."""
        with self._lock:
            gates = [self._gates.get(key), *(held.gate for lease, held in self._leases.items() if lease.server == key)]
        for gate in gates:
            if gate is not None:
                gate.pause_until(until)

    def _call_over(self, lease: Lease) -> None:
        with self._lock:
            held = self._leases[lease]
            held.calls -= 1
            if not held.calls:
                del self._leases[lease]

    def __reduce__(self) -> tuple[Callable[[], CallGates], tuple[()]]:
        return _arrived, ()


@attrs.define
class _LeaseGate:
    """A lease's gate on its host, and how many of its calls are not over."""

    gate: ServerGate
    calls: int = 0


class LeasedGates:
    """The gates one call of a leased batch waits at (`CallGates.leased`)."""

    def __init__(self, gates: CallGates, lease: Lease, gate: ServerGate) -> None:
        self._gates = gates
        self._lease = lease
        self._gate = gate

    def gate(self, key: ServerKey, limits: ServerLimits) -> ServerGate:
        """The lease's gate for the server lent; the host's for any other."""
        return self._gate if key == self._lease.server else self._gates.gate(key, limits)

    def done(self) -> None:
        """The call is over: the lease's gate goes once none of its calls is left."""
        self._gates._call_over(self._lease)


def _arrived() -> CallGates:
    """The gates of a host in a process of its own: each sees its host's calls alone."""
    return CallGates(whole_run=False)
