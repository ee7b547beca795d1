"""Step time per transport, transport overhead over raw Thespian/Ray, and the peer.

    python benchmarks/step_bench.py [--steps 20] [--agents 2 50]

Prints, from one run: the mean and median time of one step of a debate where
every agent answers the others with a zero-latency scripted model (without
the run log, as the peer runs without its file log; what the run log adds is
printed on its own); the
median ask round trip of actorsim against raw Thespian and raw Ray doing the
same thing (ratio: actorsim / raw); and, when `.peer-venv` holds
modelscope-agent (see benchmarks/peer_requirements.txt), the peer's step time
in the same scenario (ratio: actorsim / peer; below 1 is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from thespian.actors import Actor, ActorSystem

import actorsim
from actorsim import RolePlay, TaskCenter, create_component

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / ".peer-venv" / "bin" / "python"
REPLY = "We should land on the Moon with a reusable rocket."
TASK = "what is the best solution to land on moon?"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_steps(task_center: TaskCenter, steps: int) -> list[float]:
    list(task_center.step())  # warm-up: every agent answers the task once
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        for _frame in task_center.step():
            pass
        durations.append(time.perf_counter() - started)
    return durations


def actorsim_steps(mode: str, agents: int, steps: int, logged: bool = True) -> dict[str, float]:
    """`mode` is "plain" (remote=False) or a transport; `logged=False` turns the run log off."""
    remote = mode != "plain"
    with tempfile.TemporaryDirectory() as temp, contextlib.ExitStack() as stack:
        logs = temp if logged else None
        if remote:
            stack.enter_context(actorsim.init(transport=mode, log_dir=logs))
        started = time.perf_counter()
        options = {} if remote else {"log_dir": logs}
        task_center = create_component(TaskCenter, name="task_center", remote=remote, **options)
        llm = {"model_server": "scripted", "replies": [REPLY]}
        task_center.add_agents(
            [create_component(RolePlay, name=f"agent_{n}", remote=remote, llm=llm) for n in range(agents)]
        )
        setup = time.perf_counter() - started
        task_center.send_task_request(TASK)
        durations = time_steps(task_center, steps)
        task_center.close()
    return {"mean_step_s": statistics.mean(durations), "median_step_s": statistics.median(durations), "setup_s": setup}


# -- round trips: actorsim's ask against the raw runtimes doing the same


@attrs.frozen
class Ping:
    payload: str


class Echo:
    """An actorsim behaviour that answers at once."""

    def receive(self, request: Ping) -> str:
        return request.payload


class RawThespianEcho(Actor):  # type: ignore[misc]
    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802
        if isinstance(message, Ping):
            self.send(sender, message.payload)


def sample(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(50):
        call()
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def raw_thespian_round_trip(count: int) -> list[float]:
    system = ActorSystem("multiprocQueueBase", transientUnique=True)
    try:
        echo = system.createActor(RawThespianEcho)
        return sample(lambda: system.ask(echo, Ping("ping"), 10), count)
    finally:
        system.shutdown()


def raw_ray_round_trip(count: int) -> list[float]:
    import ray

    @ray.remote(num_cpus=0)
    class RawRayEcho:
        def ask(self, request: Ping) -> str:
            return request.payload

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as temp:
        ray.init(address="local", _temp_dir=temp, include_dashboard=False, log_to_driver=False)
        try:
            echo = RawRayEcho.remote()  # type: ignore[attr-defined]
            return sample(lambda: ray.get(echo.ask.remote(Ping("ping"))), count)
        finally:
            ray.shutdown()


def actorsim_round_trip(transport: str, count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as logs, actorsim.init(transport=transport, log_dir=logs) as runtime:
        echo = runtime.spawn(Echo, name="echo")
        return sample(lambda: runtime.ask(echo, Ping("ping")), count)


# -- the peer, in its own virtualenv


def peer_steps(mode: str, agents: int, steps: int) -> dict[str, Any] | None:
    if not PEER_PYTHON.exists():
        return None
    command = [
        str(PEER_PYTHON),
        str(ROOT / "benchmarks" / "peer_modelscope.py"),
        "--mode",
        mode,
        "--agents",
        str(agents),
        "--steps",
        str(steps),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 1200 s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--skip-peer", action="store_true", help="leave out the peer's rows")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["plain", *actorsim.TRANSPORTS],
        help="plain is remote=False; the others are transports",
    )
    parser.add_argument(
        "--peer-ray-agents",
        type=int,
        nargs="+",
        default=[2, 10],
        help="the peer's Ray mode needs ~1 GB per agent: 50 does not fit in 24 GiB",
    )
    args = parser.parse_args()

    print(f"Step time, {args.steps} steps after a warm-up, zero-latency scripted model, no run log")
    print(f"{'mode':<10} {'agents':>6} {'mean ms':>9} {'median ms':>10} {'setup s':>8}")
    ours: dict[tuple[str, int], dict[str, float]] = {}
    for mode in args.modes:
        for agents in args.agents:
            row = ours[mode, agents] = actorsim_steps(mode, agents, args.steps, logged=False)
            print(
                f"{mode:<10} {agents:>6} {row['mean_step_s'] * 1000:>9.2f} "
                f"{row['median_step_s'] * 1000:>10.2f} {row['setup_s']:>8.2f}",
                flush=True,
            )

    print(f"\nAsk round trip, median of {args.round_trips}")
    raw = {"thespian": raw_thespian_round_trip, "ray": raw_ray_round_trip}
    for transport in [mode for mode in args.modes if mode in raw]:
        raw_ms = median_ms(raw[transport](args.round_trips))
        our_ms = median_ms(actorsim_round_trip(transport, args.round_trips))
        ratio = our_ms / raw_ms
        print(f"{transport:<10} raw {raw_ms:.3f} ms  actorsim {our_ms:.3f} ms  ratio {ratio:.2f}x", flush=True)

    print("\nRun log cost: median step with the full run log / without it, runs interleaved (target: at most 1.20)")
    for mode in args.modes:
        agents, pairs = 10, 5
        without, logged = [], []
        for _ in range(pairs):  # interleaved, so a noisy neighbour weighs on both sides alike
            without.append(actorsim_steps(mode, agents, args.steps, logged=False)["median_step_s"])
            logged.append(actorsim_steps(mode, agents, args.steps)["median_step_s"])
        plain_ms, logged_ms = statistics.median(without) * 1000, statistics.median(logged) * 1000
        print(
            f"{mode:<10} {agents} agents: without {plain_ms:.2f} ms  with {logged_ms:.2f} ms  "
            f"ratio {logged_ms / plain_ms:.2f}",
            flush=True,
        )

    print("\nAgainst the peer modelscope-agent 0.7.2 (ratio = actorsim mean / peer mean; < 1 is faster)")
    if args.skip_peer:
        print("  skipped (--skip-peer)")
        return
    if not PEER_PYTHON.exists():
        print(
            f"  skipped: no peer virtualenv at {PEER_PYTHON}; create it with "
            "python3 -m venv .peer-venv && .peer-venv/bin/pip install -r benchmarks/peer_requirements.txt"
        )
        return
    # In-process against the peer's local mode; multiprocess against its Ray mode, its only one.
    comparisons = [("local", mode, n) for mode in ("plain", "local") for n in args.agents]
    comparisons += [("ray", mode, n) for mode in ("thespian", "ray") for n in args.peer_ray_agents]
    for peer_mode, transport, agents in comparisons:
        peer = peer_steps(peer_mode, agents, args.steps)
        if peer is None or "error" in peer:
            print(f"  peer {peer_mode} {agents} agents: skipped ({(peer or {}).get('error', 'not installed')})")
            continue
        if (transport, agents) not in ours:
            ours[transport, agents] = actorsim_steps(transport, agents, args.steps, logged=False)
        mine = ours[transport, agents]["mean_step_s"]
        print(
            f"  {agents:>3} agents: actorsim {transport:<8} {mine * 1000:8.2f} ms   peer {peer_mode:<5} "
            f"{peer['mean_step_s'] * 1000:8.2f} ms   ratio {mine / peer['mean_step_s']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
