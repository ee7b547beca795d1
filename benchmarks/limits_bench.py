"""Model-server limits, budgets and a server that throttles for ever (issue 21), against the test suite's server.

    python benchmarks/limits_bench.py [--agents 2000] [--capacity 10] [--call-ms 50] [--rounds 3]
                                      [--transports local thespian ray] [--hosts 4] [--retry-after 1|none]
                                      [--variants none far known unknown] [--skip-swarm] [--skip-budget]
                                      [--skip-storm] [--log-dir logs/limits_bench]

The server is tests/openai_server.py, in a process of its own: above `--capacity` calls in flight it answers 429
(with `Retry-After`, unless `--retry-after none`), and each call streams its reply over `--call-ms`. Agents live
on `--hosts` host actors (`actorsim.init(hosts=...)`). Each round runs, each in a fresh run, one step of `--agents`
agents four ways (or those of `--variants`):

  * none:    no limit in the `llm` dict, the server unbounded: the ceiling of the run itself;
  * far:     `max_concurrency` far above need (100,000), the server unbounded: what permits cost (target >= 0.9);
  * known:   `max_concurrency=capacity`: the run keeps the server's limit (targets: >= 80% of the limit's
             ceiling, capacity / call time; no 429);
  * unknown: no limit in the `llm` dict: the run learns the limit from the server's 429s (target: no 429
             after the first second of adaptation, counted from the first call the server gets).

The issue asks for a capacity of 50 (a ceiling of 1,000 calls/s); on a 2-core machine the test server and the run,
both Python, top out near 230 calls/s without any limit, so the default capacity is 10 (200 calls/s), a
ceiling the machine can reach. It prints first what the permits themselves cost (the driver's limiter and a
host's gate, timed apart from any run: "far" against "none" pits the far limit's flood of calls against slow
start's rounds as well), then, per transport and variant, medians over rounds of the step's time,
calls/s and share of the ceiling, the server's most calls in flight (it must never pass the capacity), its
429s (the median of all, and the most after the first second in any round), and whether every agent answered
exactly once. Then:

  * budget: 200 agents, `max_concurrency=20`, `Budget(tokens=1000)` (100 calls' worth): how far the spend
    overshoots, against the calls in flight when the budget ran out (target: overshoot <= calls in flight);
    once with one model call a step, once with agents that call a tool between two model calls;
  * budget check: what a budget costs a swarm whose steps call a tool between two model calls (a later call
    asks the driver once its step has used its allowance): one step of 400 agents on the hosts, with a budget
    far above need against none, medians over rounds (calls/s with budget / without);
  * storm: one agent, the default policy, a server that answers 429 to every call: how long until the step
    ends, with `AgentFailedError` or `PoisonMessageError` (target: under 3 minutes), without and with
    `Retry-After`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorsim  # noqa: E402
from actorsim import AgentFailedError, Budget, BudgetExceeded, RolePlay, TaskCenter, create_component  # noqa: E402
from actorsim.llm import ServerLimits  # noqa: E402
from actorsim.llm._gate import ServerGate  # noqa: E402
from actorsim.llm._limiter import ServerLimiter  # noqa: E402
from tests import tools  # noqa: E402, F401 - registers the tool "weather"
from tests.openai_server import OpenAIServer, weather_then_answer  # noqa: E402

CALL_TOKENS = 7 + 3  # the test server's prompt tokens, and a reply of 3 words (or one tool call)


def llm_for(server: OpenAIServer | ServerProcess, **options: Any) -> dict[str, Any]:
    return {"model_server": "openai", "model": "m", "api_base": server.api_base, "api_key": "k", **options}


class ServerProcess:
    """The swarm's server in a process of its own, as a model server is: in the run's driver, its threads would
    wait for the driver's GIL, and its timing would be the driver's. What it counted comes back at the end."""

    def __init__(self, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._here, there = context.Pipe()
        self._process = context.Process(target=_serve, args=(there, options), daemon=True)
        self.most_in_flight = 0
        self.throttled_at: list[float] = []
        self.first_call_at: float | None = None

    def __enter__(self) -> ServerProcess:
        self._process.start()
        self.api_base = self._here.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._here.send("stop")
        self.most_in_flight, self.throttled_at, self.first_call_at = self._here.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _serve(pipe: Any, options: dict[str, Any]) -> None:
    with OpenAIServer(["Up we go."], keep_alive=True, **options) as server:
        pipe.send(server.api_base)
        pipe.recv()
        pipe.send((server.most_in_flight, server.throttled_at, server.first_call_at))


def one_step(transport: str, hosts: int | None, agents: int, capacity: int | None, limit: int | None,
             call_s: float, retry_after: str | None, log_dir: Path) -> dict[str, Any]:
    with ServerProcess(max_concurrency=capacity, retry_after=retry_after, call_seconds=call_s) as server:
        with actorsim.init(transport=transport, log_dir=log_dir, **({"hosts": hosts} if hosts else {})):
            center = create_component(TaskCenter, name="swarm", remote=True)
            options: dict[str, Any] = {"max_attempts": 50, "max_retry_seconds": 600}
            if limit is not None:
                options["max_concurrency"] = limit
            center.add_agents([create_component(RolePlay, name=f"a{n}", remote=True, llm=llm_for(server, **options))
                               for n in range(agents)])
            center.send_task_request("go")
            started = time.monotonic()
            for _ in center.step():
                pass
            took = time.monotonic() - started
            senders = [m.sent_from for m in center.environment.history()[1:]]
    # The server's first second: on Ray the step's first calls reached it up to 1.8 s after the step began.
    late = [at for at in server.throttled_at if at - (server.first_call_at or started) > 1.0]
    return {"took": took, "most": server.most_in_flight, "refused": len(server.throttled_at), "late": len(late),
            "once": sorted(senders) == sorted(f"a{n}" for n in range(agents))}


def swarm_table(args: argparse.Namespace) -> None:
    call_s = args.call_ms / 1000
    ceiling = args.capacity / call_s
    retry_after = None if args.retry_after == "none" else args.retry_after
    header = "no Retry-After" if retry_after is None else f"Retry-After: {retry_after}"
    print(f"{args.agents} agents on {args.hosts} hosts, one step; server capacity {args.capacity} calls of "
          f"{args.call_ms:g} ms (ceiling {ceiling:.0f} calls/s), refusals with {header}; "
          f"median of {args.rounds} rounds")
    print(f"{'transport':<10}{'variant':<9}{'step s':>8}{'calls/s':>9}{'share':>7}{'most':>6}{'429s':>6}"
          f"{'late':>6}  once")
    every = {"none": (None, None), "far": (None, 100_000), "known": (args.capacity, args.capacity),
             "unknown": (args.capacity, None)}
    variants = {name: every[name] for name in args.variants}
    for transport in args.transports:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            turn = round_ % len(variants)
            order = list(variants)[turn:] + list(variants)[:turn]  # a noisy neighbour weighs on all
            for name in order:
                capacity, limit = variants[name]
                results[name].append(one_step(transport, args.hosts, args.agents, capacity, limit, call_s,
                                              retry_after, args.log_dir))
        rates = {name: args.agents / statistics.median(run["took"] for run in runs) for name, runs in results.items()}
        for name, runs in results.items():
            share = f"{rates[name] / ceiling:.0%}" if variants[name][0] is not None else "-"
            print(f"{transport:<10}{name:<9}{statistics.median(r['took'] for r in runs):>8.2f}{rates[name]:>9.0f}"
                  f"{share:>7}{max(r['most'] for r in runs):>6}{statistics.median(r['refused'] for r in runs):>6.0f}"
                  f"{max(r['late'] for r in runs):>6}  {all(r['once'] for r in runs)}")
        if "far" in rates and "none" in rates:
            # Each round runs both, one after the other: the ratio within a round shares that moment's noise.
            rounds = zip(results["none"], results["far"], strict=True)
            ratios = sorted(none["took"] / far["took"] for none, far in rounds)
            print(f"{transport:<10}permit overhead: far / none calls/s = {rates['far'] / rates['none']:.2f} "
                  f"(medians); within a round, median {statistics.median(ratios):.2f} of "
                  f"{' '.join(f'{ratio:.2f}' for ratio in ratios)}")


def budget_overshoot(transport: str, log_dir: Path, with_tools: bool) -> None:
    agents, limit, budget = 200, 20, 1000
    replies: Any = weather_then_answer if with_tools else ["Up we go."]
    with OpenAIServer(replies, call_seconds=0.05, keep_alive=True) as server:
        with actorsim.init(transport=transport, log_dir=log_dir, budget=Budget(tokens=budget)) as runtime:
            center = create_component(TaskCenter, name="thrifty", remote=True)
            center.add_agents([create_component(RolePlay, name=f"a{n}", remote=True,
                                                llm=llm_for(server, max_concurrency=limit),
                                                function_list=["weather"] if with_tools else [])
                               for n in range(agents)])
            center.send_task_request("go")
            # The calls in flight as the driver hears the budget run out. Looked at from the step's frames, it
            # was a frame late: calls had ended meanwhile (18 in flight on Thespian, for an overshoot of 19).
            in_flight_at_end = None
            spending, add = runtime.spending, runtime.spending.add

            def add_and_look(agent: str, tokens: int, cost: float) -> None:
                nonlocal in_flight_at_end
                add(agent, tokens, cost)
                if in_flight_at_end is None and spending.tokens >= budget:
                    in_flight_at_end = runtime.model_traffic().in_flight

            spending.add = add_and_look  # type: ignore[method-assign]
            try:
                for _ in center.step():
                    pass
            except BudgetExceeded:
                pass
            spent = runtime.spending.tokens
    calls = spent // CALL_TOKENS
    steps = "tool steps" if with_tools else "plain steps"
    print(f"budget  {transport:<9} {steps}, budget {budget:,} tokens ({budget // CALL_TOKENS} calls): {calls} calls "
          f"made ({len(server.requests)} asked), {spent:,} tokens; overshoot {spent - budget:,} tokens = "
          f"{(spent - budget) / CALL_TOKENS:.0f} calls, calls in flight when it ran out: {in_flight_at_end} "
          f"(limit {limit})")


def budget_check_cost(transport: str, hosts: int, rounds: int, log_dir: Path) -> None:
    agents = 400
    rates: dict[str, list[float]] = {"none": [], "far": []}
    for _ in range(rounds):
        for name, budget in (("none", None), ("far", Budget(tokens=10**9))):
            with OpenAIServer(weather_then_answer, call_seconds=0.05, keep_alive=True) as server:
                with actorsim.init(transport=transport, log_dir=log_dir, hosts=hosts, budget=budget):
                    center = create_component(TaskCenter, name="checked", remote=True)
                    center.add_agents([create_component(RolePlay, name=f"a{n}", remote=True, llm=llm_for(server),
                                                        function_list=["weather"]) for n in range(agents)])
                    center.send_task_request("go")
                    started = time.monotonic()
                    replied = {frame.role for frame in center.step() if frame.kind == "text"}
                    took = time.monotonic() - started
            assert len(replied) == agents and len(server.requests) == 2 * agents, (len(replied), len(server.requests))
            rates[name].append(2 * agents / took)
    none, far = (statistics.median(rates[name]) for name in ("none", "far"))
    print(f"check   {transport:<9} {agents} hosted tool steps: {none:.0f} calls/s without a budget, {far:.0f} with "
          f"one far above need: {far / none:.2f}")


def permit_cost() -> None:
    """What the permits themselves cost, apart from the traffic they shape: a step's permit at the driver's
    limiter (asked, granted, given back) and each try's place at its host's gate (entered, streaming, left)."""
    steps = 200_000
    server = ServerLimiter(("http://server/v1", "m"), ServerLimits(max_concurrency=100_000), time.monotonic)
    gate = ServerGate(("http://server/v1", "m"), ServerLimits(max_concurrency=100_000))
    timings = {}
    for name, one in (("driver", lambda n: (server.ask(f"a{n}"), server.admitted(f"a{n}"),
                                             server.served((0.0, 1.0)), server.release(f"a{n}"))),
                      ("host", lambda n: (gate.admitted(ticket := gate.enter()), gate.leave(ticket, True)))):
        started = time.perf_counter()
        for n in range(steps):
            one(n)
        timings[name] = (time.perf_counter() - started) / steps
    print(f"permits: {timings['driver'] * 1e6:.1f} us of the driver's time a step, {timings['host'] * 1e6:.1f} us of "
          f"its host's a try: at 1,000 calls/s, {timings['driver'] * 1000:.2%} of the driver's core and "
          f"{timings['host'] * 1000:.2%} of the hosts'")


def storm(transport: str, retry_after: str | None, log_dir: Path) -> None:
    with OpenAIServer(["never"], throttle_always=True, retry_after=retry_after) as server:
        with actorsim.init(transport=transport, log_dir=log_dir):
            center = create_component(TaskCenter, name="storm", remote=True)
            center.add_agents([create_component(RolePlay, name="ann", remote=True, llm=llm_for(server))])
            center.send_task_request("go")
            started = time.monotonic()
            try:
                list(center.step())
                ended = "answered?!"
            except AgentFailedError as error:  # given up on (fast crashes), or a poisoned step (PoisonMessageError)
                ended = type(error).__name__
            took = time.monotonic() - started
    header = f"Retry-After: {retry_after}" if retry_after else "no Retry-After"
    print(f"storm   {transport:<9} 429 for ever ({header}): the step ended in {took:.1f} s ({ended}), "
          f"{len(server.statuses)} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--call-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--retry-after", default="1", help="seconds, or none: refusals without the header")
    parser.add_argument("--variants", nargs="+", default=["none", "far", "known", "unknown"],
                        choices=["none", "far", "known", "unknown"])
    parser.add_argument("--transports", nargs="+", default=["local", "thespian", "ray"])
    parser.add_argument("--log-dir", type=Path, default=Path("logs/limits_bench"))
    parser.add_argument("--skip-budget", action="store_true")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--skip-swarm", action="store_true")
    args = parser.parse_args()
    permit_cost()
    if not args.skip_swarm:
        swarm_table(args)
    for transport in args.transports:
        if not args.skip_budget:
            budget_overshoot(transport, args.log_dir, with_tools=False)
            budget_overshoot(transport, args.log_dir, with_tools=True)
            budget_check_cost(transport, args.hosts, args.rounds, args.log_dir)
        if not args.skip_storm:
            storm(transport, None, args.log_dir)
            storm(transport, "1", args.log_dir)


if __name__ == "__main__":
    main()
