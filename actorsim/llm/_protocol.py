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
        return {"role": self.role, "content": self.content}


@runtime_checkable
class ChatModel(Protocol):
    """A model that streams its reply to a prompt as text chunks."""

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]: ...


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


def stream_events(model: ChatModel, messages: Sequence[ChatMessage]) -> Iterator[str | RetryNotice]:
    """The model's chunks, with its retry notices if it gives any."""
    events = getattr(model, "stream_events", None)
    if events is not None:
        return iter(events(messages))
    return iter(model.stream(messages))
