"""The contract every transport meets, checked on each of them, inline included."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import signal
import traceback
import types
from pathlib import Path

import pytest

from actorsim import ActorDiedError, ActorStoppedError, AskTimeoutError, Runtime
from actorsim.transport import TRANSPORTS, CallFailed, Transport, load_transport_class
from tests.actors import (
    Append,
    BrokenAtStart,
    Count,
    DurableAppend,
    Fail,
    GetValues,
    Lockstep,
    Meet,
    Recorder,
    Sleep,
)
from tests.conftest import Spawn, every_transport, on_transports
from tests.gates import Barrier, Gate

in_processes = pytest.mark.parametrize("transport_name", ["thespian", "ray"], indirect=True)
"""Transports whose actors are processes of their own, which a test can kill."""


def where_raised(error: BaseException) -> str:
    """The error as a traceback shows it, notes included: where it was raised, in the actor or here."""
    return "".join(traceback.format_exception(error))


@every_transport
class TestInterface:
    def test_every_backend_subclasses_transport(self, transport: Transport, transport_name: str) -> None:
        """Each backend is a Transport, loaded by name as one, and names itself as it is loaded."""
        assert isinstance(transport, Transport)
        assert load_transport_class(transport_name) is type(transport)
        assert type(transport).name == transport_name


def test_a_module_without_a_transport_class_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_transport checks what it loads: a transport_class that is not a Transport is a TypeError."""
    fake = types.ModuleType("actorsim.transport._local")
    fake.transport_class = object  # type: ignore[attr-defined]
    monkeypatch.setattr("importlib.import_module", lambda name: fake)
    with pytest.raises(TypeError, match="must subclass Transport"):
        load_transport_class("local")


@every_transport
class TestAsk:
    def test_answers_come_back_in_the_order_sent(self, transport: Transport, spawn: Spawn) -> None:
        """Requests from one sender are handled in the order they were sent."""
        ref = spawn(Recorder, "recorder")
        for value in range(50):
            transport.ask(ref, Append(value), timeout=10)
        assert transport.ask(ref, GetValues(), timeout=10) == list(range(50))

    def test_factory_arguments_reach_the_behaviour(self, transport: Transport, spawn: Spawn) -> None:
        """The behaviour is built from its factory inside the actor."""
        ref = spawn(functools.partial(Recorder, ("a", "b")), "seeded")
        assert transport.ask(ref, Append("c"), timeout=10) == 3

    def test_the_actors_own_exception_is_raised(self, transport: Transport, spawn: Spawn) -> None:
        """An exception in the behaviour reaches the caller as itself, showing where the actor raised it, and the
        actor lives on."""
        ref = spawn(Recorder, "failing")
        with pytest.raises(KeyError, match="boom") as raised:
            transport.ask(ref, Fail("boom"), timeout=10)
        assert "in _fail" in where_raised(raised.value)
        assert transport.ask(ref, Append(1), timeout=10) == 1

    def test_a_stopped_actor_refuses_requests(self, transport: Transport, spawn: Spawn) -> None:
        """Asking a stopped actor raises at once instead of waiting for a timeout."""
        ref = spawn(Recorder, "stopped")
        transport.stop(ref)
        with pytest.raises(ActorStoppedError, match="stopped"):
            transport.ask(ref, GetValues(), timeout=10)

    def test_names_are_unique(self, spawn: Spawn) -> None:
        """A second actor with a live actor's name is refused."""
        spawn(Recorder, "unique")
        with pytest.raises(ValueError, match="already exists"):
            spawn(Recorder, "unique")

    def test_a_failing_factory_is_reported(self, spawn: Spawn) -> None:
        """An actor that cannot start raises its error from spawn."""
        with pytest.raises(RuntimeError, match="cannot start"):
            spawn(BrokenAtStart, "broken")


@on_transports(*TRANSPORTS)
class TestAskTimeout:
    """Inline runs an ask in the caller's own thread: nothing to time out."""

    def test_ask_times_out(self, transport: Transport, spawn: Spawn) -> None:
        """A slow actor gives AskTimeoutError, and its late answer is not taken for the next one."""
        ref = spawn(Recorder, "slow")
        with pytest.raises(AskTimeoutError, match="slow"):
            transport.ask(ref, Sleep(1.0), timeout=0.2)
        assert transport.ask(ref, Append("after"), timeout=10) == 1


class TestThreads:
    @on_transports("inline", "local", "ray")  # Thespian's calls take turns under the lock its docstring names
    def test_threads_ask_their_own_actors_at_once(self, transport: Transport, spawn: Spawn, tmp_path: Path) -> None:
        """Asks from several threads run at once: each actor answers only when all are in their behaviour together."""
        refs = [spawn(Recorder, f"meeting-{n}") for n in range(4)]
        barrier = Barrier(tmp_path, parties=len(refs), timeout=20)
        with concurrent.futures.ThreadPoolExecutor(len(refs)) as pool:
            answers = list(pool.map(lambda ref: transport.ask(ref, Meet(barrier), timeout=30), refs))
        assert answers == [0] * len(refs)

    @every_transport
    def test_threads_share_a_transport_safely(self, transport: Transport, spawn: Spawn) -> None:
        """Threads that spawn, ask and stop at once each get their own answers, on every transport."""

        def work(n: int) -> list[int]:
            ref = spawn(Recorder, f"worker-{n}")
            counts = [transport.ask(ref, Append(k), timeout=30) for k in range(10)]
            assert transport.ask(ref, GetValues(), timeout=30) == list(range(10))
            return counts

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert list(pool.map(work, range(4))) == [list(range(1, 11))] * 4

    @every_transport
    def test_the_streaming_thread_may_ask_mid_stream(self, transport: Transport, spawn: Spawn) -> None:
        """While a stream is open its own thread can ask another actor, as a step publishes replies."""
        streamer, recorder = spawn(Recorder, "streamer"), spawn(Recorder, "publisher")
        for _, (index, _) in transport.stream([(streamer, Count(3))], timeout=10):
            transport.ask(recorder, Append(index), timeout=10)
        assert transport.ask(recorder, GetValues(), timeout=10) == [0, 1, 2]


