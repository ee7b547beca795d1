"""The contract every transport meets, checked on each of them."""

from __future__ import annotations

import functools
import os
import signal
import time

import pytest

from actorsim import ActorDiedError, ActorStoppedError, AskTimeoutError, Runtime
from actorsim.transport import CallFailed
from tests.actors import Append, BrokenAtStart, Count, DurableAppend, Fail, GetValues, Recorder, Sleep

in_processes = pytest.mark.parametrize("transport_name", ["thespian", "ray"], indirect=True)
"""Transports whose actors are processes of their own, which a test can kill."""


class TestAsk:
    def test_answers_come_back_in_the_order_sent(self, runtime: Runtime) -> None:
        """Requests from one sender are handled in the order they were sent."""
        ref = runtime.spawn(Recorder, name="recorder")
        for value in range(50):
            runtime.transport.ask(ref, Append(value), timeout=10)
        assert runtime.ask(ref, GetValues()) == list(range(50))

    def test_factory_arguments_reach_the_behaviour(self, runtime: Runtime) -> None:
        """The behaviour is built from its factory inside the actor."""
        ref = runtime.spawn(functools.partial(Recorder, ("a", "b")), name="seeded")
        assert runtime.ask(ref, Append("c")) == 3

    def test_the_actors_own_exception_is_raised(self, runtime: Runtime) -> None:
        """An exception in the behaviour reaches the caller as itself, and the actor lives on."""
        ref = runtime.spawn(Recorder, name="failing")
        with pytest.raises(KeyError, match="boom"):
            runtime.ask(ref, Fail("boom"))
        assert runtime.ask(ref, Append(1)) == 1

    def test_ask_times_out(self, runtime: Runtime) -> None:
        """A slow actor gives AskTimeoutError, and its late answer is not taken for the next one."""
        ref = runtime.spawn(Recorder, name="slow")
        with pytest.raises(AskTimeoutError, match="slow"):
            runtime.transport.ask(ref, Sleep(1.0), timeout=0.2)
        assert runtime.ask(ref, Append("after")) == 1

    def test_a_stopped_actor_refuses_requests(self, runtime: Runtime) -> None:
        """Asking a stopped actor raises at once instead of waiting for a timeout."""
        ref = runtime.spawn(Recorder, name="stopped")
        runtime.transport.stop(ref)
        with pytest.raises(ActorStoppedError, match="stopped"):
            runtime.ask(ref, GetValues())

    def test_names_are_unique(self, runtime: Runtime) -> None:
        """A second actor with a live actor's name is refused."""
        runtime.spawn(Recorder, name="unique")
        with pytest.raises(ValueError, match="already exists"):
            runtime.spawn(Recorder, name="unique")

    def test_a_failing_factory_is_reported(self, runtime: Runtime) -> None:
        """An actor that cannot start raises its error from spawn."""
        with pytest.raises(RuntimeError, match="cannot start"):
            runtime.spawn(BrokenAtStart, name="broken")


class TestStream:
    def test_items_of_several_calls_interleave_as_produced(self, runtime: Runtime) -> None:
        """Two actors streaming at once: items arrive while both still produce."""
        first = runtime.spawn(Recorder, name="first")
        second = runtime.spawn(Recorder, name="second")
        arrivals = []
        for ref, (index, produced_at) in runtime.transport.stream(
            [(first, Count(4, pause=0.1)), (second, Count(4, pause=0.1))], timeout=10
        ):
            arrivals.append((ref.name, index, time.time() - produced_at))
        assert [index for name, index, _ in arrivals if name == "first"] == [0, 1, 2, 3]
        assert [index for name, index, _ in arrivals if name == "second"] == [0, 1, 2, 3]
        names_in_first_half = {name for name, _, _ in arrivals[:4]}
        assert names_in_first_half == {"first", "second"}, "items were not interleaved"
        assert max(delay for _, _, delay in arrivals) < 0.09, "items waited for the end of the call"

    def test_an_error_ends_its_call_and_the_others_go_on(self, runtime: Runtime) -> None:
        """A streamed call that raises ends with CallFailed carrying that error; the other call finishes."""
        failing = runtime.spawn(Recorder, name="stream-fail")
        counting = runtime.spawn(Recorder, name="stream-count")
        items = list(runtime.transport.stream([(failing, Fail("mid-stream")), (counting, Count(3))], timeout=10))
        failed = [item for ref, item in items if ref.name == "stream-fail"]
        assert len(failed) == 1 and isinstance(failed[0], CallFailed)
        assert isinstance(failed[0].error, KeyError) and "mid-stream" in str(failed[0].error)
        assert [item[0] for ref, item in items if ref.name == "stream-count"] == [0, 1, 2]

    def test_a_silent_stream_times_out(self, runtime: Runtime) -> None:
        """No item within the timeout raises AskTimeoutError naming the actor."""
        ref = runtime.spawn(Recorder, name="silent")
        with pytest.raises(AskTimeoutError, match="silent"):
            list(runtime.transport.stream([(ref, Count(2, pause=1.0))], timeout=0.2))


class TestDeath:
    """An actor whose process is killed is reported dead, promptly, never left to a timeout."""

    @in_processes
    def test_asking_a_killed_actor_raises_actor_died(self, runtime: Runtime) -> None:
        ref = runtime.spawn(Recorder, name="doomed")
        assert ref.pid is not None and ref.pid != os.getpid()
        os.kill(ref.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(ActorDiedError, match="doomed"):
            runtime.transport.ask(ref, GetValues(), timeout=30)
        assert time.monotonic() - started < 10, "death was found by the timeout, not by looking"

    @in_processes
    def test_a_killed_streaming_actor_ends_its_call(self, runtime: Runtime) -> None:
        doomed = runtime.spawn(Recorder, name="doomed-streamer")
        other = runtime.spawn(Recorder, name="survivor")
        assert doomed.pid is not None
        items = []
        for ref, item in runtime.transport.stream([(doomed, Count(100, pause=0.05)), (other, Count(3))], timeout=30):
            if ref.name == "doomed-streamer" and ref.name not in {name for name, _ in items}:
                os.kill(doomed.pid, signal.SIGKILL)  # after its first item: mid-stream
            items.append((ref.name, item))
        assert len([name for name, _ in items if name == "doomed-streamer"]) < 100
        ends = [item for name, item in items if name == "doomed-streamer" and isinstance(item, CallFailed)]
        assert len(ends) == 1 and isinstance(ends[0].error, ActorDiedError)
        assert [item[0] for name, item in items if name == "survivor"] == [0, 1, 2]

    @in_processes
    def test_the_runtime_restarts_a_killed_actor_with_its_state(self, runtime: Runtime) -> None:
        """Through the runtime, a dead actor is restarted in a new process and its durable requests replayed."""
        ref = runtime.spawn(Recorder, name="phoenix")
        runtime.ask(ref, DurableAppend("kept"))
        runtime.ask(ref, Append("lost: not durable"))
        assert ref.pid is not None
        os.kill(ref.pid, signal.SIGKILL)
        assert runtime.ask(ref, GetValues()) == ["kept"]
        successor = runtime.supervisor.current("phoenix")
        assert successor.pid not in (None, ref.pid)
