"""Export benchmark (issue 23): a recorded swarm run exported as OTLP/JSON and as a Chrome trace.

    python benchmarks/export_bench.py [--messages 100000] [--repeats 3] [--quick]

`--quick`: 10,000 and 1,000 messages, one export of each format.

The issue's target: the export of a 100,000-message swarm run in under 20 s on this machine, memory bounded
by a streaming reader (not the whole log in memory).

The logs are real runs, recorded here by actorsim, nothing synthesized or replicated: swarm_bench's swarm,
`--agents` hosted agents (group "swarm", on `--hosts` host actors on Thespian, so the log is one file per
process: the driver, the environment, the registry, each host), each with a zero-latency scripted model and
answering round-robin (`RoundRobin("swarm")`). As many tasks as agents are sent round-robin, then the task
center steps until `--messages` messages are published: at each step every agent answers the message it
holds and sends its reply on to the next agent, so each task is a causal chain through the swarm (100,000
messages: 1,000 tasks, 99 steps, 99,000 replies, each with its model call). Two
sizes are recorded, `--messages` and a tenth of it, each a run of its own. A 100,000-message run takes
about 25 s to record on a 2-core machine, so it is recorded whole rather than scaled up from a smaller
one. Logs and exported files live in a temporary folder removed at exit.

For each size, one run prints:
  * the log: published messages, the replies among them, its size on disk;
  * `export_run` to "otlp" and to "chrome", each in a fresh subprocess, `--repeats` times interleaved:
    the median seconds of the call, the spans it wrote, spans/s, and the child's peak RSS
    (VmHWM, see `peak_rss_mb`), and how far above its RSS after its imports that is;
  * that the `invoke_agent` spans of each output number the run's reply messages;
  * `actorsim.runs.read_run` on the same folder (which holds the whole run), in a fresh subprocess:
    its seconds and peak RSS the same way, for scale;
then PASS/FAIL for "< 20 s" (both formats, the larger size) and how each reader's memory grows with the run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

import actorsim
from actorsim import RolePlay, RoundRobin, TaskCenter, create_component

TARGET_S = 20.0
TARGET_MESSAGES = 100_000
PACKAGE_ROOT = Path(actorsim.__file__).resolve().parent.parent  # children import the actorsim this process does


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the run to export


def record_swarm(log_dir: Path, messages: int, agents: int, hosts: int) -> tuple[Path, float]:
    """A real swarm run of about `messages` published messages, logged under `log_dir`; its folder and the
    seconds it took (start to shutdown)."""
    agents = max(1, min(agents, messages // 10))
    steps = max(1, math.ceil(messages / agents) - 1)  # each task, then one reply per agent per step
    started = time.perf_counter()
    with actorsim.init(transport="thespian", hosts=hosts, log_dir=log_dir, ask_timeout=600, step_timeout=600) as rt:
        assert rt.log_config is not None
        directory = Path(rt.log_config.directory)
        center = create_component(TaskCenter, "swarm", remote=True)
        llm = {"model_server": "scripted", "replies": ["ok"]}
        center.add_agents(
            [
                create_component(
                    RolePlay, f"a{n}", remote=True, group="swarm", send_to=RoundRobin("swarm", start="first"), llm=llm
                )
                for n in range(agents)
            ]
        )
        for _ in range(agents):
            center.send_task_request("hop", send_to=RoundRobin("swarm", start="first"))
        for step in range(steps):
            for _frame in center.step():
                pass
            if step % 10 == 9:
                log(f"  recording: step {step + 1} of {steps}")
    return directory, time.perf_counter() - started


def log_facts(directory: Path) -> dict[str, float]:
    """Published messages, replies among them (messages with a cause), and the log's size in MB."""
    published = replies = 0
    for path in sorted(directory.glob("*.jsonl")):
        with path.open("rb") as lines:
            for line in lines:
                if b'"message.published"' not in line:
                    continue
                event = orjson.loads(line)
                if event["event"] == "message.published":
                    published += 1
                    replies += bool(event["message"].get("parent_ids"))
    size = sum(path.stat().st_size for path in directory.glob("*.jsonl"))
    return {"messages": published, "replies": replies, "log_mb": size / 2**20}


