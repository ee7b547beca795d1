"""Hosted agents: many agents to a host process keep every guarantee of an actor each."""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorsim import ActorDiedError, Message, RolePlay, RoundRobin, Supervision, TaskCenter
from actorsim._core.ref import ActorRef
from actorsim._core.supervision import Frozen
from actorsim._protocol.environment import Restore
from actorsim._runtime.supervisor import COMPACT_EVERY
from actorsim.runs import read_run
from actorsim.transport import CallFailed, Transport
from actorsim.transport._base import Calls
from actorsim.transport._host import Hosted, RunBatch
from actorsim.transport._hosted import ADD_BATCH, BATCH_CALLS, HostedTransport
from tests.actors import Append, Count, Fail, GetValues, Lockstep, Recorder, UnstartableAgent
from tests.conftest import HOSTS, Make, on_transports
from tests.gates import Gate
from tests.helpers import (
    TASK,
    CountingTransport,
    alive,
    logged_events,
    of_kind,
    scripted,
    texts_by_role,
    wait_until_gone,
)
from tests.openai_server import OpenAIServer

in_processes = pytest.mark.parametrize("hosted_mode", ["thespian", "ray"], indirect=True)


def shape(history: list[Message]) -> list[tuple[Any, ...]]:
    """A history without its ids: parents given by their place in it. Two runs of one script compare equal."""
    place = {message.message_id: index for index, message in enumerate(history)}
    return [
        (m.sent_from, m.send_to, m.content, m.step, m.round, tuple(place[p] for p in m.parent_ids)) for m in history
    ]


def swarm(make: Make, count: int, rounds: int, kill_every: int | None = None) -> tuple[TaskCenter, dict[str, Any], int]:
    """`count` agents pass the task round-robin for `rounds` steps; with `kill_every`, a host is SIGKILLed
    every `kill_every` frames. Returns the task center, the agents and how many hosts were killed."""
    task_center = make(TaskCenter, "swarm")
    policy = Supervision(max_restarts=20, within=60, backoff_initial=0.01, backoff_jitter=0.0)
    agents = {
        f"bee_{n}": make(
            RolePlay, f"bee_{n}", supervision=policy, send_to=RoundRobin("bees", start="first"), group="bees",
            llm=scripted(*(f"bee_{n} hop {k}" for k in range(rounds)), chunk_latency=0.001),
        )
        for n in range(count)
    }
    task_center.add_agents(list(agents.values()))
    for _ in range(count):
        task_center.send_task_request(TASK, send_to=RoundRobin("bees", start="first"))
    killed = 0
    chooser = random.Random(3)
    for _ in range(rounds):
        for frames, _frame in enumerate(task_center.step(), start=1):
            if kill_every is not None and frames % kill_every == 0:
                transport = task_center.runtime.transport
                assert isinstance(transport, HostedTransport)
                pid = chooser.choice(transport.hosts).pid
                if pid is not None and alive(pid):
                    os.kill(pid, signal.SIGKILL)
                    assert not wait_until_gone([pid], timeout=10)
                    killed += 1
    return task_center, agents, killed


def plain(cls: type, name: str, **options: Any) -> Any:
    return cls(name=name, log_dir=None) if cls is TaskCenter else cls(name=name, **options)


def test_hosted_agents_answer_as_plain_ones_do(make_hosted: Make, hosted_mode: str) -> None:
    """Every agent answers each step; the history and memories equal a plain run's; agents share the hosts."""
    task_center, agents, _ = swarm(make_hosted, 12, rounds=3)
    calm, calm_agents, _ = swarm(plain, 12, rounds=3)
    history = task_center.environment.history()
    assert shape(history) == shape(calm.environment.history())
    assert len({m.message_id for m in history}) == len(history) == 12 + 3 * 12
    assert {n: a.get_history() for n, a in agents.items()} == {n: a.get_history() for n, a in calm_agents.items()}
    pids = {agent.ref.pid for agent in agents.values()}
    if hosted_mode != "local":
        assert len(pids) == HOSTS and os.getpid() not in pids


