"""The contract every transport meets, checked on each of them."""

from __future__ import annotations

import functools
import time

import pytest

from actorsim import ActorStoppedError, AskTimeoutError, Runtime
from tests.actors import Append, BrokenAtStart, Count, Fail, GetValues, Recorder, Sleep


class TestAsk:
    def test_answers_come_back_in_the_order_sent(self, runtime: Runtime) -> None:
        """Requests from one sender are handled in the order they were sent."""
        ref = runtime.spawn(Recorder, name="recorder")
        for value in range(50):
            runtime.transport.tell(ref, Append(value))
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

    def test_an_error_ends_the_stream(self, runtime: Runtime) -> None:
        """A streamed call that raises ends the stream with that error."""
        ref = runtime.spawn(Recorder, name="stream-fail")
        with pytest.raises(KeyError, match="mid-stream"):
            list(runtime.transport.stream([(ref, Fail("mid-stream"))], timeout=10))

    def test_a_silent_stream_times_out(self, runtime: Runtime) -> None:
        """No item within the timeout raises AskTimeoutError naming the actor."""
        ref = runtime.spawn(Recorder, name="silent")
        with pytest.raises(AskTimeoutError, match="silent"):
            list(runtime.transport.stream([(ref, Count(2, pause=1.0))], timeout=0.2))
