"""The supervisor alone: its restart budget, backoff and `one_for_all` rule, on a fake clock.

Built from a transport, a timeout and a log function, it needs no run: these
tests give it the inline transport, record its log events and sleeps, and
move its clock by hand, so a 60-second window takes no time at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actorsim import (
    USER_REQUIREMENT,
    ActorDiedError,
    ActorStoppedError,
    ComponentFailedError,
    Message,
    Runtime,
    Supervision,
)
from actorsim._actors.environment import Environment
from actorsim._core.options import RunOptions
from actorsim._protocol.environment import AddRoles, GetHistory, Publish, ReplayJournal
from actorsim._runtime.runtime import new_run_id
from actorsim._runtime.supervisor import Supervisor
from actorsim.transport import ActorRef, Transport, load_transport
from tests.actors import Append, BrokenAtStart, DurableAppend, GetValues, Recorder
from tests.helpers import CountingTransport

POLICY = Supervision(max_restarts=2, within=10.0, backoff_initial=1.0, backoff_max=3.0, backoff_jitter=0.0)


class Clock:
    """A clock that only moves when told to, and a sleep that moves it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Unfixable(Exception):
    restartable = False


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def transport() -> Iterator[Transport]:
    inline = load_transport("inline")
    yield inline
    inline.shutdown()


def supervising(transport: Transport, clock: Clock, events: list[tuple[str, dict[str, Any]]]) -> Supervisor:
    """A supervisor of `transport` on the fake clock, recording its log events."""

    def log(event: str, **fields: Any) -> str:
        events.append((event, fields))
        return f"log:{len(events)}"

    return Supervisor(transport, timeout=5.0, log=log, sleep=clock.sleep, clock=clock)


@pytest.fixture
def supervisor(transport: Transport, clock: Clock, events: list[tuple[str, dict[str, Any]]]) -> Supervisor:
    return supervising(transport, clock, events)


