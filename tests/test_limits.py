"""Model-server limits: one per server for the whole run, backpressure from 429s, and a bound on poison steps."""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from actorsim import PoisonMessageError, RolePlay, Supervision, TaskCenter
from actorsim._core.context import stop_waits_with
from actorsim._errors import ActorStoppedError
from actorsim._runtime.limits import Limits
from actorsim._runtime.runtime import SLOW_START_CALLS
from actorsim.llm import ServerLimits
from actorsim.llm._gate import CallGates, Lease, ServerGate
from actorsim.llm._limiter import MINUTE_S, ServerLimiter
from actorsim.llm._limits import rate_spent, retry_after, seconds_in
from tests.conftest import Make
from tests.helpers import TASK, logged_events, of_kind, texts_by_role
from tests.openai_server import OpenAIServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **limits: int) -> ServerLimiter:
    return ServerLimiter(("http://server/v1", "m"), ServerLimits(**limits), clock)


class TestServerLimiter:
    def test_at_most_max_concurrency_hold_a_permit_and_the_queue_is_first_come_first_served(self) -> None:
        clock = Clock()
        server = limiter(clock, max_concurrency=2)
        assert [server.ask(name) for name in "abcd"] == [True, True, False, False]
        assert server.grant_due({"c", "d"}) == []
        server.release("a")
        assert server.grant_due({"c", "d"}) == ["c"]
        assert server.next_due() == math.inf, "d waits for a permit to come back, not for a time"
        server.release("b")
        server.release("c")
        assert server.grant_due({"d"}) == ["d"]
        assert server.most_in_flight == 2

    def test_requests_per_minute_hold_calls_until_the_minute_has_passed(self) -> None:
        clock = Clock()
        server = limiter(clock, requests_per_minute=2)
        assert [server.ask(name) for name in "abc"] == [True, True, False]
        server.release("a")
        server.release("b")
        assert server.grant_due({"c"}) == []
        assert server.next_due() == 1000.0 + MINUTE_S
        clock.now += MINUTE_S
        assert server.grant_due({"c"}) == ["c"]

    def test_tokens_per_minute_hold_calls_once_the_minute_used_them(self) -> None:
        clock = Clock()
        server = limiter(clock, tokens_per_minute=100)
        assert server.ask("a")
        server.release("a", tokens=120)
        assert not server.ask("b")
        clock.now += MINUTE_S
        assert server.grant_due({"b"}) == ["b"]

    def test_a_throttle_cuts_the_allowance_and_the_refused_calls_wait_out_retry_after_alone(self) -> None:
        """A burst's overflow refused by a full server: the refused calls wait their `Retry-After`, and the others
        go as the cut allowance has room, so the server is not left idle for it."""
        clock = Clock()
        server = limiter(clock)
        for name in "abcdef":
            assert server.ask(name), "no limit is known: all go"
        for name in "abc":
            server.admitted(name)  # streaming: the server took these
        assert server.throttled("d", retry_after=2.0)
        assert server.throttled("e", retry_after=2.0) is False or server.allowed == 3
        server.throttled("f", retry_after=2.0)
        assert server.allowed == 3, "cut to the calls the server was serving"
        for name in "def":
            assert not server.ask(name, wait_s=2.0), "each refused call asks again after its Retry-After"
        server.release("a")
        assert server.grant_due({"d", "e", "f"}) == [], "not before their Retry-After"
        assert server.ask("g"), "a call that was not refused goes as soon as the allowance has room"
        clock.now += 2.0
        assert server.grant_due({"d", "e", "f"}) == [], "their wait is over, but the allowance is full"
        server.release("b")
        assert server.grant_due({"d", "e", "f"}) == ["d"], "then as many as the allowance has room for"

    def test_retry_after_holds_every_call_when_the_servers_answer_is_for_all(self) -> None:
        """A 503, a rate spent, or a call refused again (`Throttled.pauses_server`): the whole server waits."""
        clock = Clock()
        server = limiter(clock)
        for name in "abc":
            assert server.ask(name)
        server.admitted("a")
        server.admitted("b")
        server.throttled("c", retry_after=2.0, pauses_server=True)
        server.release("b")
        assert server.allowed == 2 and server.in_flight == {"a"}
        assert not server.ask("d"), "Retry-After holds back every call of the server, though the allowance has room"
        assert server.next_due() == 1002.0
        clock.now += 2.0
        assert server.grant_due({"d"}) == ["d"]

    def test_the_allowance_rises_back_to_what_the_server_was_seen_to_serve_and_no_further(self) -> None:
        clock = Clock()
        server = limiter(clock)
        for name in "abcde":
            server.ask(name)
        server.admitted("a")
        server.throttled("e", None)
        assert (server.allowed, server.ceiling) == (1, 1), "serving 1 when it throttled, as far as anyone knows"
        server.admitted("b")
        server.admitted("c")
        assert (server.allowed, server.ceiling) == (3, 3), "3 stream at once: the server takes 3"
        for name in "abc":
            server.release(name)
        for n in range(10):
            assert server.ask(f"x{n}")
            server.release(f"x{n}")
        assert server.allowed == 3, "calls that succeed do not take it past what the server was seen to serve"
        server.release("d")
        clock.now += 2  # later, the server is busier: of 3 sent, 1 streams and 1 is refused
        for name in "stu":
            assert server.ask(name)
        server.admitted("s")
        server.throttled("u", None)
        assert (server.allowed, server.ceiling) == (1, 2), "at most the 2 left in flight, however many were seen"
        server.release("s")
        server.release("t")
        for n in range(4):
            assert server.ask(f"y{n}")
            server.release(f"y{n}")
        assert server.allowed == 2, "calls that succeed take it back up to the ceiling, and no further"
        clock.now += 31
        for n in range(4):
            server.ask(f"z{n}")
            server.release(f"z{n}")
        assert server.allowed == 3, "after a quiet half minute, one more is tried"


    def test_calls_heard_to_end_after_a_throttle_count_as_served_in_its_episode(self) -> None:
        """The driver hears of a hosted call's end late (its host's batch sends it on): a throttle heard after
        some calls have ended must not take them for calls the server refused."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=16)
        calls = [f"a{n}" for n in range(16)]
        assert all(server.ask(name) for name in calls)
        server.throttled("a0", None, in_place=True)
        assert server.ceiling == 15, "16 in flight, 1 refused"
        for name in calls[1:4]:  # these three were served: their ends come in before the next refusal is heard
            server.release(name)
        clock.now += 0.1
        server.throttled("a4", None, in_place=True)
        assert server.ceiling == 14, "of the 16 in flight when the server began to refuse, it refused 2"
        clock.now += 2  # a new episode: 13 in flight (a0 and a4 wait on their hosts with their permits), 1 refused
        server.throttled("a5", None, in_place=True)
        assert server.ceiling == 12

    def test_a_refusal_of_a_call_sent_after_the_episode_began_starts_another(self) -> None:
        clock = Clock()
        server = limiter(clock)
        assert all(server.ask(name) for name in "abcdef")
        for name in "abcdef":
            server.admitted(name)
        server.throttled("a", None)
        assert server.ceiling == 5
        for name in "bcdef":
            server.release(name)
        assert server.ask("g")
        server.admitted("g")
        clock.now += 0.1
        server.throttled("g", None)
        assert server.ceiling == 1, "g was the only call in flight when the server refused it"

    def test_refusals_of_hosted_calls_make_episodes_of_a_second_at_most(self) -> None:
        """Refusals heard 0.4 s apart: an episode a second, from the calls in flight at its first, not one
        episode kept open for ever."""
        clock = Clock()
        server = limiter(clock)
        assert all(server.ask(name) for name in "abcdef")
        for name in "abc":
            server.throttled(name, None, in_place=True)  # each waits on its host, keeping its permit
            clock.now += 0.4
        assert server.ceiling == 3, "of 6 in flight, 3 refused"
        server.release("d")
        server.throttled("e", None, in_place=True)
        assert server.ceiling == 4, "1.2 s on, another episode: of 5 in flight, 1 refused"

    def test_refusals_of_hosted_calls_riding_on_a_batchs_permits_count_in_the_episode(self) -> None:
        """A host runs more of its batch's steps than the permits it was lent (`Lease`): the driver names the
        permits' holders, not which steps the host runs, so a refused call may hold none of its own."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=8)
        assert all(server.ask(f"p{n}") for n in range(8))  # 8 permits, lent to hosts with riders r0, r1, ...
        server.throttled("r0", None, in_place=True)
        server.throttled("p3", None, in_place=True)
        clock.now += 0.1
        server.throttled("r1", None, in_place=True)
        assert server.ceiling == 5, "8 in flight when the server began to refuse, 3 refused"
        server.throttled("r1", None, in_place=True)
        assert server.ceiling == 7, "refused again: the server full again, of the 8 in flight 1 refused"

    def test_what_the_server_served_when_it_refused_is_counted_from_the_calls_times_once_all_are_heard(
        self
    ) -> None:
        """A first burst of 16 whose calls do not all reach the server at once: it refused 4 only, because 2
        came after others had ended. The episode's count says 12; the calls' own times say 10."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=16)
        calls = [f"a{n}" for n in range(16)]
        assert all(server.ask(name) for name in calls)
        for name in calls[:4]:  # refused at 100.010 s (wall clock), each try sent 1 ms before
            server.throttled(name, 1.0, in_place=True, window=(100.009, 100.010))
        assert server.ceiling == 12
        for n, name in enumerate(calls[4:14]):  # at the server when it refused: sent before, ended after
            server.served((100.0 + n / 1000, 100.06))
            server.release(name)
            server.admitted("a15")
            assert server.allowed is not None and server.allowed <= n + 1, (
                "while the count is open, no more than the calls heard to have been served then")
        assert server.ceiling == 12, "two steps still out may have had calls at the server then"
        server.served((100.0, 100.005))  # a14 ended before the refusals: not served at that time
        server.release("a14")
        server.served((100.02, 100.07))  # a15 reached the server after them
        assert server.release("a15"), "the allowance changed: logged as a cut"
        assert server.ceiling == 10 and server.allowed is not None and server.allowed <= 10
        for name in calls[:4]:  # the refused calls go again and are served, one at a time
            server.admitted(name)
        assert server.ceiling == 10, "calls seen streaming at once do not lift it past the count"
        clock.now += 1.0
        server.throttled("a0", 1.0, in_place=True, window=(101.5, 101.5))
        assert server.ceiling <= 10, "a later episode is held to the count too"

    def test_of_a_bursts_refusals_the_one_that_counts_fewest_calls_at_the_server_gives_its_limit(self) -> None:
        """A server full at 10 refuses 4 of a burst of 16 (the episode says 12). A call that ended at the server
        as the first refused try came is heard to end only after that try was sent: that refusal counts 11
        calls, the three after it 10."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=16)
        calls = [f"a{n}" for n in range(16)]
        assert all(server.ask(name) for name in calls)
        server.throttled("a0", 1.0, in_place=True, window=(100.0100, 100.0102))
        for name in calls[1:4]:
            server.throttled(name, 1.0, in_place=True, window=(100.0110, 100.0112))
        assert server.ceiling == 12
        server.served((99.95, 100.0105))  # a4 ended between the first refused try and the others
        server.release("a4")
        for n, name in enumerate(calls[5:15]):  # at the server at every refusal
            server.served((100.0 + n / 1000, 100.06))
            server.release(name)
        server.served((100.02, 100.07))  # a15 reached the server after them
        assert server.release("a15"), "the allowance changed: logged as a cut"
        assert server.ceiling == 10, "the refusals after the first count the ten the server holds"
        assert server.allowed is not None and server.allowed <= 10

    def test_once_the_refusals_are_counted_the_allowance_goes_to_the_count_at_once(self) -> None:
        """Hosted calls: the driver hears that they stream late, so the throttles cut the allowance to the one
        call heard streaming. Once the calls the server then served are counted (10), the allowance is 10, not
        a call more per allowance's worth of successes."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=16)
        calls = [f"a{n}" for n in range(16)]
        assert all(server.ask(name) for name in calls)
        server.admitted("a15")
        for name in calls[:6]:
            server.throttled(name, 1.0, in_place=True, window=(100.009, 100.010))
        assert server.allowed == 1
        for n, name in enumerate(calls[6:]):
            server.served((100.0 + n / 1000, 100.06))
            if name != "a15":
                assert not server.release(name), "a step that may have had a call at the server is not heard of yet"
        assert server.release("a15"), "the allowance changed: logged"
        assert (server.allowed, server.ceiling) == (10, 10)
        gate_share = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=4, rises_back=False)
        assert all(gate_share.ask(name) for name in "abcd")
        gate_share.admitted("d")
        gate_share.throttled("a", None, window=(100.009, 100.010))
        gate_share.served((100.0, 100.06))
        gate_share.release("d")
        assert gate_share.allowed == 1, "a limiter of a share of the calls keeps its cut"

    def test_a_refusal_while_nothing_was_served_bounds_nothing(self) -> None:
        """A refusal heard while the server served none of the run's calls was not for being full (a pause, a
        rate per minute): the count keeps to what the other refusals say."""
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=6)
        assert all(server.ask(name) for name in "abcdef")
        server.throttled("a", 1.0, in_place=True, window=(99.0, 99.001))
        server.throttled("b", 1.0, in_place=True, window=(100.0, 100.001))
        assert server.ceiling == 4, "6 in flight when the server began to refuse, 2 refused"
        for name in "cd":  # at the server when it refused b
            server.served((99.9, 100.1))
            server.release(name)
        for name in "ef":  # after
            server.served((100.2, 100.3))
            server.release(name)
        assert server.ceiling == 2

    def test_a_count_never_raises_what_the_server_was_found_to_take(self) -> None:
        clock = Clock()
        server = limiter(clock)
        assert all(server.ask(name) for name in "abc")
        for name in "abc":
            server.admitted(name)
        server.throttled("c", None, window=(100.0, 100.001))
        assert server.ceiling == 2
        for name in "ab":
            server.served((99.0, 101.0))
            server.served((99.5, 100.5))  # another of the step's calls: three in all counted
            assert not server.release(name)
        assert server.ceiling == 2

    def test_a_permit_passes_to_a_step_of_its_batch_before_any_waiting(self) -> None:
        clock = Clock()
        server = limiter(clock, max_concurrency=2)
        assert [server.ask(name) for name in ("a", "b", "c")] == [True, True, False]
        server.hand_over("a", "rider")
        assert server.in_flight == {"b", "rider"} and "c" in server.waiting
        server.throttled("rider", retry_after=1.0, in_place=True)
        server.hand_over("b", "other rider")
        assert server.in_flight == {"rider", "other rider"}, "its host goes on with what its batch was lent"
        assert server.grant_due({"c"}) == [], "the server asked for a pause: nothing new goes"

    def test_slow_start_lets_twice_as_many_go_each_round_until_the_server_throttles(self) -> None:
        clock = Clock()
        server = ServerLimiter(("http://server/v1", "m"), ServerLimits(), clock, slow_start=2)
        assert [server.ask(name) for name in "abc"] == [True, True, False]
        server.release("a")
        server.release("b")
        assert server.allowed == 4, "each call that succeeds lets one more go"
        assert server.grant_due({"c"}) == ["c"]
        server.admitted("c")
        assert server.ask("d")
        server.throttled("d", None)
        assert server.allowed == 1, "a throttle ends the slow start"
        assert ServerLimiter(("s", "m"), ServerLimits(max_concurrency=3), clock, slow_start=2).allowed == 3, (
            "a limit given is kept from the first call")


class TestRunLimits:
    """The run's limiters in the driver, as agents start and stop."""

    LLM = {"model_server": "openai", "model": "m", "api_base": "http://server/v1"}

    def test_a_stopped_agent_lets_its_permit_go_and_its_servers_limit_holds_for_the_others(self) -> None:
        limits = Limits(Clock())
        for agent in ("ann", "bob"):
            limits.register(agent, {**self.LLM, "max_concurrency": 1})
        assert limits.ask("ann") and not limits.ask("bob")
        limits.forget("ann")
        assert limits.grant_due({"bob"}) == ["bob"], "the stopped agent's permit came back"
        assert limits.server_of("ann") is None and limits.waiting() == 0
        with pytest.raises(ValueError, match="'cat' sets max_concurrency=2.*'ann' set max_concurrency=1"):
            limits.register("cat", {**self.LLM, "max_concurrency": 2})

    def test_a_server_no_agent_calls_any_more_is_forgotten_with_its_limits(self) -> None:
        limits = Limits(Clock())
        limits.register("ann", {**self.LLM, "max_concurrency": 1})
        assert limits.ask("ann")
        limits.forget("ann")
        limits.forget("ann")  # twice, or an agent of no server: nothing to do
        limits.forget("nobody")
        assert limits.servers() == []
        limits.register("bob", {**self.LLM, "max_concurrency": 2})
        assert [server.allowed for server in limits.servers()] == [2]
        assert limits.ask("bob")
        limits.release("ann")  # the stopped agent's step ends after all: bob's permit is not the one given back
        assert limits.servers()[0].in_flight == {"bob"}


