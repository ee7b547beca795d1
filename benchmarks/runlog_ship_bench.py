"""What shipping the run log to the driver's node costs, on a private Ray instance.

    python benchmarks/runlog_ship_bench.py

One actor answers asks, logging `--events` events per ask; the same run with
each process writing its own file (as on one machine) and with every line
shipped to the sink actor (as on a cluster). Prints asks/s and events/s.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from actorsim._core.options import RunOptions
from actorsim._runlog import log_event
from actorsim._runtime.runtime import Runtime, new_run_id
from actorsim.transport._ray import RayTransport


class Chatty:
    """Logs `events` events per request, as a model call or a step does."""

    def __init__(self, events: int) -> None:
        self.events = events

    def receive(self, request: Any) -> int:
        for index in range(self.events):
            log_event("bench.event", index=index, payload="x" * 200)
        return int(request)


def measure(ship: bool, asks: int, events: int, log_dir: Path) -> tuple[float, dict[str, float] | None]:
    transport = RayTransport(ship_logs=ship)
    runtime = Runtime(transport, RunOptions(log_dir=log_dir), new_run_id())
    try:
        ref = runtime.spawn(functools.partial(Chatty, events), name="chatty")
        for warm in range(20):
            runtime.ask(ref, warm)
        started = time.perf_counter()
        for index in range(asks):
            runtime.ask(ref, index)
        seconds = time.perf_counter() - started
        return seconds, transport.sink_stats()
    finally:
        runtime.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asks", type=int, default=500)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.asks} asks, {args.events} events of ~300 bytes each")
    print("| run log | asks/s | events/s |")
    print("|---|---|---|")
    for ship in (False, True):
        with tempfile.TemporaryDirectory() as log_dir:
            seconds, _ = measure(ship, args.asks, args.events, Path(log_dir))
        label = "shipped to the driver's node" if ship else "own file per process"
        print(f"| {label} | {args.asks / seconds:,.0f} | {args.asks * args.events / seconds:,.0f} |")


if __name__ == "__main__":
    main()
