"""A recorded run as spans, after the OpenTelemetry GenAI semantic conventions.

Every task (a trace id of the run's messages) is a trace. Its root span is the run's workflow for that
task (`invoke_workflow`, `gen_ai.conversation.id` = the run id); an agent's step that answered is an
`invoke_agent {role}` span under the span of the message that caused it (its first cause; the others
are links); its model calls are `chat {model}` spans and its tool calls `execute_tool {name}` spans
under it. A cause from another task (a message still queued when the next task came) is a link. Ids come
from the message ids: a task's trace id is its own id, a span's id the first 8 bytes
of a hash of what it stands for, so the same run exported twice gives the same ids.

The spans are built as the events stream by (`spans`): a span is given out once it ends; what is held is
the spans still open and each message's trace id (for causes across tasks), never the run's events.

Live (`live=True`, one builder per process of a running run) each process sees only its own events: an
agent's step ends at its reply (`message.replied`, which names its causes as the W3C trace context its
messages carried), and a task's root span is given out when the task is published (its end is not known).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from actorsim._core.envelope import USER_REQUIREMENT, Message

OPERATION = "gen_ai.operation.name"


def span_id(*parts: str) -> str:
    """A span's id: 16 hex digits drawn from what it stands for (deterministic, never all zero)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
    return digest if digest != "0" * 16 else "1" + digest[1:]


@attrs.frozen
class Resource:
    """Where a span ran: a process of the run (its name in the run, pid, host, Ray node)."""

    process: str
    pid: int
    host: str
    node: str | None = None

    @classmethod
    def of(cls, event: dict[str, Any]) -> Resource:
        return cls(str(event.get("process", "?")), int(event.get("pid", 0)), str(event.get("host", "?")),
                   event.get("node"))


SERVICE_NAME = "actorsim"


def resource_attributes(resource: Resource) -> dict[str, Any]:
    """A process's resource attributes (OpenTelemetry's `service.*`, `process.pid`, `host.name`)."""
    found = {
        "service.name": SERVICE_NAME, "service.instance.id": f"{resource.host}/{resource.pid}",
        "process.pid": resource.pid, "host.name": resource.host, "actorsim.process": resource.process,
        "actorsim.ray_node": resource.node,
    }
    return {key: value for key, value in found.items() if value is not None}


@attrs.define
class SpanEvent:
    name: str
    ts: float
    attributes: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Span:
    """One span: ids in hex (32 digits for the trace, 16 for spans), times in seconds since the epoch."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start: float
    end: float
    resource: Resource
    actor: str | None = None
    attributes: dict[str, Any] = attrs.Factory(dict)
    events: list[SpanEvent] = attrs.Factory(list)
    links: list[tuple[str, str]] = attrs.Factory(list)  # (trace id, span id)
    caused_by: tuple[str, ...] = ()  # span ids of the spans whose messages caused this one (flow arrows)


def is_task(message: dict[str, Any]) -> bool:
    return bool(message["sent_from"] == USER_REQUIREMENT or message["message_id"] == message["trace_id"])


def message_span(message: dict[str, Any] | Message) -> tuple[str, str]:
    """The (trace id, span id) of the span that made `message` (a logged one, or a `Message`): a task's root, or
    the step that replied; as its W3C `traceparent` says where it carries one."""
    if isinstance(message, Message):
        carried, trace, message_id = message.traceparent, message.trace_id, message.message_id
        task = message.sent_from == USER_REQUIREMENT or message_id == trace
    else:
        carried, trace, message_id = message.get("traceparent"), str(message["trace_id"]), str(message["message_id"])
        task = is_task(message)
    parsed = parse_traceparent(carried)
    if parsed is not None:
        return parsed
    if task:
        return trace, span_id("task", trace)
    return trace, span_id("reply", message_id.split(".", 1)[0])  # a post: its reply's step


def traceparent(trace: str, span: str) -> str:
    """The W3C trace context header of a span (version 00, sampled)."""
    return f"00-{trace}-{span}-01"


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C `traceparent` header; None for none or one malformed."""
    parts = header.split("-") if header else ()
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    return parts[1], parts[2]


def spans(events: Iterable[dict[str, Any]], *, content: bool = False) -> Iterator[Span]:
    """The run's spans from its events (in time order), each given out once it ends. `content`: message text
    and model replies as attributes too (off by default, as the conventions ask)."""
    builder = Builder(content)
    for event in events:
        yield from builder.take(event)
    yield from builder.finish()


