"""The turns of a model's prompt: plain values that memories, run states and model backends share.

`actorsim.llm` exports them; they live here, at the bottom, so that a run's
state (`RunState`) can hold an agent's memory without importing a model backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
