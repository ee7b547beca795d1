"""A strict checker of Chrome's trace-event format (the JSON that chrome://tracing and Perfetto load).

The rules are the format's documented ones ("Trace Event Format", the Google doc that Catapult and Perfetto
link to), as tightly as a writer can keep them, plus where the two viewers read the same event differently,
the reading both agree on:

* the file is one object with a `traceEvents` list (`displayTimeUnit` "ms" or "ns");
* each event has a documented `ph`, a str `name`, an int `pid`, an int `tid` where a thread is meant, a
  finite numeric `ts` (microseconds) except on metadata; no key outside the documented ones;
* complete events ("X") have a finite `dur` >= 0; begin/end ("B"/"E") pairs match on their thread;
* metadata ("M") are `process_name`/`thread_name` with a str `args.name`, or the `*_sort_index`/
  `process_labels` ones; a track is named before its first event and never renamed;
* slices on one thread nest: two either do not overlap or one holds the other;
* every flow ("s", then any "t", then "f") is one id with one start and one end, the same `cat` and
  `name`, in time order; "s" and "t" bind to the slice enclosing them on their thread, "f" with
  `"bp": "e"` too, a plain "f" to the next slice that starts on its thread;
* and that slice is the one both viewers bind it to (unless asked `portable=False`): chrome://tracing
  (Catapult) takes the deepest slice whose closed interval holds the flow's ts, computed in milliseconds
  (a flow on a slice's very end can fall past it and be dropped); Perfetto's trace processor takes the
  slice most recently begun on the thread, even one that has already ended (a flow put after a child
  slice ended binds to the child there).

`check_trace(document)` raises `TraceFormatError` listing every broken rule, or returns what it read.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = frozenset("BEXiICbneSTpFstfPNODMVvRc()")
"""Every documented phase: duration, complete, instant (and the deprecated "I"), counter, async (nestable
and the deprecated S/T/p/F), flow, sample, object, metadata, memory dump, mark, clock sync, context."""

EVENT_KEYS = frozenset({
    "name", "cat", "ph", "ts", "tts", "pid", "tid", "args", "dur", "tdur", "id", "id2", "bp", "s", "scope",
    "cname", "bind_id", "flow_in", "flow_out", "sf", "stack", "esf", "estack", "use_async_tts",
})
TOP_KEYS = frozenset({
    "traceEvents", "displayTimeUnit", "systemTraceEvents", "otherData", "stackFrames", "samples",
    "controllerTraceDataKey", "powerTraceAsString", "metadata",
})
METADATA = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index",
            "thread_sort_index": "sort_index", "process_labels": "labels"}
THREADLESS = frozenset("MCbneSTpFNODvV")
"""Phases whose event belongs to a process (or to no thread): `tid` may be left out."""
FLOWS = frozenset("stf")
MS_PER_US = 1e-6 / 1e-3
"""Catapult's µs to ms factor, computed as it computes it (`tr.b.convertUnit`): with Unix-epoch timestamps
(~1.8e15 µs) a flow put exactly on a slice's end can land past it, and the flow is dropped."""


class TraceFormatError(AssertionError):
    """The broken rules, one a line."""


@dataclass(frozen=True)
class Slice:
    pid: int
    tid: int
    name: str
    start: float
    end: float
    index: int  # its place among the trace's events, which breaks ties between equal starts
    args: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def catapult_span(self) -> tuple[float, float]:
        """Its start and end as chrome://tracing computes them: in milliseconds, the end as start + duration."""
        start = self.start * MS_PER_US
        return start, start + (self.end - self.start) * MS_PER_US


@dataclass(frozen=True)
class Flow:
    id: Any
    cat: str
    name: str
    start: Slice
    end: Slice


@dataclass
class Trace:
    """What a valid file holds: its tracks' names, its slices and its flows, each bound to its two slices."""

    processes: dict[int, str]
    threads: dict[tuple[int, int], str]
    slices: list[Slice]
    flows: list[Flow]
    counts: dict[str, int]