class Builder:
    """Spans from events fed one by one (`take`); `finish` gives out those still open."""

    def __init__(self, content: bool, *, live: bool = False) -> None:
        self.content = content
        self.live = live
        self.run_id = ""
        self.last_ts = 0.0
        self.roots: dict[str, Span] = {}  # by trace id: a task's root, open until the run ends
        self.steps: dict[str, Span] = {}  # by reply id: an agent's step, open until its reply is published
        self.calls: dict[tuple[str, str], Span] = {}  # open model and tool calls, by (reply id, "chat#n"/"call#n")
        self.children: dict[str, list[Span]] = {}  # ended calls, by reply id: given out with their step
        self.traces: dict[str, str] = {}  # message id -> its trace: a cause may be another task's (ids only)
        self.sent: set[str] = set()  # ids of messages the driver sent on a task (its root span made them)

    def take(self, event: dict[str, Any]) -> Iterator[Span]:
        kind = event["event"]
        self.last_ts = max(self.last_ts, float(event["ts"]))
        self.run_id = self.run_id or str(event.get("run_id", ""))
        if kind == "message.published":
            yield from (self._published_live(event) if self.live else self._published(event))
        elif kind == "message.replied":
            yield from self._replied(event)
        elif kind == "message.delivered" and event.get("reply_id"):
            self._delivered(event)
        elif kind == "llm.call.started" and event.get("reply_id"):
            self._call_started(event, "chat", f"chat {event.get('model', '?')}", {
                OPERATION: "chat", "gen_ai.request.model": event.get("model"),
            })
        elif kind in ("llm.call.finished", "llm.call.failed") and event.get("reply_id"):
            self._call_ended(event, "chat")
        elif kind == "tool.call.started" and event.get("reply_id"):
            self._call_started(event, str(event.get("call_id")), f"execute_tool {event.get('tool', '?')}", {
                OPERATION: "execute_tool", "gen_ai.tool.name": event.get("tool"),
                "gen_ai.tool.call.id": event.get("call_id"),
            })
        elif kind in ("tool.call.finished", "tool.call.failed") and event.get("reply_id"):
            self._call_ended(event, str(event.get("call_id")))

    def _published(self, event: dict[str, Any]) -> Iterator[Span]:
        message = event["message"]
        trace = str(message["trace_id"])
        root = self.roots.get(trace)
        if root is None:
            root = self.roots[trace] = self._root(event)
        root.end = max(root.end, float(event["ts"]))
        self.traces[str(message["message_id"])] = root.trace_id  # the root's own string: one copy per task
        step = self.steps.pop(str(message["message_id"]), None)
        if step is None:  # a task, or a message no delivered step stands for (posts, a replayed run's start)
            if not is_task(message) and "." not in str(message["message_id"]):
                self.sent.add(str(message["message_id"]))
            root.events.append(SpanEvent("message.published", float(event["ts"]), self._message_attributes(message)))
            return
        causes = [(self.traces.get(str(parent), trace), str(parent)) for parent in message.get("parent_ids", ())]
        yield from self._ended(step, event, [(t, self._span_of(parent, t)) for t, parent in causes])

    def _published_live(self, event: dict[str, Any]) -> Iterator[Span]:
        """Live, the process that publishes sees only the publication: a task's root span, whole."""
        if is_task(event["message"]):
            root = self._root(event)
            root.events.append(SpanEvent("message.published", root.end, self._message_attributes(event["message"])))
            yield root

    def _replied(self, event: dict[str, Any]) -> Iterator[Span]:
        """Live, an agent's step ends with its reply; its causes are the trace contexts its messages carried."""
        step = self.steps.pop(str(event["message"]["message_id"]), None)
        if step is not None:
            yield from self._ended(step, event, [(str(t), str(s)) for t, s in event.get("causes", ())])

    def _root(self, event: dict[str, Any]) -> Span:
        message = event["message"]
        trace = str(message["trace_id"])
        return Span(
            trace, span_id("task", trace), None, "invoke_workflow actorsim", float(message["created_at"]),
            float(event["ts"]), Resource.of(event), actor=event.get("actor"),
            attributes={OPERATION: "invoke_workflow", "gen_ai.conversation.id": self.run_id,
                        "actorsim.run_id": self.run_id, "actorsim.task_id": trace},
        )

    def _ended(self, step: Span, event: dict[str, Any], causes: list[tuple[str, str]]) -> Iterator[Span]:
        """The step of `event`'s message, ended: parent its first cause of the same task (the task itself where
        none is); the other causes are links. `causes`: (trace id, span id) of each."""
        message = event["message"]
        trace = str(message["trace_id"])
        step.end = float(event["ts"])
        # The span's attributes say what the message is; its publication event, only where it went.
        published = {"actorsim.send_to": list(message["send_to"])}
        if self.content:
            published["actorsim.content"] = message["content"]
        step.events.append(SpanEvent(event["event"], step.end, published))
        step.attributes.update({"actorsim.clock": message["clock"], "actorsim.step": message["step"],
                                "actorsim.round": message["round"]})
        first = next((cause for cause in causes if cause[0] == trace), (trace, span_id("task", trace)))
        step.parent_span_id = first[1]
        step.caused_by = tuple(span for _, span in causes)
        step.links = [cause for cause in causes if cause != first]
        step.trace_id = trace
        yield from self._with_children(step)

    def _span_of(self, message_id: str, trace: str) -> str:
        """The span that made a message: its task's root for the task and for what the driver sent on it, the
        step that replied for a reply and its other posts (`<reply id>.<n>`)."""
        if message_id == trace or message_id in self.sent:
            return span_id("task", trace)
        return span_id("reply", message_id.split(".", 1)[0])

    def _message_attributes(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {"actorsim.message_id": message["message_id"], "actorsim.sent_from": message["sent_from"],
                      "actorsim.send_to": list(message["send_to"]), "actorsim.clock": message["clock"],
                      "actorsim.step": message["step"], "actorsim.round": message["round"]}
        if self.content:
            attributes["actorsim.content"] = message["content"]
        return attributes

    def _delivered(self, event: dict[str, Any]) -> None:
        reply = str(event["reply_id"])
        step = self.steps.get(reply)
        if step is None:
            role = str(event.get("role", event.get("actor", "?")))
            self.steps[reply] = step = Span(
                "", span_id("reply", reply), None, f"invoke_agent {role}", float(event["ts"]), float(event["ts"]),
                Resource.of(event), actor=event.get("actor"),
                attributes={OPERATION: "invoke_agent", "gen_ai.agent.name": role,
                            "gen_ai.conversation.id": self.run_id, "actorsim.message_id": reply},
            )
            return  # the span starts at the delivery; the messages delivered are its parent and links
        # Delivered again (its agent crashed, or its process was killed): said, with the time.
        step.events.append(SpanEvent("message.redelivered", float(event["ts"])))

    def _call_started(self, event: dict[str, Any], key: str, name: str, attributes: dict[str, Any]) -> None:
        reply = str(event["reply_id"])
        number = sum(1 for (r, k) in self.calls if r == reply and k.split("#")[0] == key)
        number += sum(1 for child in self.children.get(reply, ()) if child.attributes.get("actorsim.key") == key)
        self.calls[reply, f"{key}#{number}"] = Span(
            "", span_id("call", reply, key, str(number)), span_id("reply", reply), name, float(event["ts"]),
            float(event["ts"]), Resource.of(event), actor=event.get("actor"),
            attributes={"actorsim.key": key, **{k: v for k, v in attributes.items() if v is not None}},
        )

    def _call_ended(self, event: dict[str, Any], key: str) -> None:
        reply = str(event["reply_id"])
        found = [k for (r, k) in self.calls if r == reply and k.split("#")[0] == key]
        if not found:
            return
        call = self.calls.pop((reply, found[0]))
        call.end = float(event["ts"])
        usage = event.get("usage") or {}
        if usage:
            call.attributes["gen_ai.usage.input_tokens"] = usage.get("prompt_tokens")
            call.attributes["gen_ai.usage.output_tokens"] = usage.get("completion_tokens")
        if event.get("finish_reason"):
            call.attributes["gen_ai.response.finish_reasons"] = [event["finish_reason"]]
        if event["event"].endswith(".failed"):
            call.attributes["error.type"] = str(event.get("error", "error")).split("(")[0].split(":")[0]
        elif self.content and key == "chat":
            call.attributes["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": event.get("reply", "")}]}])
        self.children.setdefault(reply, []).append(call)

    def _with_children(self, step: Span) -> Iterator[Span]:
        """The step, then its model and tool calls, which share its trace (known once its reply is published)."""
        reply = str(step.attributes["actorsim.message_id"])
        for call in self.children.pop(reply, []):
            call.trace_id = step.trace_id
            call.attributes.pop("actorsim.key", None)
            yield call
        yield step

    def finish(self) -> Iterator[Span]:
        yield from self.roots.values()
        unpublished = hashlib.sha256(f"unpublished {self.run_id}".encode()).hexdigest()[:32]
        for reply, step in self.steps.items():  # a step whose reply was never published: dropped, or the run died
            step.attributes["actorsim.unpublished"] = True
            # It ends where what is known of it ends (its last delivery or call), not with the run: two such steps
            # of one agent would otherwise overlap on its track, which viewers refuse. A microsecond past its
            # last call, so that the call stays inside it in a viewer that rounds times to nanoseconds.
            step.end = max([step.end, *(call.end + 1e-6 for call in self.children.get(reply, ()))])
            step.trace_id = unpublished
            yield from self._with_children(step)