class TestServerGate:
    """A host's gate: every try of its threads' calls to one server waits there for a place."""

    def test_a_throttle_holds_the_hosts_other_tries_until_a_place_comes_back(self) -> None:
        gate = ServerGate(("http://server/v1", "m"), ServerLimits())
        first, second, third = gate.enter(), gate.enter(), gate.enter()
        gate.admitted(first)
        gate.throttled(third, retry_after=None)
        assert gate.allowed == 1, "cut to the one try streaming"
        entered = threading.Event()
        waiting = threading.Thread(target=lambda: (gate.enter(), entered.set()))
        waiting.start()
        assert not entered.wait(0.2), "the server's place is taken: the try waits"
        gate.leave(second, succeeded=False)  # a try that failed otherwise: still one streaming, no room
        assert not entered.wait(0.2)
        gate.leave(first, succeeded=True)
        assert entered.wait(5), "a place came back: the first waiting try goes"
        waiting.join()

    def test_a_refused_try_waits_out_retry_after_alone_unless_the_server_pauses_every_try(self) -> None:
        gate = ServerGate(("http://server/v1", "m"), ServerLimits())
        first, second, refused = gate.enter(), gate.enter(), gate.enter()
        gate.admitted(first)
        gate.admitted(second)
        gate.throttled(refused, retry_after=30)
        assert gate.allowed == 2
        gate.leave(first, succeeded=True)
        gate.leave(gate.enter(), succeeded=True)  # at once: the server was full, not closed
        started = time.monotonic()
        gate.leave(gate.enter(wait_s=0.3), succeeded=True)
        assert time.monotonic() - started >= 0.25, "the refused call waited its own Retry-After"
        gate.throttled(second, retry_after=0.3, pauses_server=True)
        started = time.monotonic()
        gate.enter()
        assert time.monotonic() - started >= 0.25, "every try waited out the server's pause"

    def test_a_waiting_try_ends_when_its_host_stops(self) -> None:
        gate = ServerGate(("http://server/v1", "m"), ServerLimits(max_concurrency=1))
        gate.enter()
        stopping = threading.Event()
        failed: list[BaseException] = []

        def wait_then_fail() -> None:
            stop_waits_with(stopping)
            try:
                gate.enter()
            except ActorStoppedError as error:
                failed.append(error)

        waiter = threading.Thread(target=wait_then_fail)
        waiter.start()
        stopping.set()
        waiter.join(5)
        assert not waiter.is_alive() and failed, "the stop ended the wait with ActorStoppedError"

    def test_a_gate_left_idle_forgets_its_cut_and_keeps_a_limit_given(self) -> None:
        gate = pickle.loads(pickle.dumps(CallGates())).gate(("http://server/v1", "m"), ServerLimits(max_concurrency=5))
        first, second = gate.enter(), gate.enter()
        gate.throttled(second, retry_after=None)
        assert gate.allowed == 1
        gate.leave(first, succeeded=True)
        assert gate.allowed == 5, "its host's batch is over: the next starts from the limit given"

    def test_gates_no_agent_calls_through_are_forgotten_but_one_in_use_is_kept(self) -> None:
        gates = CallGates()  # the driver's process's, shared by its hosts: what a throttle teaches it keeps
        idle_key, busy_key = ("http://idle/v1", "m"), ("http://busy/v1", "m")
        idle, busy = gates.gate(idle_key, ServerLimits()), gates.gate(busy_key, ServerLimits())
        first, second = idle.enter(), idle.enter()
        idle.throttled(second, retry_after=None)
        idle.leave(first, succeeded=True)
        assert idle.allowed == 1 and idle.idle
        held = busy.enter()
        gates.forget_idle()
        assert gates.gate(busy_key, ServerLimits()) is busy, "a try is in flight: its gate stays"
        fresh = gates.gate(idle_key, ServerLimits())
        assert fresh is not idle and fresh.allowed is None, "the idle gate went with its cut"
        busy.leave(held, succeeded=True)

    def test_a_hosts_batches_each_keep_to_the_permits_lent_with_them(self) -> None:
        key = ("http://server/v1", "m")
        limits = ServerLimits(max_concurrency=5)
        gates = pickle.loads(pickle.dumps(CallGates()))  # a host's own, in its process
        first_batch, second_batch = Lease(key, 2, batch=1), Lease(key, 1, batch=2)
        one, two = gates.leased(first_batch), gates.leased(first_batch)  # two calls of the first batch
        other = gates.leased(second_batch)  # a call of a batch the host runs beside it
        gate = one.gate(key, limits)
        assert two.gate(key, limits) is gate and other.gate(key, limits) is not gate
        first, second = gate.enter(), gate.enter()
        assert other.gate(key, limits).enter(), "the other batch's permit is its own"
        entered = threading.Event()
        waiting = threading.Thread(target=lambda: (gate.leave(gate.enter(), succeeded=True), entered.set()))
        waiting.start()
        assert not entered.wait(0.2), "2 permits lent: a third try of the batch waits"
        gate.leave(first, succeeded=True)
        assert entered.wait(5), "one ended: the host starts the next itself"
        waiting.join()
        gate.leave(second, succeeded=True)
        one.done()
        two.done()
        assert gates.leased(first_batch).gate(key, limits) is not gate, "the lease's gate went with its last call"
        assert gates.gate(key, limits).allowed == 5, "a call lent nothing: the limit its agents give"
        shared = CallGates()  # the hosts of the driver's process: one gate sees every call, and keeps to its limit
        assert shared.leased(first_batch).gate(key, limits) is shared.gate(key, limits)
        assert shared.gate(key, limits).allowed == 5

    def test_a_pause_the_server_asks_of_one_batch_holds_the_hosts_other_calls(self) -> None:
        key = ("http://server/v1", "m")
        limits = ServerLimits(max_concurrency=5)
        gates = pickle.loads(pickle.dumps(CallGates()))
        unleased = gates.gate(key, limits)
        first, second = gates.leased(Lease(key, 2, batch=1)), gates.leased(Lease(key, 2, batch=2))
        refused = first.gate(key, limits).enter()
        first.gate(key, limits).throttled(refused, retry_after=30, pauses_server=True)
        for gate in (second.gate(key, limits), unleased):
            assert gate.paused_until == first.gate(key, limits).paused_until > time.monotonic() + 20

    def test_a_hosts_own_gate_stays_at_its_cut_where_a_gate_of_every_call_rises_back(self) -> None:
        """A host's own gate sees its share of the server's calls: the hosts' gates each rising back to what
        their share was seen to serve would together pass what the server takes. The driver's limiter, which
        hears every host, lends the rise with its batches."""
        for gates, rises_to in ((pickle.loads(pickle.dumps(CallGates())), 3), (CallGates(), 4)):
            gate = gates.gate(("http://server/v1", "m"), ServerLimits())
            tries = [gate.enter() for _ in range(5)]
            for ticket in tries[:4]:
                gate.admitted(ticket)  # 4 seen streaming at once
            gate.leave(tries[3], succeeded=True)
            later = gate.enter()
            gate.throttled(tries[4], retry_after=None)
            assert gate.allowed == 3, "cut to the 3 streaming"
            for ticket in tries[:3]:
                gate.leave(ticket, succeeded=True)
            assert gate.allowed == rises_to
            gate.leave(later, succeeded=True)

    def test_a_gate_that_sees_every_call_of_the_run_keeps_what_it_learnt(self) -> None:
        gate = CallGates().gate(("http://server/v1", "m"), ServerLimits())  # hosts in the driver's process share it
        first, second = gate.enter(), gate.enter()
        gate.admitted(first)
        gate.throttled(second, retry_after=None)
        gate.leave(first, succeeded=True)
        assert gate.allowed == 1, "its hosts' batches are over, but the server is the same for the next"