def invoke_agent_spans(out: Path, form: str) -> int:
    """The `invoke_agent` spans of an exported file, read a line at a time (both formats put a line per
    OTLP request or trace event)."""
    count = 0
    with out.open("rb") as lines:
        for line in lines:
            if form == "otlp":
                request = orjson.loads(line)
                count += sum(
                    span["name"].startswith("invoke_agent ")
                    for resource_spans in request["resourceSpans"]
                    for scope in resource_spans["scopeSpans"]
                    for span in scope["spans"]
                )
            else:
                text = line.strip().rstrip(b",")
                if text.startswith(b"{") and not text.startswith(b'{"displayTimeUnit"'):
                    event = orjson.loads(text)
                    count += event["ph"] == "X" and event["name"].startswith("invoke_agent ")
    return count


# -- each measurement in a fresh process


def child(*arguments: str) -> dict[str, Any]:
    """Run this script's `--child` in a fresh interpreter; what it reports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *arguments], capture_output=True, text=True, env=env, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {arguments} failed: {done.stderr.strip()[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, its own address space's high-water mark. Not `ru_maxrss`, which
    on Linux keeps across `execve` the peak of the process before it: a child's `ru_maxrss` starts at its
    parent's RSS (so does `RUSAGE_CHILDREN`'s)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: an overstatement at worst


def run_child(kind: str, directory: str, out: str) -> None:
    """In the child: imports, then one `kind` ("import", "otlp", "chrome" or "read_run"); prints seconds,
    result and peak RSS as a line of JSON."""
    from actorsim.export import export_run
    from actorsim.runs import read_run

    gc.collect()
    imported = psutil.Process().memory_info().rss / 2**20
    started, cpu = time.perf_counter(), time.process_time()
    result = 0
    if kind in ("otlp", "chrome"):
        result = export_run(directory, out, format=kind)  # type: ignore[arg-type]
    elif kind == "read_run":
        result = len(read_run(directory).events)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    report = {"seconds": seconds, "cpu": cpu, "result": result, "peak_mb": peak_rss_mb(), "import_mb": imported}
    print(json.dumps(report))


def measure(directory: Path, scratch: Path, repeats: int) -> dict[str, Any]:
    facts = log_facts(directory)
    row: dict[str, Any] = dict(facts)
    child("import", str(directory), "")  # a warm-up: any bytecode compiled, files in the page cache
    samples: dict[str, list[dict[str, Any]]] = {"otlp": [], "chrome": []}
    for repeat in range(repeats):
        for form in ("otlp", "chrome"):  # interleaved, so a noisy neighbour weighs on both alike
            out = scratch / f"run.{form}"
            samples[form].append(child(form, str(directory), str(out)))
            if repeat == 0:
                row[f"{form}_invoke_agent"] = invoke_agent_spans(out, form)
            out.unlink()
            done = samples[form][-1]
            log(
                f"  {form} {repeat + 1}/{repeats}: {done['seconds']:.2f} s ({done['cpu']:.2f} s CPU), "
                f"peak RSS {done['peak_mb']:.0f} MB"
            )
    for form, runs in samples.items():
        row[f"{form}_s"] = statistics.median(run["seconds"] for run in runs)
        row[f"{form}_cpu"] = statistics.median(run["cpu"] for run in runs)
        row[f"{form}_mb"] = max(run["peak_mb"] for run in runs)
        row[f"{form}_grown_mb"] = max(run["peak_mb"] - run["import_mb"] for run in runs)
        spans = {run["result"] for run in runs}
        assert len(spans) == 1, f"{form}: span counts differ between exports: {spans}"
        row[f"{form}_spans"] = spans.pop()
    whole = child("read_run", str(directory), "")
    row["read_run_s"], row["read_run_mb"] = whole["seconds"], whole["peak_mb"]
    row["read_run_grown_mb"], row["import_mb"] = whole["peak_mb"] - whole["import_mb"], whole["import_mb"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, help=f"the larger run (default {TARGET_MESSAGES}; --quick: 10000)")
    parser.add_argument("--quick", action="store_true", help="10,000 and 1,000 messages, one export of each")
    parser.add_argument("--repeats", type=int, help="exports of each format per size, median taken (default 3)")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
        return
    messages = args.messages or (10_000 if args.quick else TARGET_MESSAGES)
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = [max(100, messages // 10), messages]
    rows: list[dict[str, Any]] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="export-bench-") as temp:
        scratch = Path(temp)
        for size in sizes:
            log(f"recording a swarm run of {size} messages ({args.agents} agents, {args.hosts} hosts, Thespian)")
            directory, recorded = record_swarm(scratch / f"logs-{size}", size, args.agents, args.hosts)
            log(f"  recorded in {recorded:.1f} s; exporting")
            loads.append(os.getloadavg()[0])
            rows.append({"recorded_s": recorded, **measure(directory, scratch, repeats)})
            loads.append(os.getloadavg()[0])

    print(
        f"Export of a recorded swarm run (hosted agents on Thespian), median of {repeats}; "
        f"RSS: each reader's process at its peak (after its imports alone: {rows[0]['import_mb']:.0f} MB)"
    )
    print(
        f"{'messages':>9} {'log MB':>7} {'spans':>7} {'otlp s':>7} {'chrome s':>8} {'otlp spans/s':>12} "
        f"{'chrome spans/s':>14} {'RSS otlp MB':>11} {'RSS chrome MB':>13} {'read_run s':>10} "
        f"{'RSS read_run MB':>15} {'invoke_agent otlp/chrome/replies':>33}"
    )
    for row in rows:
        agreed = row["otlp_invoke_agent"] == row["chrome_invoke_agent"] == row["replies"]
        counts = f"{row['otlp_invoke_agent']}/{row['chrome_invoke_agent']}/{row['replies']}"
        agreement = f"{counts} {'equal' if agreed else 'DIFFER'}"
        print(
            f"{row['messages']:>9} {row['log_mb']:>7.1f} {row['otlp_spans']:>7} {row['otlp_s']:>7.2f} "
            f"{row['chrome_s']:>8.2f} {row['otlp_spans'] / row['otlp_s']:>12.0f} "
            f"{row['chrome_spans'] / row['chrome_s']:>14.0f} {row['otlp_mb']:>11.0f} {row['chrome_mb']:>13.0f} "
            f"{row['read_run_s']:>10.2f} {row['read_run_mb']:>15.0f} "
            f"{agreement:>33}"
        )

    small, big = rows
    slowest = max(big["otlp_s"], big["chrome_s"])
    scope = "" if big["messages"] >= TARGET_MESSAGES else f" (the target is for {TARGET_MESSAGES} messages)"
    verdict = "PASS" if slowest < TARGET_S else "FAIL"
    print(
        f"\nTime: {verdict}: the slower export of {big['messages']} messages took {slowest:.2f} s, "
        f"target < {TARGET_S:.0f} s{scope} (median CPU: otlp {big['otlp_cpu']:.2f} s, chrome {big['chrome_cpu']:.2f} s)"
    )
    print(
        f"Load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs"
        + ("; wall times are inflated by other work, the CPU times are not" if max(loads) > os.cpu_count() else "")
    )
    scale = big["messages"] / small["messages"]
    print(
        f"Memory, {small['messages']} -> {big['messages']} messages ({scale:.0f}x the run, "
        f"log {small['log_mb']:.0f} -> {big['log_mb']:.0f} MB), peak RSS above the process's own after its imports:"
    )
    for label, key in (("export otlp", "otlp"), ("export chrome", "chrome"), ("read_run", "read_run")):
        before, after = small[f"{key}_grown_mb"], big[f"{key}_grown_mb"]
        per_1k = (after - before) / (big["messages"] - small["messages"]) * 1000
        print(
            f"  {label:<14} {before:8.0f} -> {after:8.0f} MB  ({after / max(before, 1):5.1f}x; "
            f"{per_1k:6.2f} MB per 1000 messages more; {after / big['log_mb']:.2f} of the log's size)"
        )
    agreed = all(row["otlp_invoke_agent"] == row["chrome_invoke_agent"] == row["replies"] for row in rows)
    print(f"Spans: invoke_agent spans = reply messages in both formats at both sizes: {'yes' if agreed else 'NO'}")
    log(f"recording took {small['recorded_s']:.1f} s and {big['recorded_s']:.1f} s; pid {os.getpid()}")


if __name__ == "__main__":
    main()
