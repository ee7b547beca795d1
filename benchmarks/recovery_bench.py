"""Time from a kill to the agent serving again, per transport, against the raw runtimes.

    python benchmarks/recovery_bench.py [--kills 15] [--turns 20]

An agent with `--turns` steps in its memory is SIGKILLed, then asked for its
memory at once: the time until the answer covers noticing the death,
starting a new process, and giving it its memory back. The restart backoff is
set to 0 here (the default policy adds 50 ms plus up to 50 ms of jitter).

Against the raw runtimes doing the least they can (ratio: actorsim / raw):
Thespian has no restarts, so its row is a fresh `createActor` plus an ask;
Ray restarts an actor itself (`max_restarts=1`), with its state lost.
The `local` transport has no process of its own to kill: its row times the
same restart after a crash (an exception) instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorsim  # noqa: E402
from actorsim import RolePlay, Supervision, TaskCenter, create_component  # noqa: E402

NO_BACKOFF = Supervision(max_restarts=10_000, backoff_initial=0.0, backoff_jitter=0.0)


def actorsim_recovery(transport: str, kills: int, turns: int) -> list[float]:
    """Seconds from each kill to the restarted agent's answer."""
    times = []
    with tempfile.TemporaryDirectory() as temp, actorsim.init(transport=transport, log_dir=temp) as runtime:
        task_center = create_component(TaskCenter, name="task_center", remote=True)
        llm = {"model_server": "scripted", "replies": ["We land with a reusable rocket."]}
        agent = create_component(RolePlay, name="agent", remote=True, llm=llm, supervision=NO_BACKOFF)
        task_center.add_agents([agent])
        for _ in range(turns):
            task_center.send_task_request("and then?")
            list(task_center.step())
        expected = len(agent.get_history())
        for _ in range(kills):
            ref = runtime.supervisor.current("agent")
            started = time.perf_counter()
            if transport == "local":
                runtime.supervisor.crashed(ref, RuntimeError("benchmark crash"))
            else:
                assert ref.pid is not None and ref.pid != os.getpid()
                os.kill(ref.pid, signal.SIGKILL)
            served = len(agent.get_history())
            times.append(time.perf_counter() - started)
            assert served == expected, "the memory did not come back whole"
            assert runtime.supervisor.current("agent") is not ref, "no restart happened"
    return times


def raw_thespian_recovery(kills: int) -> list[float]:
    """A new actor and its first answer: what any restart on raw Thespian costs at least."""
    from thespian.actors import ActorSystem

    from benchmarks.step_bench import Ping, RawThespianEcho

    times = []
    system = ActorSystem("multiprocQueueBase", transientUnique=True)
    try:
        for _ in range(kills):
            started = time.perf_counter()
            address = system.createActor(RawThespianEcho)
            assert system.ask(address, Ping("up?"), 30) == "up?"
            times.append(time.perf_counter() - started)
    finally:
        system.shutdown()
    return times


def raw_ray_recovery(kills: int) -> list[float]:
    """Ray's own restart (`max_restarts`): kill the worker, call until the new instance answers."""
    import ray
    from ray.exceptions import RayActorError

    @ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
    class Pid:
        def pid(self) -> int:
            return os.getpid()

    times = []
    with tempfile.TemporaryDirectory() as temp:
        ray.init(address="local", include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
        try:
            actor: Any = Pid.remote()
            for _ in range(kills):
                pid = ray.get(actor.pid.remote())
                started = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                while True:
                    try:
                        if ray.get(actor.pid.remote(), timeout=30) != pid:
                            break
                    except RayActorError:
                        continue
                times.append(time.perf_counter() - started)
        finally:
            ray.shutdown()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--turns", type=int, default=20, help="steps in the agent's memory before the kills")
    parser.add_argument("--transports", nargs="+", default=list(actorsim.TRANSPORTS))
    args = parser.parse_args()
    raw = {"thespian": raw_thespian_recovery, "ray": raw_ray_recovery}
    print(f"Kill to serving again, median of {args.kills} (agent memory: {args.turns} steps, backoff 0)")
    for transport in args.transports:
        ours = statistics.median(actorsim_recovery(transport, args.kills, args.turns)) * 1000
        line = f"{transport:<9} actorsim {ours:8.1f} ms"
        if transport in raw:
            theirs = statistics.median(raw[transport](args.kills)) * 1000
            line += f"   raw {theirs:8.1f} ms   ratio {ours / theirs:.2f}"
        else:
            line += "   (a crash, not a kill: no process of its own)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