@every_transport
class TestStream:
    def test_items_of_several_calls_interleave_as_produced(
        self, transport: Transport, spawn: Spawn, tmp_path: Path
    ) -> None:
        """Two actors streaming at once: each item arrives while both still produce.

        Each actor makes item k only once the test has seen item k - 1 of both: items that waited
        for the end of their call would never arrive, and the gate would give up.
        """
        first, second = spawn(Recorder, "first"), spawn(Recorder, "second")
        gate = Gate(tmp_path, timeout=20)
        arrivals: list[tuple[str, int]] = []
        for ref, index in transport.stream([(first, Lockstep(4, gate)), (second, Lockstep(4, gate))], timeout=30):
            arrivals.append((ref.name, index))
            if sorted(arrivals[-2:]) == [("first", index), ("second", index)]:
                gate.open(index + 1)
        assert [index for name, index in arrivals if name == "first"] == [0, 1, 2, 3]
        assert [index for name, index in arrivals if name == "second"] == [0, 1, 2, 3]
        names_in_first_half = {name for name, _ in arrivals[:4]}
        assert names_in_first_half == {"first", "second"}, "items were not interleaved"

    def test_an_error_ends_its_call_and_the_others_go_on(self, transport: Transport, spawn: Spawn) -> None:
        """A streamed call that raises ends with CallFailed carrying that error; the other call finishes."""
        failing, counting = spawn(Recorder, "stream-fail"), spawn(Recorder, "stream-count")
        items = list(transport.stream([(failing, Fail("mid-stream")), (counting, Count(3))], timeout=10))
        failed = [item for ref, item in items if ref.name == "stream-fail"]
        assert len(failed) == 1 and isinstance(failed[0], CallFailed)
        assert isinstance(failed[0].error, KeyError) and "mid-stream" in str(failed[0].error)
        assert "in _fail" in where_raised(failed[0].error)
        assert [item[0] for ref, item in items if ref.name == "stream-count"] == [0, 1, 2]

    def test_a_silent_stream_times_out(self, transport: Transport, spawn: Spawn) -> None:
        """No item within the timeout raises AskTimeoutError naming the actor."""
        ref = spawn(Recorder, "silent")
        with pytest.raises(AskTimeoutError, match="silent"):
            list(transport.stream([(ref, Count(2, pause=1.0))], timeout=0.2))


class TestDeath:
    """An actor whose process is killed is reported dead, promptly, never left to a timeout."""

    @in_processes
    def test_asking_a_killed_actor_raises_actor_died(self, transport: Transport, spawn: Spawn) -> None:
        """Found by looking: the ask's own timeout (10 s) would raise AskTimeoutError instead."""
        ref = spawn(Recorder, "doomed")
        assert ref.pid is not None and ref.pid != os.getpid()
        os.kill(ref.pid, signal.SIGKILL)
        with pytest.raises(ActorDiedError, match="doomed"):
            transport.ask(ref, GetValues(), timeout=10)

    @in_processes
    def test_a_killed_streaming_actor_ends_its_call(self, transport: Transport, spawn: Spawn, tmp_path: Path) -> None:
        """Killed after its first item, while it waits for a gate that never opens: its call ends as dead."""
        doomed, other = spawn(Recorder, "doomed-streamer"), spawn(Recorder, "survivor")
        assert doomed.pid is not None
        never = Gate(tmp_path, timeout=60)
        items = []
        for ref, item in transport.stream([(doomed, Lockstep(100, never)), (other, Count(3))], timeout=30):
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

    @on_transports("ray")
    def test_an_answer_lost_with_its_node_is_the_actors_death(
        self, transport: Transport, spawn: Spawn, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ray may tell of a node's death as ObjectLostError (the answer was kept there): a death to restart from.

        Seen on a two-node cluster whose second node was SIGKILLed: an ask to
        the Environment there raised ObjectReconstructionFailedError, and the
        run ended instead of restarting the Environment.
        """
        import ray
        from ray.exceptions import ObjectReconstructionFailedError

        actor = spawn(Recorder, "faraway")

        def lost_with_its_node(*args: object, **kwargs: object) -> None:
            raise ObjectReconstructionFailedError("00" * 28)

        monkeypatch.setattr(ray, "get", lost_with_its_node)
        with pytest.raises(ActorDiedError, match="faraway"):
            transport.ask(actor, GetValues(), timeout=30)
