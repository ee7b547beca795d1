"""What live export of OpenTelemetry spans costs on the step benchmark (issue 23).

    python benchmarks/otel_bench.py [--steps 20] [--agents 2 50] [--rounds 3] [--transports local thespian ray]
                                    [--main /work/main] [--quick]

The issue's target: a step costs at most 1.2x with live export on (the run log's own target), and 1.0 with it
off. The run is step_bench's debate (every agent answers the others with a zero-latency scripted model; its
`time_steps`: a warm-up step, then `--steps` timed steps), with the run log ON in every variant, since live
export is fed by the run log:

  * main: live export off, the code of the main branch's checkout (`--main`, put first on PYTHONPATH);
  * off:  live export off, this checkout's code (the default: no `otel=`, no OTEL_EXPORTER_OTLP_* variable);
  * on:   `actorsim.init(..., otel=URL)`, URL a counting OTLP/HTTP receiver in a process of its own.

Each run is a fresh Python process (same interpreter, only PYTHONPATH differs), so the three variants start
alike. For each transport and agent count, every round runs the three variants back to back, in an order
rotated each round, so a noisy neighbour weighs on all of them alike. A variant's figure is the median of
its per-step times pooled over the rounds; the ratios are off/main (target 1.0) and on/off (target <= 1.2).

The receiver answers 200 to every protobuf POST on a path ending in /v1/traces and counts the spans, decoded
with opentelemetry.proto, by the path before /v1/traces (one per run, so spans arriving late are still put to
the right run) and by `gen_ai.operation.name`, and the POSTs. Expected per "on" run: one root (invoke_workflow)
per task, plus one invoke_agent and one chat span per agent and step (the warm-up step included). The
receiver's own CPU time during each "on" run is printed too: on a small machine it competes with the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRANSPORTS = ["local", "thespian", "ray"]
VARIANTS = ["main", "off", "on"]
RUN_TIMEOUT_S = 900
TRACES = "/v1/traces"


# -- the receiver, in a process of its own: `otel_bench.py --receiver` prints its port, serves until killed


class SpanCounter:
    """Spans received, by run label (the path before /v1/traces) and by `gen_ai.operation.name`."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.lock = threading.Lock()

    def take(self, label: str, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found: Counter[str] = Counter()
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    operation = next(
                        (a.value.string_value for a in span.attributes if a.key == "gen_ai.operation.name"), "other"
                    )
                    found[operation] += 1
        found["requests"] = 1
        with self.lock:
            self.counts[label].update(found)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {label: dict(counts) for label, counts in self.counts.items()}


def serve_receiver() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    counter = SpanCounter()
    answer = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?", 1)[0].rstrip("/")
            if not path.endswith(TRACES):
                self.reply(404, b"", "text/plain")
                return
            counter.take(path[: -len(TRACES)].strip("/"), body)
            self.reply(200, answer, "application/x-protobuf")

        def do_GET(self) -> None:  # noqa: N802
            self.reply(200, json.dumps(counter.snapshot()).encode(), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Receiver:
    """The receiver's process, started and stopped by this one."""

    def __enter__(self) -> Receiver:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--receiver"],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_environment(ROOT),
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        self.usage = psutil.Process(self.process.pid)
        return self

    def cpu_s(self) -> float:
        times = self.usage.cpu_times()
        return float(times.user + times.system)

    def counts(self) -> dict[str, dict[str, int]]:
        with urlopen(self.url + "/", timeout=10) as answer:
            counts: dict[str, dict[str, int]] = json.loads(answer.read())
            return counts

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- one run, in a fresh process: `otel_bench.py --run TRANSPORT AGENTS STEPS [--otel URL]` prints JSON


def one_run(transport: str, agents: int, steps: int, otel: str | None) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))  # step_bench, by itself: the checkout's root must not shadow PYTHONPATH's
    from step_bench import REPLY, TASK, time_steps

    import actorsim
    from actorsim import RolePlay, TaskCenter, create_component

    with tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as stack:
        runtime = stack.enter_context(
            actorsim.init(transport=transport, log_dir=logs, **({"otel": otel} if otel else {}))
        )
        config = getattr(runtime, "log_config", None)
        traced = getattr(config, "otel", None) is not None
        task_center = create_component(TaskCenter, name="task_center", remote=True)
        llm = {"model_server": "scripted", "replies": [REPLY]}
        task_center.add_agents(
            [create_component(RolePlay, name=f"agent_{n}", remote=True, llm=llm) for n in range(agents)]
        )
        task_center.send_task_request(TASK)
        cpu = family_cpu()
        durations = time_steps(task_center, steps)
        cpu = {pid: seconds - cpu.get(pid, 0.0) for pid, seconds in family_cpu().items()}
        task_center.close()
        closing = time.perf_counter()
    close_s = time.perf_counter() - closing  # the run's shutdown: with export on, the processes' last sends
    return {
        "durations": durations, "traced": traced, "close_s": close_s, "actorsim": actorsim.__file__,
        "cpu_s": sum(cpu.values()),
    }