def load(path: str | Path) -> dict[str, Any]:
    """The file as JSON, refusing NaN and Infinity (not JSON, though Python writes them)."""

    def refuse(constant: str) -> Any:
        raise TraceFormatError(f"{path}: {constant} is not JSON")

    document = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)
    if not isinstance(document, dict):
        raise TraceFormatError(f"{path}: the JSON Object Format is an object, not {type(document).__name__}")
    return document


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    def __init__(self, portable: bool) -> None:
        self.portable = portable
        self.problems: list[str] = []
        self.processes: dict[int, str] = {}
        self.threads: dict[tuple[int, int], str] = {}
        self.thread_pid: dict[int, int] = {}
        self.slices: dict[tuple[int, int], list[Slice]] = defaultdict(list)
        self.open: dict[tuple[int, int], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.flow_steps: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)

    def fail(self, index: int, event: Any, problem: str) -> None:
        self.problems.append(f"event {index} {json.dumps(event, default=str)[:200]}: {problem}")

    def event(self, index: int, event: Any) -> None:
        if not isinstance(event, dict):
            self.fail(index, event, "not an object")
            return
        phase = event.get("ph")
        if not isinstance(phase, str) or phase not in PHASES:
            self.fail(index, event, f"ph {phase!r} is not a documented phase")
            return
        self.counts[phase] += 1
        for key in sorted(event.keys() - EVENT_KEYS):
            self.fail(index, event, f"{key!r} is not a documented field")
        if not isinstance(event.get("name"), str) or not event["name"]:
            self.fail(index, event, "no str name")
        if "cat" in event and not isinstance(event["cat"], str):
            self.fail(index, event, "cat is not a str")
        if "args" in event and not isinstance(event["args"], dict):
            self.fail(index, event, "args is not an object")
        if not _int(event.get("pid")):
            self.fail(index, event, "pid is not an int")
            return
        if ("tid" in event or phase not in THREADLESS) and not _int(event.get("tid")):
            self.fail(index, event, "tid is not an int")
            return
        if phase == "M":
            self.metadata(index, event)
            return
        if not _number(event.get("ts")):
            self.fail(index, event, "ts is not a finite number of microseconds")
            return
        if "tid" in event:
            self.named_before_use(index, event)
        if phase == "X":
            self.complete(index, event)
        elif phase in "BE":
            self.duration(index, event)
        elif phase in FLOWS:
            self.flow(index, event)
        elif phase in "iI" and event.get("s", "t") not in ("g", "p", "t"):
            self.fail(index, event, "an instant's scope s is g, p or t")

    def metadata(self, index: int, event: dict[str, Any]) -> None:
        name, args = event.get("name"), event.get("args")
        if name not in METADATA:
            self.fail(index, event, f"metadata {name!r} is not one of {sorted(METADATA)}")
            return
        value = args.get(METADATA[name]) if isinstance(args, dict) else None
        if name.startswith("thread_") and "tid" not in event:
            self.fail(index, event, f"{name} without a tid")
            return
        if name.endswith("_name"):
            if not isinstance(value, str) or not value:
                self.fail(index, event, f"{name} without a str args.name")
                return
            pid = event["pid"]
            if name == "process_name":
                if self.processes.setdefault(pid, value) != value:
                    self.fail(index, event, f"process {pid} renamed from {self.processes[pid]!r}")
            else:
                tid = event["tid"]
                if self.threads.setdefault((pid, tid), value) != value:
                    self.fail(index, event, f"thread {pid}/{tid} renamed from {self.threads[pid, tid]!r}")
                if self.thread_pid.setdefault(tid, pid) != pid:
                    # Perfetto keys a thread by its tid: a tid in two processes is one thread that moved.
                    self.fail(index, event, f"tid {tid} is already a thread of process {self.thread_pid[tid]}")
        elif name.endswith("_sort_index") and not _int(value):
            self.fail(index, event, f"{name} without an int args.sort_index")

    def named_before_use(self, index: int, event: dict[str, Any]) -> None:
        pid, tid = event["pid"], event["tid"]
        if pid not in self.processes:
            self.fail(index, event, f"process {pid} is used before a process_name names it")
        if (pid, tid) not in self.threads:
            self.fail(index, event, f"thread {pid}/{tid} is used before a thread_name names it")

    def complete(self, index: int, event: dict[str, Any]) -> None:
        duration = event.get("dur")
        if not _number(duration) or duration < 0:
            self.fail(index, event, "an X event's dur is a finite number >= 0")
            return
        if "tdur" in event and (not _number(event["tdur"]) or event["tdur"] < 0):
            self.fail(index, event, "tdur is a finite number >= 0")
        start = event["ts"]
        self.slices[event["pid"], event["tid"]].append(
            Slice(event["pid"], event["tid"], event["name"], start, start + duration, index, event.get("args", {})))

    def duration(self, index: int, event: dict[str, Any]) -> None:
        thread = (event["pid"], event["tid"])
        if event["ph"] == "B":
            self.open[thread].append((index, event))
            return
        if not self.open[thread]:
            self.fail(index, event, "an E with no open B on its thread")
            return
        begun_at, begun = self.open[thread].pop()
        if event["ts"] < begun["ts"]:
            self.fail(index, event, f"ends before its B (event {begun_at}) begins")
            return
        self.slices[thread].append(Slice(*thread, begun["name"], begun["ts"], event["ts"], begun_at,
                                         {**begun.get("args", {}), **event.get("args", {})}))

    def flow(self, index: int, event: dict[str, Any]) -> None:
        if not (_int(event.get("id")) or isinstance(event.get("id"), str)):
            self.fail(index, event, "a flow event's id is an int or a str")
            return
        if not isinstance(event.get("cat"), str):
            self.fail(index, event, "a flow event has a cat")
        if "bp" in event and (event["ph"] != "f" or event["bp"] != "e"):
            self.fail(index, event, 'bp is only "e", on an "f"')
        self.flow_steps[event["id"]].append((index, event))

    def nesting(self) -> None:
        for thread, slices in self.slices.items():
            slices.sort(key=lambda s: (s.start, -s.end, s.index))
            stack: list[Slice] = []
            for piece in slices:
                while stack and stack[-1].end <= piece.start and piece.end > stack[-1].end:
                    stack.pop()  # ended before this one began (one of no length at its end stays inside)
                if stack and piece.end > stack[-1].end:
                    self.problems.append(
                        f"thread {thread[0]}/{thread[1]}: {piece.name!r} [{piece.start}, {piece.end}] (event "
                        f"{piece.index}) overlaps {stack[-1].name!r} [{stack[-1].start}, {stack[-1].end}] "
                        f"(event {stack[-1].index}) without nesting in it")
                    continue
                stack.append(piece)
        for thread, still_open in self.open.items():
            for index, event in still_open:
                self.problems.append(f"event {index}: B {event['name']!r} on {thread} never ends")

    def binding(self, index: int, event: dict[str, Any]) -> Slice | None:
        """The slice both viewers bind the flow event to, or None (with the problem said)."""
        thread = (event["pid"], event["tid"])
        slices, ts = self.slices.get(thread, []), event["ts"]
        if event["ph"] == "f" and event.get("bp") != "e":
            later = [s for s in slices if s.start >= ts]
            if not later:
                self.fail(index, event, "no slice starts on its thread at or after a plain f (it binds to the next)")
                return None
            return min(later, key=lambda s: (s.start, s.index))
        enclosing = [s for s in slices if s.start <= ts <= s.end]
        if not enclosing:
            self.fail(index, event, "no slice on its thread encloses it (s, t and f with bp e bind to the enclosing)")
            return None
        documented = max(enclosing, key=lambda s: (s.start, -s.end, s.index))  # the deepest
        if not self.portable:
            return documented
        at = ts * MS_PER_US
        held = [s for s in slices if s.catapult_span[0] <= at <= s.catapult_span[1]]
        catapult = max(held, key=lambda s: (s.start, -s.end, s.index)) if held else None
        begun = [s for s in slices if s.start <= ts]
        perfetto = max(begun, key=lambda s: (s.start, -s.end, s.index))  # the most recently begun
        said = f"{documented.name!r} [{documented.start}, {documented.end}]"
        if catapult is None:
            self.fail(index, event, f"chrome://tracing drops it: in its milliseconds it falls outside {said}")
        elif catapult is not documented:
            self.fail(index, event, f"chrome://tracing, in its milliseconds, binds it to {catapult.name!r}, "
                                    f"not {said}")
        if perfetto is not documented:
            self.fail(index, event, f"Perfetto binds it to {perfetto.name!r} [{perfetto.start}, {perfetto.end}], "
                                    f"the slice begun last on its thread, not {said}")
        return documented if catapult is documented and perfetto is documented else None

    def bound_flows(self) -> list[Flow]:
        flows = []
        for flow_id, steps in self.flow_steps.items():
            phases = "".join(event["ph"] for _, event in steps)
            index, first = steps[0]
            if phases.count("s") != 1 or phases.count("f") != 1 or phases[0] != "s" or phases[-1] != "f":
                self.fail(index, first, f"flow id {flow_id!r} is {phases!r}: one s, any t, one f, in that order")
                continue
            if len({(event.get("cat"), event["name"]) for _, event in steps}) != 1:
                self.fail(index, first, f"flow id {flow_id!r} changes cat or name along the way")
            times = [event["ts"] for _, event in steps]
            if times != sorted(times):
                self.fail(index, first, f"flow id {flow_id!r} goes back in time: {times}")
            start, end = self.binding(*steps[0]), self.binding(*steps[-1])
            if start is not None and end is not None:
                flows.append(Flow(flow_id, str(first.get("cat")), first["name"], start, end))
        return flows