def kinds(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [event for event, _ in events]


class TestBudget:
    def test_a_crash_restarts_the_child_with_its_journal(self, supervisor: Supervisor, transport: Transport) -> None:
        """The successor is a new actor under the same name, given the durable requests again."""
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        transport.ask(ref, DurableAppend("kept"), timeout=1)
        supervisor.journal("recorder", DurableAppend("kept"))
        successor = supervisor.crashed(ref, RuntimeError("boom"))
        assert successor is not ref and successor.name == "recorder"
        assert transport.ask(successor, GetValues(), timeout=1) == ["kept"]

    def test_a_child_that_takes_its_journal_whole_gets_it_in_one_request(self, events: Any, clock: Clock) -> None:
        """The Environment's successor is given its journal as one `ReplayJournal`, not one request per entry."""
        counting = CountingTransport(load_transport("inline"))
        supervisor = Supervisor(counting, timeout=5.0, sleep=clock.sleep, clock=clock)
        ref = supervisor.spawn(Environment, "environment", POLICY)
        supervisor.replay_with("environment", ReplayJournal)
        requests = [AddRoles(("reader",)), *(Publish(Message(f"task {n}", USER_REQUIREMENT, ("reader",)))
                                            for n in range(50))]
        for request in requests:
            counting.ask(ref, request, timeout=1)
            supervisor.journal("environment", request)
        history = counting.ask(ref, GetHistory(), timeout=1)
        counting.requests.clear()
        successor = supervisor.crashed(ref, RuntimeError("boom"))
        assert counting.requests == ["spawn", "ReplayJournal"]
        assert counting.ask(successor, GetHistory(), timeout=1) == history and len(history) == 50
        counting.shutdown()

    def test_past_the_budget_within_the_window_it_gives_up(
        self, supervisor: Supervisor, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Two restarts are allowed within 10 s; the third crash gives up, naming the log line."""
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        ref = supervisor.crashed(ref, RuntimeError("one"))
        ref = supervisor.crashed(ref, RuntimeError("two"))
        with pytest.raises(ComponentFailedError, match="failed after 2 restarts: RuntimeError: three") as raised:
            supervisor.crashed(ref, RuntimeError("three"))
        assert raised.value.log_line == f"log:{len(events)}"
        assert kinds(events)[-2:] == ["actor.crashed", "actor.given_up"]
        with pytest.raises(ComponentFailedError):
            supervisor.current("recorder")

    def test_crashes_older_than_the_window_do_not_count(self, supervisor: Supervisor, clock: Clock) -> None:
        """Crashes spread wider than `within` restart for ever."""
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        for _ in range(6):
            ref = supervisor.crashed(ref, RuntimeError("now and then"))
            clock.now += 11.0
        assert supervisor.failure("recorder") is None

    def test_a_cause_no_restart_cures_gives_up_at_once(
        self, supervisor: Supervisor, clock: Clock, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """An error that says `restartable = False` is not restarted and not waited for."""
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        with pytest.raises(ComponentFailedError, match="failed, not restarted"):
            supervisor.crashed(ref, Unfixable("refused"))
        assert clock.slept == []
        assert "actor.restarted" not in kinds(events)


class TestBackoff:
    def test_restarts_in_a_row_wait_twice_as_long_up_to_the_bound(self, supervisor: Supervisor, clock: Clock) -> None:
        policy = Supervision(max_restarts=5, within=100.0, backoff_initial=1.0, backoff_max=3.0, backoff_jitter=0.0)
        ref = supervisor.spawn(Recorder, "recorder", policy)
        for _ in range(4):
            ref = supervisor.crashed(ref, RuntimeError("again"))
        assert clock.slept == [1.0, 2.0, 3.0, 3.0]

    def test_note_crash_returns_the_backoff_without_waiting(self, supervisor: Supervisor, clock: Clock) -> None:
        """The split a supervised stream uses: count the crash now, restart once the backoff has passed."""
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        assert supervisor.note_crash(ref, RuntimeError("boom"), reply_id="r1") == 1.0
        assert clock.slept == []
        assert supervisor.current("recorder") is ref, "not restarted before restart() is called"
        assert supervisor.restart("recorder") is not ref

    def test_a_replaced_ref_is_not_restarted_twice(self, supervisor: Supervisor) -> None:
        ref = supervisor.spawn(Recorder, "recorder", POLICY)
        successor = supervisor.crashed(ref, RuntimeError("boom"))
        assert supervisor.note_crash(ref, RuntimeError("the same death, seen late")) is None
        assert supervisor.current("recorder") is successor


class TestOneForAll:
    def test_siblings_restart_between_steps_not_at_once(
        self, supervisor: Supervisor, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        policy = Supervision(strategy="one_for_all", backoff_initial=0.0, backoff_jitter=0.0)
        first = supervisor.spawn(Recorder, "first", policy)
        second = supervisor.spawn(Recorder, "second", policy)
        other_group = supervisor.spawn(Recorder, "elsewhere", policy)
        supervisor.join_group("center", ["first", "second"])
        supervisor.join_group("other", ["elsewhere"])
        supervisor.crashed(first, RuntimeError("boom"))
        assert supervisor.current("second") is second, "a sibling waits for the step to end"
        supervisor.restart_deferred()
        assert supervisor.current("second") is not second
        assert supervisor.current("elsewhere") is other_group
        reasons = [fields["reason"] for event, fields in events if event == "actor.restarted"]
        assert reasons == ["RuntimeError('boom')", "one_for_all: a sibling crashed"]

    def test_one_for_one_leaves_the_siblings_alone(self, supervisor: Supervisor) -> None:
        first = supervisor.spawn(Recorder, "first", POLICY)
        second = supervisor.spawn(Recorder, "second", POLICY)
        supervisor.join_group("center", ["first", "second"])
        supervisor.crashed(first, RuntimeError("boom"))
        supervisor.restart_deferred()
        assert supervisor.current("second") is second


class DiesAsItStarts(CountingTransport):
    """The first `deaths` actors started lose their process before they run, as a Ray worker that dies does."""

    def __init__(self, inner: Transport, deaths: int) -> None:
        super().__init__(inner)
        self.deaths = deaths

    def spawn(self, factory: Any, *, name: str, timeout: float, placement: Any = None) -> ActorRef:
        ref = super().spawn(factory, name=name, timeout=timeout, placement=placement)
        if self.deaths:
            self.deaths -= 1
            self.inner.stop(ref)
            raise ActorDiedError(f"actor {name!r} died: the actor never ran")
        return ref


class TestStart:
    """A child whose process dies as it starts is started again under its policy; its code's error is not."""

    def test_a_child_whose_process_dies_before_it_runs_is_started_again(
        self, transport: Transport, clock: Clock, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        dying = DiesAsItStarts(transport, deaths=2)
        ref = supervising(dying, clock, events).spawn(Recorder, "recorder", POLICY)
        assert dying.ask(ref, Append("x"), timeout=1) == 1
        assert dying.requests == ["spawn", "spawn", "spawn", "Append"]
        assert clock.slept == [1.0, 2.0]
        assert [(event, fields["starting"], fields["crashes_in_window"]) for event, fields in events] == [
            ("actor.crashed", True, 1), ("actor.crashed", True, 2)]

    def test_past_its_restarts_the_death_is_raised_and_the_name_is_free(
        self, transport: Transport, clock: Clock, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        supervisor = supervising(DiesAsItStarts(transport, deaths=3), clock, events)
        with pytest.raises(ActorDiedError, match="never ran"):
            supervisor.spawn(Recorder, "recorder", POLICY)  # 2 restarts allowed: the third death is the last
        assert len(events) == 3
        with pytest.raises(ActorStoppedError):
            supervisor.current("recorder")
        assert transport.ask(supervisor.spawn(Recorder, "recorder", POLICY), Append("x"), timeout=1) == 1

    def test_its_codes_own_error_at_its_start_is_raised_at_once(
        self, transport: Transport, clock: Clock, events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        counting = CountingTransport(transport)
        with pytest.raises(RuntimeError, match="cannot start"):
            supervising(counting, clock, events).spawn(BrokenAtStart, "broken", POLICY)
        assert counting.requests == ["spawn"] and clock.slept == [] and events == []


class DiesDuringFirstAppend(CountingTransport):
    """The first `Append` asked of any actor is delivered, then its process dies before it answers."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner)
        self.died = False

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        answer = super().ask(to, request, timeout=timeout)
        if isinstance(request, Append) and not self.died:
            self.died = True
            raise ActorDiedError(f"{to.name} died during the request")
        return answer


class TestAskRedelivery:
    """`Runtime.ask` restarts an actor that died during an ask; its `redeliver` rule says whether to ask again."""

    @pytest.fixture
    def dying(self, transport: Transport) -> DiesDuringFirstAppend:
        return DiesDuringFirstAppend(transport)

    @pytest.fixture
    def runtime(self, dying: DiesDuringFirstAppend) -> Iterator[Runtime]:
        with Runtime(dying, RunOptions(log_dir=None), new_run_id()) as runtime:
            yield runtime

    def spawn(self, runtime: Runtime) -> ActorRef:
        return runtime.spawn(Recorder, name="recorder", supervision=Supervision(backoff_initial=0, backoff_jitter=0))

    def test_by_default_the_restarted_actor_is_asked_again(
        self, runtime: Runtime, dying: DiesDuringFirstAppend
    ) -> None:
        ref = self.spawn(runtime)
        assert runtime.ask(ref, Append("x")) == 1  # the successor's answer: it holds the one append
        assert dying.requests == ["spawn", "Append", "spawn", "Append"]
        assert runtime.actor("recorder") is not ref

    def test_a_request_that_must_not_run_twice_raises_once_the_actor_is_restarted(
        self, runtime: Runtime, dying: DiesDuringFirstAppend
    ) -> None:
        ref = self.spawn(runtime)
        seen: list[BaseException] = []
        with pytest.raises(ActorDiedError, match="died during the request"):
            runtime.ask(ref, Append("x"), redeliver=lambda died: bool(seen.append(died)))
        assert len(seen) == 1 and dying.requests == ["spawn", "Append", "spawn"]
        successor = runtime.actor("recorder")
        assert successor is not ref and runtime.ask(successor, GetValues()) == []