class TestServerHeaders:
    @pytest.mark.parametrize(
        ("text", "seconds"), [("2", 2.0), ("0.5", 0.5), ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("soon", None)]
    )
    def test_waits_as_servers_write_them(self, text: str, seconds: float | None) -> None:
        assert seconds_in(text) == seconds

    def test_a_rate_spent_is_a_pause_for_every_call(self) -> None:
        assert rate_spent({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "12"})
        assert not rate_spent({"x-ratelimit-remaining-requests": "1", "retry-after": "2"})
        assert not rate_spent({})

    def test_retry_after_first_then_an_exhausted_rate_limit_reset(self) -> None:
        assert retry_after({"retry-after": "3"}) == 3.0
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s",
                   "x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "9s"}
        assert retry_after(headers) == 1.5
        assert retry_after({}) is None


def server_llm(server: OpenAIServer, **options: Any) -> dict[str, Any]:
    return {"model_server": "openai", "model": "m", "api_base": server.api_base, "api_key": "k",
            "retry_initial_wait": 0.01, "retry_max_wait": 0.05, **options}


class TestLimitsInARun:
    def test_a_known_limit_holds_for_every_agent_of_the_run(self, make: Make, log_dir: Path) -> None:
        """12 agents, a server that takes 3 calls at once: none is refused, all answer once."""
        with OpenAIServer(["Up we go."], max_concurrency=3, call_seconds=0.05, keep_alive=True) as server:
            center = make(TaskCenter, "limited")
            roles = [f"bee_{n}" for n in range(12)]
            center.add_agents([make(RolePlay, role, llm=server_llm(server, max_concurrency=3)) for role in roles])
            center.send_task_request(TASK)
            before = center.runtime.model_traffic()
            frames, seen = [], []
            for frame in center.step():
                frames.append(frame)
                seen.append(center.runtime.model_traffic())
            assert texts_by_role(frames) == dict.fromkeys(roles, "Up we go.")
        assert server.throttled_at == [] and server.most_in_flight <= 3
        # What a progress line shows: calls in flight and waiting as the step goes, tokens once it is done.
        assert all(traffic.in_flight <= 3 for traffic in seen) and seen[0].waiting >= 1
        after = center.runtime.model_traffic()
        assert (after.in_flight, after.waiting, after.tokens - before.tokens) == (0, 0, 12 * (7 + 3))
        assert f"{seen[0].in_flight} model call" in str(seen[0]) and "tokens" in str(seen[0])
        assert len(server.requests) == 12
        assert [m.sent_from for m in center.environment.history()].count("bee_0") == 1

    def test_an_unknown_limit_is_learnt_from_429s_without_a_crash(
        self, make: Make, log_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The server's limit unknown to the run: its 429s slow every agent's calls, none crashes, all answer once."""
        with logged_events(log_dir) as events, caplog.at_level(logging.WARNING, logger="actorsim"), OpenAIServer(
            ["Up we go."], max_concurrency=2, retry_after="0.1", call_seconds=0.05, keep_alive=True
        ) as server:
            center = make(TaskCenter, "learning")
            roles = [f"ant_{n}" for n in range(10)]
            center.add_agents([make(RolePlay, role, llm=server_llm(server, max_attempts=20)) for role in roles])
            center.send_task_request(TASK)
            assert texts_by_role(center.step()) == dict.fromkeys(roles, "Up we go.")
        assert server.throttled_at, "the server did refuse calls"
        assert of_kind(events, "actor.crashed") == [], "a throttled call waits; it is no failure"
        replies = [m for m in center.environment.history() if m.sent_from in roles]
        assert sorted(m.sent_from for m in replies) == sorted(roles)
        throttled = of_kind(events, "llm.call.throttled")
        assert throttled and all(e["status"] == 429 and e["retry_after_s"] == 0.1 for e in throttled)
        cuts = of_kind(events, "llm.limit.cut")
        assert cuts and cuts[-1]["allowed"] <= 2
        said = [r.getMessage() for r in caplog.records]
        shown = [line for line in said if "answered 429 Too Many Requests; retry" in line]
        assert 1 <= len(shown) < len(throttled), "a few notices a second for the server, not one per throttled call"
        assert any("their notices are held back for a second" in line for line in said)
        assert any(f"model server at {server.api_base.rstrip('/')} (m): at most" in line for line in said)

    def test_different_limits_for_one_server_are_refused_naming_both_agents(self, make: Make) -> None:
        with OpenAIServer(["x"]) as server:
            center = make(TaskCenter, "clash")
            first = make(RolePlay, "ann", llm=server_llm(server, max_concurrency=4))
            with pytest.raises(ValueError, match="'bob' sets max_concurrency=8.*'ann' set max_concurrency=4"):
                center.add_agents([first, make(RolePlay, "bob", llm=server_llm(server, max_concurrency=8))])

    def test_a_closed_centers_agents_take_their_limits_with_them(self, make: Make) -> None:
        """One run, two task centers in turn calling one server: the second's agents give it another limit,
        and that one holds."""
        with OpenAIServer(["Up we go."], max_concurrency=3, call_seconds=0.05, keep_alive=True) as server:
            first = make(TaskCenter, "before")
            first.add_agents([make(RolePlay, "ann", llm=server_llm(server, max_concurrency=1))])
            first.send_task_request(TASK)
            assert texts_by_role(list(first.step())) == {"ann": "Up we go."}
            first.close()
            second = make(TaskCenter, "after")
            roles = [f"bee_{n}" for n in range(6)]
            second.add_agents([make(RolePlay, role, llm=server_llm(server, max_concurrency=3)) for role in roles])
            second.send_task_request(TASK)
            assert texts_by_role(list(second.step())) == dict.fromkeys(roles, "Up we go.")
        assert server.throttled_at == [] and server.most_in_flight <= 3

    def test_limits_are_checked_and_a_scripted_model_has_none(self, make: Make) -> None:
        with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
            make(RolePlay, "ann", llm={"model_server": "openai", "model": "m", "max_concurrency": 0})
        with pytest.raises(ValueError, match="'scripted' has none"):
            make(RolePlay, "ann", llm={"model_server": "scripted", "replies": ["x"], "requests_per_minute": 10})


def test_a_server_that_always_throttles_ends_the_step_in_bounded_time(make: Make, log_dir: Path) -> None:
    """429 for ever: each delivery's call gives up after its tries, and after `max_deliveries` the step's
    message is a dead letter; the other agent answers, and the step raises `PoisonMessageError`."""
    with logged_events(log_dir) as events, OpenAIServer(["never"], throttle_always=True) as server, \
            OpenAIServer(["Fine here."]) as healthy:
        center = make(TaskCenter, "stormy")
        policy = Supervision(max_deliveries=2, backoff_initial=0.01, backoff_jitter=0.0)
        center.add_agents([
            make(RolePlay, "ann", llm=server_llm(server, max_attempts=3), supervision=policy),
            make(RolePlay, "bob", llm=server_llm(healthy)),
        ])
        task = center.send_task_request(TASK)
        frames: list[Any] = []
        with pytest.raises(PoisonMessageError, match="'ann' crashed on each of 2 deliveries"):
            frames.extend(center.step())
        assert texts_by_role(frames) == {"bob": "Fine here."}
    assert len(server.statuses) == 2 * 3 and set(server.statuses) == {429}
    [letter] = center.environment.dead_letters()
    assert (letter.message.message_id, letter.role) == (task.message_id, "ann")
    assert len(of_kind(events, "actor.crashed")) == 2


@pytest.mark.parametrize("hosted_mode", ["thespian", "ray"], indirect=True)
def test_a_host_killed_while_its_agents_hold_permits_loses_none(make_hosted: Make, log_dir: Path) -> None:
    """Agents on hosts, two permits for the server: a host SIGKILLed mid-call. Its agents are restarted and
    answer once; no permit is lost (the next step, needing every permit, goes through) and none is doubled."""
    with logged_events(log_dir) as events, OpenAIServer(["Up we go."], call_seconds=0.3, keep_alive=True) as server:
        center = make_hosted(TaskCenter, "hosted_limits")
        roles = [f"wasp_{n}" for n in range(6)]
        policy = Supervision(backoff_initial=0.01, backoff_jitter=0.0)
        center.add_agents([make_hosted(RolePlay, role, llm=server_llm(server, max_concurrency=2),
                                       supervision=policy) for role in roles])
        limiter = center.runtime.limits.server_of("wasp_0")
        assert limiter is not None
        center.send_task_request(TASK)
        frames = []
        killed = None
        for frame in center.step():
            frames.append(frame)
            if killed is None:  # the first words are streaming: permits are held
                holder = next(iter(limiter.in_flight))
                killed = center.runtime.supervisor.current(holder).pid
                assert killed is not None
                os.kill(killed, signal.SIGKILL)
        assert texts_by_role(frames) == dict.fromkeys(roles, "Up we go.")
        assert limiter.in_flight == set() and limiter.waiting == {}, "every permit came back"
        assert limiter.most_in_flight <= 2
        center.send_task_request("Again?")
        assert texts_by_role(center.step()) == dict.fromkeys(roles, "Up we go.")
    assert of_kind(events, "actor.restarted"), "the killed host's agents were restarted"
    replies = [m.sent_from for m in center.environment.history() if m.sent_from in roles]
    assert sorted(replies) == sorted(roles * 2), "each agent answered each step once"


@pytest.mark.parametrize("hosted_mode", ["local", "thespian"], indirect=True)
def test_hosted_agents_wait_out_a_throttle_on_their_host(make_hosted: Make, log_dir: Path) -> None:
    """On hosts (one batch at a time each), a throttled call waits where it is, keeping its permit, rather than
    pausing for a new request that would queue behind its host's batch: all answer once, none crashes."""
    with logged_events(log_dir) as events, OpenAIServer(
        ["Up we go."], max_concurrency=2, retry_after="0.1", call_seconds=0.05, keep_alive=True
    ) as server:
        center = make_hosted(TaskCenter, "hosted_throttled")
        roles = [f"moth_{n}" for n in range(10)]
        center.add_agents([make_hosted(RolePlay, role, llm=server_llm(server, max_attempts=30)) for role in roles])
        center.send_task_request(TASK)
        assert texts_by_role(center.step()) == dict.fromkeys(roles, "Up we go.")
    assert server.throttled_at and server.most_in_flight <= 2
    assert of_kind(events, "actor.crashed") == []
    assert {e["status"] for e in of_kind(events, "llm.call.retry")} == {429}
    assert of_kind(events, "llm.limit.cut"), "the run learnt the server's limit for its next deliveries"


@pytest.mark.parametrize("hosted_mode", ["local", "thespian", "ray"], indirect=True)
def test_hosts_run_more_steps_than_permits_lent_and_keep_the_servers_limit(make_hosted: Make, log_dir: Path) -> None:
    """48 agents on hosts, a server that takes 3 calls at once, its limit given: each host goes with several steps
    on each permit it is lent, the next starting on its host as one ends. The server never sees more than 3 at
    once, none is refused, each agent answers once, and progress counts the steps on hosts as queued."""
    with logged_events(log_dir) as events, OpenAIServer(
        ["Up we go."], max_concurrency=3, call_seconds=0.02, keep_alive=True
    ) as server:
        center = make_hosted(TaskCenter, "leased")
        roles = [f"gnat_{n}" for n in range(48)]
        center.add_agents([make_hosted(RolePlay, role, llm=server_llm(server, max_concurrency=3)) for role in roles])
        center.send_task_request(TASK)
        frames, seen = [], []
        for frame in center.step():
            frames.append(frame)
            seen.append(center.runtime.model_traffic())
        assert texts_by_role(frames) == dict.fromkeys(roles, "Up we go.")
    assert server.throttled_at == [] and server.most_in_flight <= 3 and len(server.requests) == 48
    lent = of_kind(events, "llm.limit.lent")
    assert sum(event["steps"] for event in lent) <= 48 and any(event["steps"] > event["permits"] for event in lent)
    assert all(event["permits"] <= 3 for event in lent)
    assert seen[0].in_flight <= 3 and seen[0].in_flight + seen[0].waiting == 48, "none answered at the first words"
    replies = [m.sent_from for m in center.environment.history() if m.sent_from in roles]
    assert sorted(replies) == sorted(roles)


@pytest.mark.parametrize("hosted_mode", ["local", "thespian", "ray"], indirect=True)
def test_hosted_agents_learn_an_unknown_limit_from_the_first_round_of_429s(make_hosted: Make, log_dir: Path) -> None:
    """A server full at 4 calls, its limit not given: the run's first calls find it (slow start), the hosts'
    gates hold their throttled calls, and the calls after keep under it: no more 429s than that first round."""
    with OpenAIServer(
        ["Up we go."], max_concurrency=4, retry_after="0.2", call_seconds=0.05, keep_alive=True
    ) as server:
        center = make_hosted(TaskCenter, "hosted_unknown")
        roles = [f"mite_{n}" for n in range(60)]
        center.add_agents([make_hosted(RolePlay, role, llm=server_llm(server, max_attempts=30)) for role in roles])
        center.send_task_request(TASK)
        assert texts_by_role(center.step()) == dict.fromkeys(roles, "Up we go.")
    assert server.throttled_at, "the server was found full"
    assert len(server.throttled_at) <= SLOW_START_CALLS, (
        f"{len(server.throttled_at)} calls refused: after the first round, calls kept to what the server takes")