def test_model_calls_in_one_host_do_not_wait_for_each_other(make_hosted: Make, log_dir: Path) -> None:
    """Every slow model call of a step starts before the first of them finishes."""
    with logged_events(log_dir) as events:
        task_center = make_hosted(TaskCenter, "slow")
        agents = [make_hosted(RolePlay, f"slow_{n}", llm=scripted("done", reply_latency=0.3)) for n in range(12)]
        task_center.add_agents(agents)
        task_center.send_task_request(TASK)
        list(task_center.step())
    started = [e["ts"] for e in of_kind(events, "llm.call.started")]
    finished = [e["ts"] for e in of_kind(events, "llm.call.finished")]
    assert len(started) == len(finished) == 12
    assert max(started) < min(finished)


def test_each_agent_says_which_host_holds_it_and_hosts_log_under_their_own_name(
    make_hosted: Make, hosted_mode: str
) -> None:
    """A hosted agent's `actor.started` names its host (`hosted_by`), which started as a `Host`; in a process of
    its own the host's log file is `host-<n>-<pid>.jsonl`, holding its agents' events, never named after one."""
    task_center = make_hosted(TaskCenter, "named")
    agents = [make_hosted(RolePlay, f"guest_{n}", llm=scripted("hello")) for n in range(7)]
    task_center.add_agents(agents)
    task_center.send_task_request(TASK)
    assert texts_by_role(task_center.step()) == {f"guest_{n}": "hello" for n in range(7)}
    directory = task_center.runtime.log_config.directory
    started = read_run(directory).of_type("actor.started")
    hosts = {e["actor"]: e for e in started if e["behaviour"] == "Host"}
    guests = {e["actor"]: e for e in started if e["actor"].startswith("guest_")}
    assert sorted(guests) == sorted(agent.name for agent in agents)
    assert {e["behaviour"] for e in guests.values()} == {"AgentBehaviour"}
    assert {e["hosted_by"] for e in guests.values()} <= set(hosts)
    assert len({e["hosted_by"] for e in guests.values()}) == HOSTS  # agents spread over every host
    for agent in agents:
        held_by = hosts[guests[agent.name]["hosted_by"]]
        assert guests[agent.name]["pid"] == held_by["pid"] == agent.ref.pid
        if hosted_mode != "local":  # in-process hosts write to the driver's file
            slot = held_by["actor"].split(".")[0]
            assert guests[agent.name]["process"] == held_by["process"] == slot
            assert (directory / f"{slot}-{held_by['pid']}.jsonl").exists()
    assert not any(path.name.startswith("guest_") for path in directory.glob("*.jsonl"))


def test_streams_reset_mid_reply_in_a_shared_pool_are_each_asked_again(
    make_hosted: Make, log_dir: Path
) -> None:
    """The agents of a host share one HTTP pool per server. When the server resets each agent's stream mid-reply,
    every agent asks again and finishes its reply; the pool is not poisoned: the next step's calls all succeed at
    their first try, on connections kept alive from the one before."""
    reply = "We go by rocket, all of us together."
    agents = 3 * HOSTS  # several to a host
    with OpenAIServer([reply], keep_alive=True, reset_first_after=2) as server, logged_events(log_dir) as events:
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "retry_initial_wait": 0.01}
        task_center = make_hosted(TaskCenter, "pooled")
        task_center.add_agents([make_hosted(RolePlay, f"caller_{n}", llm=llm) for n in range(agents)])
        task_center.send_task_request(TASK)
        first = texts_by_role(task_center.step())
        server.reset_first_after = None  # the next step is served whole
        reset_and_retried = list(server.connections)
        second = texts_by_role(task_center.step())
    assert first == second == {f"caller_{n}": reply for n in range(agents)}
    retries = of_kind(events, "llm.call.retry")
    assert sorted(e["role"] for e in retries) == sorted(f"caller_{n}" for n in range(agents))  # one each
    assert len(server.requests) == 3 * agents  # reset, asked again, and the next step's: no other try
    # The next step opens a connection only where more calls run at once than the pool keeps idle.
    assert set(server.connections[len(reset_and_retried):]) & set(reset_and_retried[agents:])


