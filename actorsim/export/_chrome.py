"""Spans as Chrome trace-event JSON (Perfetto, chrome://tracing): a process track per process of the run, a thread
track per actor, a slice per agent step, model call and tool call, and flow arrows from each message's step to
the steps it caused.

Viewers bind a flow's start to the slice begun last on its thread at its time, so an arrow starts where its
cause's step starts (later in the step, it would leave the step's last model call instead). A task's root is
drawn from its creation to its publication: tasks on one thread then never overlap, as slices of a thread must
not. Tracks carry the process's own pid where no two processes share one; thread ids never equal a pid, which
Perfetto would read as the process's main thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from actorsim._telemetry.spans import Resource, Span

_THREADS_PER_PROCESS = 10_000


def trace_events(spans: Iterable[Span], *, origin: float = 0.0) -> Iterator[dict[str, Any]]:
    """The trace events, in the order the spans come; each track named before its first slice. Times count
    microseconds from `origin` (seconds since the epoch; the run's start, so that they keep their precision)."""
    processes: dict[Resource, int] = {}
    threads: dict[tuple[int, str], int] = {}
    placed: dict[str, tuple[int, int, float]] = {}  # span id -> (pid, tid, start in µs)
    waiting: dict[str, list[str]] = {}  # span id of a cause -> its effects, until both are placed
    flow = 0
    for span in spans:
        pid = processes.get(span.resource)
        if pid is None:
            taken = set(processes.values())
            pid = span.resource.pid if span.resource.pid not in taken else max(taken) + 1
            processes[span.resource] = pid
            where = span.resource.host + (f", node {span.resource.node[:8]}" if span.resource.node else "")
            yield {"ph": "M", "name": "process_name", "pid": pid,
                   "args": {"name": f"{span.resource.process} ({where}, pid {span.resource.pid})"}}
        actor = span.actor or span.resource.process
        tid = threads.get((pid, actor))
        if tid is None:
            tid = threads[pid, actor] = pid * _THREADS_PER_PROCESS + len(threads) + 1
            yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": actor}}
        start, end = (span.start - origin) * 1e6, (max(span.end, span.start) - origin) * 1e6
        if span.attributes.get("gen_ai.operation.name") == "invoke_workflow" and span.events:  # to its publication
            end = max(start, (span.events[0].ts - origin) * 1e6)
        yield {"ph": "X", "name": span.name, "cat": str(span.attributes.get("gen_ai.operation.name", "actorsim")),
               "ts": start, "dur": end - start, "pid": pid, "tid": tid,
               "args": {"trace_id": span.trace_id, "span_id": span.span_id, **span.attributes}}
        if span.name.startswith("invoke_"):  # only steps and tasks cause others: model and tool calls are not kept
            placed[span.span_id] = (pid, tid, start)
        for cause in span.caused_by:  # a task's root ends last: its arrows wait for it
            waiting.setdefault(cause, []).append(span.span_id)
        for cause in [span.span_id, *span.caused_by]:
            if cause not in placed:
                continue
            for effect in waiting.pop(cause, []):
                cause_pid, cause_tid, cause_start = placed[cause]
                effect_pid, effect_tid, effect_start = placed[effect]
                flow += 1
                yield {"ph": "s", "name": "caused", "cat": "message", "id": flow, "pid": cause_pid,
                       "tid": cause_tid, "ts": cause_start}
                yield {"ph": "f", "bp": "e", "name": "caused", "cat": "message", "id": flow, "pid": effect_pid,
                       "tid": effect_tid, "ts": effect_start}