def check_trace(document: Mapping[str, Any], *, portable: bool = True) -> Trace:
    """What `document` (a parsed trace-event JSON object) holds; raises `TraceFormatError` for any broken rule.

    With `portable=False` a flow binds as the format documents it (and chrome://tracing reads it) whatever
    Perfetto makes of it: for a test that asks Perfetto itself.
    """
    checker = _Checker(portable)
    for key in sorted(document.keys() - TOP_KEYS):
        checker.problems.append(f"top level: {key!r} is not a documented field")
    if document.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        checker.problems.append(f"top level: displayTimeUnit {document['displayTimeUnit']!r} is not 'ms' or 'ns'")
    events = document.get("traceEvents")
    if not isinstance(events, list):
        raise TraceFormatError("top level: traceEvents is not a list")
    for index, event in enumerate(events):
        checker.event(index, event)
    checker.nesting()
    flows = checker.bound_flows()
    if checker.problems:
        shown = checker.problems[:40]
        more = len(checker.problems) - len(shown)
        raise TraceFormatError("\n".join([f"{len(checker.problems)} broken rule(s):", *shown,
                                          *([f"... and {more} more"] if more else [])]))
    slices = sorted((s for thread in checker.slices.values() for s in thread), key=lambda s: s.index)
    return Trace(dict(checker.processes), dict(checker.threads), slices, flows, dict(checker.counts))