@in_processes
def test_chaos_hosts_killed_mid_run_leave_no_trace(make_hosted: Make, log_dir: Path) -> None:
    """Hosts SIGKILLed during a run: every message answered once, history and memories equal a calm run's."""
    with logged_events(log_dir) as events:
        task_center, agents, killed = swarm(make_hosted, 60, rounds=4, kill_every=90)
        history = task_center.environment.history()
        memories = {name: agent.get_history() for name, agent in agents.items()}
    calm, calm_agents, _ = swarm(plain, 60, rounds=4)
    assert killed >= 2
    assert shape(history) == shape(calm.environment.history())
    assert len({m.message_id for m in history}) == len(history) == 60 + 4 * 60
    assert memories == {name: agent.get_history() for name, agent in calm_agents.items()}
    restarted = {e["actor"] for e in of_kind(events, "actor.restarted")}
    assert len(restarted) >= killed  # each killed host took at least one agent down, and each came back


@pytest.mark.parametrize("mode", ["local", "thespian"], indirect=True)
def test_a_long_run_restarts_its_environment_from_a_snapshot(make: Make, log_dir: Path) -> None:
    """After thousands of messages a restarted Environment replays one snapshot and a short tail, nothing lost."""
    task_center = make(TaskCenter, "long")
    task_center.add_agents([make(RolePlay, "reader", llm=scripted("read"))])
    for n in range(2 * COMPACT_EVERY + 300):
        task_center.send_task_request(f"task {n}")
    name = "long/environment"
    supervisor = task_center.runtime.supervisor
    journal = supervisor._children[name].journal
    assert len(journal) <= COMPACT_EVERY and isinstance(journal[0], Frozen) and isinstance(journal[0].thaw(), Restore)
    history = task_center.environment.history()
    with logged_events(log_dir) as events:
        supervisor.crashed(supervisor.current(name), RuntimeError("test crash"))
    [restarted] = of_kind(events, "actor.restarted")
    assert restarted["replayed"] == len(journal) <= COMPACT_EVERY
    assert task_center.environment.history() == history
    assert len(task_center.environment.pending("reader")) == len(history)
    assert texts_by_role(task_center.step()) == {"reader": "read"}


@contextlib.contextmanager
def recorders_on_hosts(
    transport: Transport, *, hosts: int, names: Iterable[str]
) -> Iterator[tuple[HostedTransport, list[ActorRef]]]:
    """A `Recorder` of each name on `hosts` hosts of `transport`; they, and the hosts, are stopped afterwards (the
    session's transport goes on, and the hosts' names must be free again)."""
    hosted = HostedTransport(transport, hosts=hosts)
    refs = [hosted.spawn(Hosted(Recorder), name=name, timeout=60) for name in names]
    try:
        yield hosted, refs
    finally:
        for ref in refs:
            hosted.stop(ref)
        for host in hosted.hosts:
            transport.stop(host)


def every_item(calls: Calls) -> Iterator[tuple[ActorRef, Any]]:
    """The items of `calls` until every call has ended; none may keep 30 s without an item."""
    while calls.open:
        got = calls.next(timeout=30)
        if got is None:  # every call has ended, or none sent anything within 30 s
            assert not calls.open, f"calls still open after 30 s without an item: {calls.open}"
            return
        yield got


@on_transports("local", "thespian", "ray")
def test_a_host_runs_a_batch_sent_while_its_first_still_streams(transport: Transport, tmp_path: Path) -> None:
    """A second batch to a busy host (a step let go as a permit came back, a redelivery) streams beside the
    first: it does not wait for all of the first to end, as it would in a host that took one request at a time."""
    gate, opened = Gate(tmp_path, timeout=60), Gate(tmp_path / "open", timeout=60)
    with recorders_on_hosts(transport, hosts=1, names=["guest-1", "guest-2"]) as (hosted, [first, second]), \
            hosted.open_calls() as calls:
        calls.add(first, Lockstep(3, gate))
        assert calls.next(timeout=30) == (first, 0)  # the first batch streams, and waits at gate 1
        calls.add(second, Lockstep(2, opened))
        opened.folder.mkdir()
        for number in (1, 2):
            opened.open(number)
        got = [calls.next(timeout=30), calls.next(timeout=30)]
        assert got == [(second, 0), (second, 1)], "the second batch answered while the first waits"
        for number in (1, 2):
            gate.open(number)
        assert [calls.next(timeout=30) for _ in range(2)] == [(first, 1), (first, 2)]
        assert calls.next(timeout=5) is None and not calls.open


