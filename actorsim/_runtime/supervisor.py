"""Supervision: restart what crashed, restore its state, give up past a budget.

The supervisor lives in the driver, beside the transport's handles, on every
transport. A supervisor inside an actor process would share that process's
fate: on Thespian a SIGKILLed parent leaves its children alive and its
`ChildActorExited` notice came 35 s late on our base; on Ray killing an actor
kills the actors it created. The driver is the root of the run already (its
actors exit when it does), so it is where the restart policy runs.

A child's state is rebuilt after a restart from what the driver sent it: the
requests that change it (`Durable` ones, journaled as they succeed) and the
latest snapshots the caller keeps for it (an agent's memory).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol

import attrs

from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._core.supervision import Durable, Supervision
from actorsim._errors import ActorDiedError, ActorStoppedError, ComponentFailedError, PoisonMessageError
from actorsim.transport import BehaviourFactory, Transport


class LogEvent(Protocol):
    """Records a driver-side event; returns where it is (`path:line`), or None without a log."""

    def __call__(self, event: str, **fields: Any) -> str | None: ...


def _no_log(event: str, **fields: Any) -> str | None:
    return None


def restart_cures(error: BaseException) -> bool:
    """Whether restarting the component could help: an error may say it cannot (`restartable = False`).

    A refused connection, a rejected key or a replay that diverged fails the
    same way in every incarnation; restarting only delays the error.
    """
    return bool(getattr(error, "restartable", True))


def _count_in_window(crashes: collections.deque[float], now: float, within: float) -> int:
    """Add a crash at `now`; how many of them came within `within` seconds (older ones are dropped)."""
    while crashes and now - crashes[0] > within:
        crashes.popleft()
    crashes.append(now)
    return len(crashes)


COMPACT_EVERY = 1000
"""Journaled requests after which a child that can be compacted is asked for a snapshot instead."""


@attrs.define
class _Child:
    name: str
    factory: BehaviourFactory
    policy: Supervision
    ref: ActorRef
    journal: list[Any] = attrs.Factory(list)
    snapshots: dict[str, Callable[[], Any]] = attrs.Factory(dict)
    failure_type: type[ComponentFailedError] = ComponentFailedError
    crashes: collections.deque[float] = attrs.Factory(collections.deque)
    failure: ComponentFailedError | None = None
    group: str | None = None
    restart_why: dict[str, Any] = attrs.Factory(dict)  # for the log of the restart owed after a crash
    compact: Any = None  # asked for a request that restores its whole state, in place of its journal
    replay: Callable[[tuple[Any, ...]], Any] | None = None  # makes one request of its whole journal
    placement: Placement | None = None


class Supervisor:
    """The run's supervisor: every actor the runtime spawns is its child.

    It needs only the transport to start and ask actors, the time it may wait
    for one, and somewhere to record what it does; `sleep` and `clock` are
    injected so that its budget and backoff can be tested without waiting.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float,
        log: LogEvent = _no_log,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._log = log
        self._children: dict[str, _Child] = {}
        self._sleep = sleep
        self._clock = clock
        self._deferred: set[str] = set()

    def spawn(
        self,
        factory: BehaviourFactory,
        name: str,
        policy: Supervision,
        failure_type: type[ComponentFailedError] = ComponentFailedError,
        *,
        placement: Placement | None = None,
    ) -> ActorRef:
        """Start a child; one whose process dies before it runs is started again, as its policy restarts it.

        Its code's own error at its start is raised as it is: starting it again would raise it again. A process
        that dies first (on Ray: "the actor never ran", its worker gone) says nothing of its code, and a run of
        hundreds of actors meets it now and then; past `max_restarts` such deaths within `within`, the last
        `ActorDiedError` is raised.
        """
        deaths: collections.deque[float] = collections.deque()
        while True:
            try:
                ref = self._transport.spawn(factory, name=name, timeout=self._timeout, placement=placement)
            except ActorDiedError as error:
                count = _count_in_window(deaths, self._clock(), policy.within)
                self._log("actor.crashed", actor=name, error=repr(error), crashes_in_window=count, starting=True)
                if count > policy.max_restarts:
                    raise
                self._sleep(policy.backoff(count))
                continue
            break
        self._children[name] = _Child(name, factory, policy, ref, failure_type=failure_type, placement=placement)
        return ref

    def forget(self, name: str) -> ActorRef | None:
        """Stop supervising `name` (it is being stopped); its last ref, if any."""
        child = self._children.pop(name, None)
        self._deferred.discard(name)
        return None if child is None else child.ref

    def current(self, name: str) -> ActorRef:
        """The live ref of `name`; raises the supervisor's `ComponentFailedError` once it gave up."""
        child = self._children.get(name)
        if child is None:
            raise ActorStoppedError(f"actor {name!r} is stopped")
        if child.failure is not None:
            raise child.failure
        return child.ref

    def failure(self, name: str) -> ComponentFailedError | None:
        child = self._children.get(name)
        return None if child is None else child.failure

    def journal(self, name: str, request: Durable) -> None:
        """`request` changed `name`'s state: replay it into any successor.

        Every `COMPACT_EVERY` requests, a child that can be compacted gives a
        snapshot of its state, which replaces its journal: a restart replays
        one snapshot and fewer than `COMPACT_EVERY` requests, however long the
        run (the Environment after 100,000 messages is back in well under a
        second instead of replaying them all).
        """
        child = self._children[name]
        child.journal.append(request)
        if child.compact is not None and len(child.journal) > COMPACT_EVERY:
            child.journal = [self._transport.ask(child.ref, child.compact, timeout=self._timeout)]
            self._log("actor.journal_compacted", actor=name)

    def compact_with(self, name: str, request: Any) -> None:
        """`name` answers `request` with a `Durable` request that restores its whole state: its journal's stand-in."""
        self._children[name].compact = request

    def replay_with(self, name: str, make: Callable[[tuple[Any, ...]], Any]) -> None:
        """`name`'s successor is given its journal in one request, `make(journal)`: one round trip, not one each."""
        self._children[name].replay = make

    def keep_snapshot(self, name: str, key: str, request: Callable[[], Any]) -> None:
        """After a restart, `request()` is sent to `name` (after its journal) to restore part of its state."""
        self._children[name].snapshots[key] = request

    def join_group(self, group: str, names: Iterable[str]) -> None:
        """Siblings for `one_for_all`: the components of one task center."""
        for name in names:
            self._children[name].group = group

    def crashed(self, ref: ActorRef, cause: BaseException, **context: Any) -> ActorRef:
        """`ref` crashed (raised, or its process died): wait out its backoff and restart it.

        Returns the successor's ref; raises the child's `ComponentFailedError`
        once the budget is spent, or at once for a cause no restart cures. A
        ref already replaced (a sibling restart got there first) is simply
        resolved. `context` (what the child was doing) goes into the log.
        """
        delay = self.note_crash(ref, cause, **context)
        if delay is None:
            return self._children[ref.name].ref
        self._sleep(delay)
        return self.restart(ref.name)

    def note_crash(self, ref: ActorRef, cause: BaseException, **context: Any) -> float | None:
        """Count a crash of `ref` against its budget: the backoff to wait before `restart`.

        None when `ref` was already replaced (nothing to restart); raises the
        child's `ComponentFailedError` past its budget or for a cause no
        restart cures. Separate from `restart` so that a caller can go on
        with other work while the backoff passes.
        """
        child = self._children[ref.name]
        if child.failure is not None:
            raise child.failure
        if child.ref is not ref:
            return None
        count = _count_in_window(child.crashes, self._clock(), child.policy.within)
        self._log(
            "actor.crashed", actor=child.name, error=repr(cause), crashes_in_window=count,
            **({"actor_node": ref.node} if ref.node else {}), **context,
        )
        if count > child.policy.max_restarts or not restart_cures(cause):
            self._give_up(child, cause, restarts=count - 1)
        delay = child.policy.backoff(count)
        child.restart_why = {"reason": repr(cause), "attempt": count, "backoff_s": delay}
        return delay

    def restart(self, name: str) -> ActorRef:
        """Start the successor of a crashed child whose backoff has passed; its ref.

        A successor that fails to start is one more crash: counted, waited
        out and tried again, until the budget is spent.
        """
        child = self._children[name]
        while True:
            try:
                self._restart(child, **child.restart_why)
            except Exception as error:  # noqa: BLE001 - the successor failed to start: one more crash
                delay = self.note_crash(child.ref, error)
                self._sleep(delay or 0.0)
                continue
            break
        if child.policy.strategy == "one_for_all" and child.group is not None:
            self._deferred.update(
                other.name for other in self._children.values()
                if other.group == child.group and other is not child and other.failure is None
            )
        return child.ref

    def _give_up(self, child: _Child, cause: BaseException, restarts: int) -> NoReturn:
        line = self._log(
            "actor.given_up", actor=child.name, error=repr(cause), restarts=restarts, within_s=child.policy.within
        )
        child.failure = child.failure_type(child.name, cause, restarts, line)
        self._stop_quietly(child.ref)
        raise child.failure

    def max_deliveries(self, name: str) -> int:
        """How many times one step of `name` may be delivered and crash it (`Supervision.max_deliveries`)."""
        return self._children[name].policy.max_deliveries

    def poisoned(self, name: str, cause: BaseException, deliveries: int, **context: Any) -> PoisonMessageError:
        """A step crashed `name` on each of its `deliveries`: logged, and the error its step raises."""
        line = self._log("delivery.poisoned", actor=name, error=repr(cause), deliveries=deliveries, **context)
        return PoisonMessageError(name, cause, deliveries, line)

    def restart_deferred(self) -> None:
        """Restart the `one_for_all` siblings owed a restart; called between steps."""
        while self._deferred:
            child = self._children.get(self._deferred.pop())
            if child is not None and child.failure is None:
                self._restart(child, reason="one_for_all: a sibling crashed", attempt=0, backoff_s=0.0)

    def _restart(self, child: _Child, **why: Any) -> None:
        started = self._clock()
        self._stop_quietly(child.ref)
        # On Ray the transport steers the successor off the node its predecessor died on (`_ray_nodes`).
        ref = child.ref = self._transport.spawn(
            child.factory, name=child.name, timeout=self._timeout, placement=child.placement
        )
        if child.replay is not None and child.journal:
            self._transport.ask(ref, child.replay(tuple(child.journal)), timeout=self._timeout)
        else:
            for request in child.journal:
                self._transport.ask(ref, request, timeout=self._timeout)
        for make in child.snapshots.values():
            self._transport.ask(ref, make(), timeout=self._timeout)
        self._log(
            "actor.restarted", actor=child.name, new_pid=ref.pid, **({"actor_node": ref.node} if ref.node else {}),
            replayed=len(child.journal),
            snapshots=sorted(child.snapshots), restart_s=self._clock() - started, **why,
        )

    def _stop_quietly(self, ref: ActorRef) -> None:
        """Stop a crashed actor; one whose process is gone needs only forgetting."""
        try:
            self._transport.stop(ref)
        except Exception as error:  # noqa: BLE001 - a dead actor may refuse even that
            self._log("actor.stop_failed", actor=ref.name, error=repr(error))
