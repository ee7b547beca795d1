"""What every chat model backend offers: messages in, text chunks out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

ChatRole = Literal["system", "user", "assistant"]


@attrs.frozen
class ChatMessage:
    """One turn of a chat prompt, as chat-completion APIs take it."""

    role: ChatRole
    content: str

    def to_dict(self) -> dict[str, str]:
        """The turn as the chat-completions API takes it: `{"role": ..., "content": ...}`."""
        return {"role": self.role, "content": self.content}


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams its reply to a prompt as text chunks."""

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """The reply to `messages`, piece by piece as it is generated; raises `LLMError` when it fails."""
