"""What every chat model backend offers: messages in, text chunks (and tool calls) out."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from actorsim._core.chat import ChatMessage, ToolCall

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


@attrs.frozen
class CutShort:
    """A model call's reply ended at the server's token limit (finish_reason "length"), not where the model
    would have: news for whoever reads the reply."""

    model: str
    max_tokens: int | None

    def __str__(self) -> str:
        limit = f" of {self.max_tokens} tokens" if self.max_tokens is not None else ""
        return f"the reply of {self.model} was cut at its token limit{limit} (finish_reason \"length\")"


def stream_events(
    model: ChatModel, messages: Sequence[ChatMessage], **extras: Any
) -> Iterator[ModelItem | RetryNotice]:
    """The model's chunks and tool calls, with its retry notices if it gives any; `extras` are `tools`/`settings`."""
    events = getattr(model, "stream_events", None)
    if events is not None:
        return iter(events(messages, **extras))
    return iter(model.stream(messages, **extras))
