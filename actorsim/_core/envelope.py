"""The messages agents exchange, and the frames `TaskCenter.step` yields.

Metadata (ids, trace, cause, sender, recipients) lives beside the content so
that logs, replay and redelivery can rely on it without parsing text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import orjson

from actorsim._core.ids import new_id

USER_REQUIREMENT = "user_requirement"
"""The sender of tasks that come from outside the system (`send_task_request`)."""


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Message:
    """One message published to the Environment.

    `trace_id` is shared by everything that follows from one task request;
    `parent_ids` name the messages that caused this one (for an agent's reply:
    the messages it pulled in that step). `step` counts the task center's
    steps, `round` is the repetition within one `step(round=N)` call, and
    `clock` is a Lamport clock: a message's clock exceeds its causes', so
    causal order needs no trust in wall clocks across machines.
    `traceparent`, set while the run's spans are sent live, is the W3C trace
    context of the span that made the message, for the spans it causes.
    """

    content: str
    sent_from: str
    send_to: tuple[str, ...] = attrs.field(converter=_to_tuple)
    message_id: str = attrs.field(factory=new_id)
    trace_id: str = attrs.field()
    parent_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    step: int = 0
    round: int = 1
    clock: int = 0
    created_at: float = attrs.field(factory=time.time)
    traceparent: str | None = None

    @trace_id.default
    def _trace_of_a_new_task(self) -> str:
        return self.message_id

    def to_dict(self) -> dict[str, Any]:
        """The message as a dict of its fields, as the run log holds it."""
        # By hand: attrs.asdict took a third of the cost of logging a message.
        fields = {name: getattr(self, name) for name in _MESSAGE_FIELDS}
        if self.traceparent is not None:  # only while spans are sent live: logs stay as they were
            fields["traceparent"] = self.traceparent
        return fields

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(**data)

    def to_json(self) -> bytes:
        """The message as JSON bytes."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Message:
        return cls.from_dict(orjson.loads(data))


_MESSAGE_FIELDS = tuple(field.name for field in attrs.fields(Message) if field.name != "traceparent")


class Frame(str):
    """A piece of a reply as `step()` yields it: ``"<role>: chunk"``.

    A plain `str` for code that prints frames, which also tells the role, the
    bare chunk and the id of the message the chunk belongs to.
    """

    kind = "text"
    role: str
    content: str
    message_id: str
    finish_reason: str | None = None
    """Set on the frame that closes a reply its model server cut short: "length" (at its token limit)."""

    def __new__(cls, role: str, content: str, message_id: str, finish_reason: str | None = None) -> Frame:
        frame = super().__new__(cls, f"<{role}>: {content}")
        frame.role = role
        frame.content = content
        frame.message_id = message_id
        if finish_reason is not None:
            frame.finish_reason = finish_reason
        return frame

    def __reduce__(self) -> tuple[Any, ...]:
        return (Frame, (self.role, self.content, self.message_id, self.finish_reason))


class ToolFrame(Frame):
    """A tool call (`kind="tool_call"`) or its result (`"tool_result"`) in an agent's reply stream.

    Its `content` is "": code that joins frames' content into reply text gets
    exactly the reply. As a string it reads compactly, for code that prints
    frames: ``"<role> ⚙ weather({"city": "Paris"})"``, ``"<role> ⚙ weather → 18 C"``.
    """

    tool: str
    call_id: str
    detail: str
    failed: bool

    def __new__(
        cls, role: str, kind: str, tool: str, call_id: str, detail: str, message_id: str, failed: bool = False
    ) -> ToolFrame:
        shown = detail if len(detail) <= 120 else detail[:117] + "..."
        if kind == "tool_call":
            text = f"<{role}> \u2699 {tool}({shown})"
        else:
            text = f"<{role}> \u2699 {tool} \u2192 {'error: ' if failed else ''}{shown}"
        frame = str.__new__(cls, text)
        frame.role = role
        frame.content = ""
        frame.message_id = message_id
        frame.kind = kind
        frame.tool = tool
        frame.call_id = call_id
        frame.detail = detail
        frame.failed = failed
        return frame

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            ToolFrame,
            (self.role, self.kind, self.tool, self.call_id, self.detail, self.message_id, self.failed),
        )