@on_transports("thespian", "ray")
def test_a_killed_host_ends_every_batch_sent_to_it(transport: Transport, tmp_path: Path) -> None:
    """Two batches open on one host (the second sent mid-stream, as a redelivery is): a kill ends both calls,
    not the step's timeout."""
    never = Gate(tmp_path, timeout=60)
    with recorders_on_hosts(transport, hosts=1, names=["guest-1", "guest-2"]) as (hosted, [first, second]):
        with hosted.open_calls() as calls:
            calls.add(first, Lockstep(100, never))
            assert calls.next(timeout=30) == (first, 0)  # sent as one batch
            calls.add(second, Lockstep(100, never))  # a second batch, beside the first on one host
            assert first.pid is not None and first.pid == second.pid
            os.kill(first.pid, signal.SIGKILL)
            ends = {ref.name: item.error for ref, item in every_item(calls) if isinstance(item, CallFailed)}
        assert {name: type(error) for name, error in ends.items()} == {
            "guest-1": ActorDiedError, "guest-2": ActorDiedError
        }


def test_a_hosted_agent_that_cannot_start_is_refused_by_add_agents(make_hosted: Make) -> None:
    """Hosted agents start in batches, so a constructor's error comes at the agent's first use: `add_agents`
    raises it, naming the agent, and adds none of the batch; the agents started with it work."""
    task_center = make_hosted(TaskCenter, "starting")
    good = [make_hosted(RolePlay, f"good_{n}", llm=scripted(f"fine {n}")) for n in range(5)]
    broken = make_hosted(UnstartableAgent, "broken", llm=scripted("never"))
    with pytest.raises(RuntimeError, match="broken cannot start") as caught:
        task_center.add_agents([*good, broken])
    assert any("starting agent 'broken'" in note for note in caught.value.__notes__)
    assert task_center.roles == []
    task_center.add_agents(good)
    task_center.send_task_request(TASK)
    assert texts_by_role(task_center.step()) == {f"good_{n}": f"fine {n}" for n in range(5)}


@on_transports("local", "thespian", "ray")
def test_hundreds_of_hosted_agents_start_and_answer_with_a_few_requests_per_host(transport: Transport) -> None:
    """Agents go to their host in batches and asks to many go together: answers in order, an agent's error in
    its answer's place, the others unaffected."""
    counting = CountingTransport(transport)
    guests = (f"guest-{n}" for n in range(600))
    with recorders_on_hosts(counting, hosts=2, names=guests) as (hosted, refs):
        answers = hosted.ask_many(
            [(ref, Append(ref.name)) for ref in refs] + [(refs[7], Fail("no")), (refs[7], GetValues())], timeout=60
        )
        assert answers[:600] == [1] * 600
        assert isinstance(answers[600], KeyError) and answers[600].args == ("no",)
        assert answers[601] == [refs[7].name]
        assert len(hosted.hosts) == 2
        # Two hosts started, 300 agents each sent in batches of at most ADD_BATCH, one ask per host.
        assert counting.requests.count("spawn") == 2
        assert counting.requests.count("AddAgents") == 2 * math.ceil(300 / ADD_BATCH) > 2
        assert counting.requests.count("ToAgents") == 2


@on_transports("local", "thespian", "ray")
def test_a_host_given_hundreds_of_calls_at_once_gets_them_in_batches_and_answers_each(transport: Transport) -> None:
    """Hundreds of calls to a host at once (a step lent its permits in one go) go in batches of at most
    `BATCH_CALLS`, not as one message of all: every call streams its items in order and ends once."""
    counting = CountingTransport(transport)
    guests = (f"guest-{n}" for n in range(300))
    with recorders_on_hosts(counting, hosts=2, names=guests) as (hosted, refs):
        streamed: dict[str, list[int]] = {ref.name: [] for ref in refs}
        with hosted.open_calls() as calls:
            for ref in refs:
                calls.add(ref, Count(3))
            for ref, item in every_item(calls):
                assert not isinstance(item, CallFailed), item
                streamed[ref.name].append(item[0])
        assert streamed == {ref.name: [0, 1, 2] for ref in refs}
        sizes = [len(batch.calls) for batch in counting.streamed if isinstance(batch, RunBatch)]
        assert sum(sizes) == 300 and max(sizes) <= BATCH_CALLS
        assert len(sizes) == 2 * math.ceil(150 / BATCH_CALLS)