def family_cpu() -> dict[int, float]:
    """CPU seconds so far of this run's processes, by pid, from each live thread's /proc schedstat (nanoseconds)
    where there is one, else psutil's (ticks of 10 ms). The run's processes: this one (which leads a session of
    its own, see `run_variant`), its session, and, to a fixed point, the children of any of them and the
    sessions they lead: Thespian's admin detaches from its parent (a fork, setsid, a fork: the middle one is a
    zombie child of this process, whose pid is the admin's session id), and its actors are the admin's."""
    me = psutil.Process()
    family = {me.pid, *(child.pid for child in me.children(recursive=True))}
    others = {}
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            others[process.pid] = (process, os.getsid(process.pid), process.ppid())
    grown = True
    while grown:
        grown = False
        for pid, (_, session, parent) in others.items():
            if pid not in family and (session in family or parent in family):
                family.add(pid)
                grown = True
    found = {}
    for pid in family:
        try:
            found[pid] = sum(
                int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()
            ) / 1e9
        except (OSError, ValueError, IndexError):
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            found[pid] = times.user + times.system
    return found


def clean_environment(code: Path) -> dict[str, str]:
    """This environment with `code` first on PYTHONPATH and no OTEL_EXPORTER_OTLP_* (which would turn export on)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    env["PYTHONPATH"] = str(code)
    return env


def run_variant(code: Path, transport: str, agents: int, steps: int, otel: str | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--run", transport, str(agents), str(steps)]
    if otel:
        command += ["--otel", otel]
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=clean_environment(code), cwd=HERE,
        start_new_session=True,  # the run's processes are its session (`family_cpu`)
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{transport} {agents} agents ({code}) failed:\n{tail}")
    answer: dict[str, Any] = json.loads(lines[-1])
    answer["wall_s"] = time.perf_counter() - started
    if not answer["actorsim"].startswith(str(code)):
        raise RuntimeError(f"ran {answer['actorsim']}, not the code in {code}")
    return answer


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", nargs="+", default=TRANSPORTS, choices=TRANSPORTS)
    parser.add_argument(
        "--main", type=Path, default=Path("/work/main"), help="a checkout of the main branch; its column is "
        "left out when it holds no actorsim package"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 steps, 2 agents, 1 round")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=3, metavar=("TRANSPORT", "AGENTS", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--otel", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.receiver:
        serve_receiver()
        return
    if args.run:
        transport, agents, steps = args.run
        print(json.dumps(one_run(transport, int(agents), int(steps), args.otel)), flush=True)
        return
    if args.quick:
        args.steps, args.agents, args.rounds = 5, [2], 1

    variants = VARIANTS if (args.main / "actorsim" / "__init__.py").exists() else VARIANTS[1:]
    code = {"main": args.main.resolve(), "off": ROOT, "on": ROOT}
    print(
        f"Live export's cost: median step over {args.rounds} interleaved rounds x {args.steps} steps "
        f"(after a warm-up), zero-latency scripted model, run log on; main = {code['main']}"
        + ("" if "main" in variants else " (missing: left out)"),
        flush=True,
    )
    samples: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    expected: dict[tuple[str, int], int] = {}
    labels: dict[tuple[str, int], list[str]] = defaultdict(list)
    receiver_ms: dict[tuple[str, int], list[float]] = defaultdict(list)
    cpu_ms: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    wall = time.perf_counter()
    with Receiver() as receiver:
        for round_ in range(args.rounds):
            order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
            for transport in args.transports:
                for agents in args.agents:
                    for variant in order:
                        label = f"{transport}-{agents}-r{round_}"
                        otel = f"{receiver.url}/{label}" if variant == "on" else None
                        receiver_cpu = receiver.cpu_s()
                        run = run_variant(code[variant], transport, agents, args.steps, otel)
                        receiver_cpu = receiver.cpu_s() - receiver_cpu
                        if run["traced"] != (variant == "on"):
                            raise RuntimeError(f"{variant} run had live export {'on' if run['traced'] else 'off'}")
                        samples[transport, agents, variant] += run["durations"]
                        cpu_ms[transport, agents, variant].append(run["cpu_s"] * 1000 / (args.steps + 1))
                        if otel:
                            labels[transport, agents].append(label)
                            expected[transport, agents] = 1 + 2 * agents * (args.steps + 1)
                            receiver_ms[transport, agents].append(receiver_cpu * 1000 / (args.steps + 1))
                        print(
                            f"  round {round_ + 1} {transport:<8} {agents:>3} agents {variant:<4} "
                            f"median {median_ms(run['durations']):8.2f} ms  close {run['close_s']:5.2f} s  "
                            f"process {run['wall_s']:5.1f} s  CPU {run['cpu_s'] * 1000 / (args.steps + 1):7.1f} ms/step"
                            + (f"  receiver CPU {receiver_cpu:5.2f} s" if otel else ""),
                            flush=True,
                        )
        time.sleep(1.0)  # anything still on its way
        received = receiver.counts()

    print()
    print(
        f"{'transport':<9} {'agents':>6} {'main ms':>9} {'off ms':>9} {'on ms':>9} {'off/main':>9} {'on/off':>7} "
        f"{'POSTs/step':>10} {'rcv CPU ms/step':>15}  spans received per run (invoke_workflow+invoke_agent+chat) "
        "/ expected"
    )
    for transport in args.transports:
        for agents in args.agents:
            ms = {v: median_ms(samples[transport, agents, v]) for v in variants}
            main_ms = f"{ms['main']:9.2f}" if "main" in ms else f"{'-':>9}"
            off_main = f"{ms['off'] / ms['main']:9.2f}" if "main" in ms else f"{'-':>9}"
            spans = []
            posts = statistics.median(received.get(label, {}).get("requests", 0) for label in labels[transport, agents])
            for label in labels[transport, agents]:
                counts = dict(received.get(label, {}))
                counts.pop("requests", None)
                parts = "+".join(str(counts.get(op, 0)) for op in ("invoke_workflow", "invoke_agent", "chat"))
                other = sum(n for op, n in counts.items() if op not in ("invoke_workflow", "invoke_agent", "chat"))
                spans.append(f"{sum(counts.values())} ({parts}{f', other {other}' if other else ''})")
            print(
                f"{transport:<9} {agents:>6} {main_ms} {ms['off']:9.2f} {ms['on']:9.2f} {off_main} "
                f"{ms['on'] / ms['off']:7.2f} {posts / (args.steps + 1):10.1f} "
                f"{statistics.median(receiver_ms[transport, agents]):15.2f}  "
                f"{'; '.join(spans)} / {expected[transport, agents]}",
                flush=True,
            )
    print(
        "\nCPU time of all the run's processes (driver, actor processes, Ray's), ms per step (warm-up included), "
        "median over rounds;\nthe receiver's is apart"
    )
    print(f"{'transport':<9} {'agents':>6} " + " ".join(f"{v:>9}" for v in variants) + f" {'on-off':>9} {'on/off':>7}")
    for transport in args.transports:
        for agents in args.agents:
            cpu = {v: statistics.median(cpu_ms[transport, agents, v]) for v in variants}
            print(
                f"{transport:<9} {agents:>6} " + " ".join(f"{cpu[v]:9.1f}" for v in variants)
                + f" {cpu['on'] - cpu['off']:9.1f} {cpu['on'] / cpu['off']:7.2f}"
            )
    print(f"\nwall time {time.perf_counter() - wall:.0f} s; targets: off/main 1.0, on/off <= 1.20")


if __name__ == "__main__":
    main()
