"""Model-server limits (issue 21): a swarm's one step against a server that takes `--capacity` calls at once.

    python benchmarks/limits_bench.py [--agents 200] [--capacity 5] [--call-ms 50] [--rounds 3]
                                      [--transports local thespian ray] [--retry-after 0.2]

The server is the test suite's OpenAI-compatible one (tests/openai_server.py): above `--capacity` calls in
flight it answers 429 (with `Retry-After`), each call streams its reply over `--call-ms`. Each round runs, in a
fresh run, one step of `--agents` agents three ways:

  * none:    no limit in the `llm` dict, a server with no capacity bound (the ceiling for the permit overhead);
  * known:   `max_concurrency=capacity` in the `llm` dict;
  * unknown: no limit in the `llm` dict: the run learns it from the server's 429s.

It prints, per transport and variant, the median over rounds of the step's time, calls/s and its share of
the limit's ceiling (capacity / call time), the server's most calls in flight, its 429s, and whether every
agent answered exactly once. The issue's targets: known >= 80% of the ceiling, no 429 with a known limit,
the server never above its capacity.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorsim  # noqa: E402
from actorsim import RolePlay, TaskCenter, create_component  # noqa: E402
from tests.openai_server import OpenAIServer  # noqa: E402


def one_step(transport: str, agents: int, capacity: int | None, known: bool, call_s: float,
             retry_after: str, log_dir: Path) -> dict[str, Any]:
    with OpenAIServer(["Up we go."], max_concurrency=capacity, retry_after=retry_after, call_seconds=call_s,
                      keep_alive=True) as server:
        with actorsim.init(transport=transport, log_dir=log_dir):
            center = create_component(TaskCenter, name="swarm", remote=True)
            llm: dict[str, Any] = {"model_server": "openai", "model": "m", "api_base": server.api_base,
                                   "api_key": "k", "max_attempts": 50, "max_retry_seconds": 600}
            if known and capacity is not None:
                llm["max_concurrency"] = capacity
            center.add_agents([create_component(RolePlay, name=f"a{n}", remote=True, llm=llm) for n in range(agents)])
            center.send_task_request("go")
            started = time.perf_counter()
            for _ in center.step():
                pass
            took = time.perf_counter() - started
            senders = [m.sent_from for m in center.environment.history()[1:]]
    return {
        "took": took, "most": server.most_in_flight, "refused": len(server.throttled_at),
        "once": sorted(senders) == sorted(f"a{n}" for n in range(agents)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=5)
    parser.add_argument("--call-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--retry-after", default="0.2")
    parser.add_argument("--transports", nargs="+", default=["local", "thespian", "ray"])
    parser.add_argument("--log-dir", type=Path, default=Path("logs/limits_bench"))
    args = parser.parse_args()
    call_s = args.call_ms / 1000
    ceiling = args.capacity / call_s
    print(f"{args.agents} agents, one step; server capacity {args.capacity} calls of {args.call_ms:g} ms "
          f"(ceiling {ceiling:.0f} calls/s); median of {args.rounds} rounds")
    print(f"{'transport':<10}{'variant':<9}{'step s':>8}{'calls/s':>9}{'of ceiling':>11}{'most':>6}{'429s':>6}  once")
    for transport in args.transports:
        results: dict[str, list[dict[str, Any]]] = {"none": [], "known": [], "unknown": []}
        for round_ in range(args.rounds):
            order = list(results)[round_ % 3:] + list(results)[:round_ % 3]
            for variant in order:
                capacity = None if variant == "none" else args.capacity
                results[variant].append(one_step(transport, args.agents, capacity, variant == "known", call_s,
                                                 args.retry_after, args.log_dir))
        for variant, runs in results.items():
            took = statistics.median(run["took"] for run in runs)
            rate = args.agents / took
            share = f"{rate / ceiling:.0%}" if variant != "none" else "-"
            print(f"{transport:<10}{variant:<9}{took:>8.2f}{rate:>9.0f}{share:>11}"
                  f"{max(run['most'] for run in runs):>6}{statistics.median(run['refused'] for run in runs):>6.0f}"
                  f"  {all(run['once'] for run in runs)}")


if __name__ == "__main__":
    main()
