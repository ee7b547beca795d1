"""What every chat model backend offers: messages in, text chunks (and tool calls) out."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

ChatRole = Literal["system", "user", "assistant", "tool"]


@attrs.frozen
class ToolCall:
    """A model's request to run one tool; `arguments` is the JSON text the model wrote.

    Kept as text, as the wire carries it: a model may write JSON that does not
    parse, and the tool runner (not the backend) tells the model so.
    """

    call_id: str
    name: str
    arguments: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form, as an assistant message's `tool_calls` carry it."""
        return {"id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        function = data["function"]
        return cls(str(data["id"]), str(function["name"]), str(function.get("arguments") or "{}"))


def _calls(value: Sequence[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(value)


@attrs.frozen
class ChatMessage:
    """One turn of a chat prompt, as chat-completion APIs take it.

    An assistant turn may carry `tool_calls`; a `tool` turn answers one of
    them (`tool_call_id`). Turns without either render as before.
    """

    role: ChatRole
    content: str
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_calls)
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The turn as the chat-completions API takes it: `{"role": ..., "content": ...}`, and its tool calls."""
        turn: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            turn["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            turn["tool_call_id"] = self.tool_call_id
        return turn

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessage:
        """The turn `to_dict` gave."""
        return cls(
            data["role"],
            data["content"],
            tuple(ToolCall.from_dict(call) for call in data.get("tool_calls") or ()),
            data.get("tool_call_id"),
        )


ModelItem = str | ToolCall
"""What a model streams: pieces of its text, then any tool calls it makes."""


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams its reply to a prompt as text chunks.

    Backends that call tools natively also take `tools` (JSON-schema function
    specs), `settings` (generation settings for this call) and stream
    `ToolCall` items after the text; see `takes_tools`.
    """

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[ModelItem]:
        """The reply to `messages`, piece by piece as it is generated; raises `LLMError` when it fails."""


def takes_tools(model: ChatModel) -> bool:
    """Whether `model.stream` takes `tools` and `settings` (the built-in backends do)."""
    return "tools" in inspect.signature(model.stream).parameters

@attrs.frozen
class RetryNotice:
    """A model call failed for a moment and is tried again: news for whoever waits for the reply.

    A backend that retries offers `stream_events`, which yields these between
    the text chunks, just before it waits; `stream` leaves them out.
    """

    server: str
    problem: str  # what went wrong: "answered 503", "timed out"
    attempt: int  # the try about to be made, from 2
    max_attempts: int
    wait_s: float

    def __str__(self) -> str:
        return (
            f"model server at {self.server} {self.problem}; "
            f"retry {self.attempt} of {self.max_attempts} in {self.wait_s:.1f} s"
        )


def stream_events(
    model: ChatModel, messages: Sequence[ChatMessage], **extras: Any
) -> Iterator[ModelItem | RetryNotice]:
    """The model's chunks and tool calls, with its retry notices if it gives any; `extras` are `tools`/`settings`."""
    events = getattr(model, "stream_events", None)
    if events is not None:
        return iter(events(messages, **extras))
    return iter(model.stream(messages, **extras))
