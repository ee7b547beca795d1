"""Swarm benchmark (issue 11): agents as actors of their own, and hosted many to a process.

One run, printed as one table:
  * `--actors` agents as separate Thespian actors: start rate, each answers one message;
  * `--hosted` hosted agents on Thespian and on Ray (a private local instance), on `--hosts`
    host actors: start rate, unique set size per idle agent (every process of the run, the
    driver's included), a round-robin round where each answers one message with the run log on;
  * `--stretch` hosted agents on Thespian the same way (the issue's stretch: 100,000);
  * `--slow` hosted agents whose model takes 0.2 s: the time of one step;
  * raw Thespian and raw Ray ask round trips per second, and the ratio of replies/s to them;
  * an Environment SIGKILLed after `--journal` messages (Thespian): how long its restart takes;
  * `--chaos` hosted agents on Thespian, two rounds, a host SIGKILLed mid-round: every message
    answered once, and the history equal to a fault-free run's.

Example (the issue's targets):
    python benchmarks/swarm_bench.py --actors 1000 --hosted 10000 --slow 1000 --chaos 1000 --journal 100000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import actorsim
from actorsim import Message, RolePlay, RoundRobin, Supervision, TaskCenter, create_component
from actorsim.transport import ActorRef
from actorsim.transport._hosted import HostedTransport

console = Console(stderr=True)


class Echo:
    """The behaviour of a raw round-trip actor."""

    def receive(self, request: Any) -> Any:
        """Its request, back."""
        return request


def run_uss(runtime: actorsim.Runtime) -> float:
    """Unique set size, in MB, of every process of the run: the driver and its children (Ray's daemons and
    workers), and on Thespian the admin, which detaches from the driver, and its children (the actors)."""
    me = psutil.Process()
    processes = {me, *me.children(recursive=True)}
    transport = getattr(runtime.transport, "inner", runtime.transport)
    admin = getattr(transport, "_admin", None)  # the Thespian admin: not a child of ours once started
    if admin is not None:
        with contextlib.suppress(psutil.Error):
            processes |= {admin, *admin.children(recursive=True)}
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().uss
    return total / 2**20


@contextlib.contextmanager
def run(transport: str, log_dir: str, hosts: int | None) -> Iterator[actorsim.Runtime]:
    with actorsim.init(transport=transport, hosts=hosts, log_dir=log_dir, ask_timeout=600, step_timeout=600) as rt:
        yield rt


def start_swarm(count: int, label: str, **options: Any) -> tuple[TaskCenter, float]:
    """`count` agents in group "swarm" started and added to a task center; seconds it took."""
    task_center = create_component(TaskCenter, "swarm", remote=True)
    started = time.perf_counter()
    agents = []
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"starting {label}", total=count)
        for n in range(count):
            agents.append(create_component(
                RolePlay, f"a{n}", remote=True, group="swarm", send_to=RoundRobin("swarm", start="first"), **options
            ))
            progress.advance(bar)
    task_center.add_agents(agents)
    return task_center, time.perf_counter() - started


def one_round(task_center: TaskCenter, count: int, label: str, to_all: bool = False) -> tuple[float, int]:
    """Send `count` messages round-robin (`to_all`: one message to every agent), then one step where each
    agent answers; (replies/s, replies)."""
    if to_all:
        task_center.send_task_request("hop", send_to="all")
    for _ in range(0 if to_all else count):
        task_center.send_task_request("hop", send_to=RoundRobin("swarm", start="first"))
    started = time.perf_counter()
    replying: set[str] = set()  # the replies that have shown a frame
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"round of {label}", total=count)
        for frame in task_center.step():
            if frame.message_id not in replying:
                replying.add(frame.message_id)
                progress.update(bar, completed=len(replying))
    seconds = time.perf_counter() - started
    answered = len(task_center.environment.history()) - (1 if to_all else count)
    return answered / seconds, answered


def raw_rate(transport: str, log_dir: str, seconds: float = 3.0) -> float:
    """Ask round trips per second to one trivial actor of `transport`."""
    with run(transport, log_dir, None) as rt:
        ref: ActorRef = rt.transport.spawn(Echo, name="echo", timeout=120)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            rt.transport.ask(ref, count, timeout=60)
            count += 1
        return count / (time.perf_counter() - started)


def model(reply: str = "ok", latency: float = 0.0) -> dict[str, Any]:
    return {"model_server": "scripted", "replies": [reply], "reply_latency": latency}


def shape(history: list[Message]) -> list[tuple[Any, ...]]:
    """A history without its ids (parents by their place in it): two runs of one script compare equal."""
    place = {message.message_id: index for index, message in enumerate(history)}
    return [(m.sent_from, m.send_to, m.content, tuple(place[p] for p in m.parent_ids)) for m in history]


def chaos_run(count: int, log_dir: str, hosts: int, kill: bool) -> tuple[list[Message], int]:
    """Two round-robin rounds of `count` hosted agents on Thespian; with `kill`, one host is SIGKILLed
    half-way through the second. Returns the history and how many hosts were killed."""
    killed = 0
    with run("thespian", log_dir, hosts) as runtime:
        policy = Supervision(max_restarts=5, within=60, backoff_initial=0.01, backoff_jitter=0.0)
        task_center, _ = start_swarm(count, "chaos swarm", llm=model(), supervision=policy)
        for _ in range(count):
            task_center.send_task_request("hop", send_to=RoundRobin("swarm", start="first"))
        list(task_center.step())
        transport = runtime.transport
        assert isinstance(transport, HostedTransport)
        for frames, _frame in enumerate(task_center.step(), start=1):
            if kill and frames == count // 2:
                pid = random.Random(1).choice(transport.hosts).pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return list(task_center.environment.history()), killed


def environment_restart(messages: int, log_dir: str) -> tuple[float, float]:
    """Seconds for a Thespian Environment SIGKILLed after `messages` messages to be back (answering a request),
    and then to hand its whole history to the driver."""
    with run("thespian", log_dir, None) as runtime:
        task_center = create_component(TaskCenter, "long", remote=True)
        task_center.add_agents([create_component(RolePlay, "reader", remote=True, llm=model())])
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task(f"{messages} messages", total=messages)
            for n in range(messages):
                task_center.send_task_request(f"task {n}")
                progress.advance(bar)
        ref = runtime.supervisor.current("long/environment")
        assert ref.pid is not None
        os.kill(ref.pid, signal.SIGKILL)
        started = time.perf_counter()
        assert task_center.environment.pending_roles() == ["reader"]  # noticed dead, restarted, answering
        back = time.perf_counter() - started
        history = task_center.environment.history()
        fetched = time.perf_counter() - started - back
        assert len(history) == messages and runtime.supervisor.current("long/environment").pid != ref.pid
        return back, fetched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--hosted", type=int, default=10000)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--chaos", type=int, default=1000)
    parser.add_argument("--journal", type=int, default=100_000)
    parser.add_argument("--stretch", type=int, default=0, help="hosted agents on Thespian beyond --hosted (100000)")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--transports", default="thespian,ray")
    args = parser.parse_args()
    log_dir = tempfile.mkdtemp(prefix="swarm-bench-")
    table = Table(title="actorsim swarm benchmark")
    for column in ("case", "transport", "agents", "start", "agents/s", "MB/idle agent", "round", "replies/s",
                   "raw msgs/s", "ratio"):
        table.add_column(column)
    raw = {name: raw_rate(name, log_dir) for name in dict.fromkeys([*args.transports.split(","), "thespian"])}

    if args.actors:
        with run("thespian", log_dir, None) as runtime:
            before = run_uss(runtime)
            task_center, seconds = start_swarm(args.actors, "actors", llm=model())
            per_agent = (run_uss(runtime) - before) / args.actors
            rate, answered = one_round(task_center, args.actors, "actors")
        table.add_row("actor each", "thespian", str(args.actors), f"{seconds:.1f} s", f"{args.actors / seconds:.0f}",
                      f"{per_agent:.2f}", f"{answered} replies", f"{rate:.0f}", f"{raw['thespian']:.0f}",
                      f"{rate / raw['thespian']:.2f}")
    hosted_runs = [(f"hosted ({args.hosts} hosts)", name, args.hosted)
                   for name in args.transports.split(",") if args.hosted]
    if args.stretch:
        hosted_runs.append((f"stretch: hosted ({args.hosts} hosts), one task to all", "thespian", args.stretch))
    for case, name, count in hosted_runs:
        with run(name, log_dir, args.hosts) as runtime:
            before = run_uss(runtime)
            task_center, seconds = start_swarm(count, f"hosted on {name}", llm=model())
            per_agent = (run_uss(runtime) - before) / count
            rate, answered = one_round(task_center, count, f"hosted on {name}", to_all=case.startswith("stretch"))
        table.add_row(case, name, str(count), f"{seconds:.1f} s", f"{count / seconds:.0f}", f"{per_agent:.2f}",
                      f"{answered} replies", f"{rate:.0f}", f"{raw[name]:.0f}", f"{rate / raw[name]:.2f}")
    if args.slow:
        name = args.transports.split(",")[0]
        with run(name, log_dir, args.hosts):
            task_center, _ = start_swarm(args.slow, "slow models", llm=model(latency=0.2))
            task_center.send_task_request("hop")
            started = time.perf_counter()
            list(task_center.step())
            step = time.perf_counter() - started
        table.add_row(f"hosted, model 0.2 s ({args.hosts} hosts)", name, str(args.slow), "", "", "",
                      f"one step {step:.2f} s", "", "", "")
    if args.journal:
        back, fetched = environment_restart(args.journal, log_dir)
        table.add_row("Environment SIGKILLed, restarted", "thespian", "", "", "", "",
                      f"after {args.journal} messages: back in {back:.2f} s (history to the driver "
                      f"{fetched:.2f} s more)", "", "", "")
    if args.chaos:
        calm, _ = chaos_run(args.chaos, log_dir, args.hosts, kill=False)
        history, killed = chaos_run(args.chaos, log_dir, args.hosts, kill=True)
        ids = [m.message_id for m in history]
        once = len(set(ids)) == len(ids) == 3 * args.chaos
        table.add_row(f"hosted, {killed} host SIGKILLed ({args.hosts} hosts)", "thespian", str(args.chaos), "", "",
                      "", f"answered once: {once}, history as fault-free: {shape(history) == shape(calm)}",
                      "", "", "")
    Console(width=200).print(table)
    console.print(f"logs in {log_dir}; pid {os.getpid()}")


if __name__ == "__main__":
    main()
