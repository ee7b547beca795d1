"""Any OpenAI-compatible chat-completions server, streamed over server-sent events.

vLLM, Ollama, llama.cpp's server and OpenAI speak this protocol; DashScope
does too, through its compatible-mode endpoint.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import httpx
import tenacity
from httpx_sse import connect_sse

from actorsim._errors import LLMError, TransientServerError
from actorsim._runlog import log_event
from actorsim._validators import positive
from actorsim.llm._protocol import ChatMessage, ModelItem
from actorsim.llm._settings import GenerationSettings
from actorsim.llm._tool_calls import ToolCallAssembler

_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@attrs.frozen
class OpenAIConfig:
    """Where the server is and how hard to try.

    A call is tried at most `max_attempts` times and for at most
    `max_retry_seconds`, waiting exponentially longer (from
    `retry_initial_wait`, at most `retry_max_wait`, with jitter) between tries.
    """

    model: str
    api_base: str = "https://api.openai.com/v1"
    api_key: str | None = attrs.field(default=None, repr=False)
    timeout: float = attrs.field(default=60.0, validator=positive)
    max_attempts: int = attrs.field(default=5, validator=positive)
    max_retry_seconds: float = attrs.field(default=120.0, validator=positive)
    retry_initial_wait: float = attrs.field(default=0.5, validator=positive)
    retry_max_wait: float = attrs.field(default=10.0, validator=positive)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    function_calling: bool = True
    """False for a model without function calling: agents fall back to a ReAct prompt."""


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, TransientServerError | httpx.TransportError)


class OpenAIChatModel:
    """Streams replies from a chat-completions endpoint, retrying transient failures."""

    def __init__(self, config: OpenAIConfig, *, sleep: Callable[[float], None] = tenacity.nap.sleep) -> None:
        self.config = config
        self.function_calling = config.function_calling
        self.settings = GenerationSettings(config.temperature, config.top_p, config.seed, config.max_tokens)
        self.last_usage: dict[str, Any] | None = None
        """Token counts of the last call, when the server sent them."""
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(
            base_url=config.api_base.rstrip("/") + "/", headers=headers, timeout=config.timeout
        )
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(config.max_attempts)
            | tenacity.stop_after_delay(config.max_retry_seconds),
            wait=tenacity.wait_exponential_jitter(
                multiplier=config.retry_initial_wait,
                jitter=config.retry_initial_wait,
                max=config.retry_max_wait,
            ),
            retry=tenacity.retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            sleep=sleep,
            reraise=True,
        )

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log_event(
            "llm.call.retry",
            api_base=self.config.api_base,
            attempt=state.attempt_number,
            wait_s=state.upcoming_sleep,
            error=repr(error),
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[ModelItem]:
        """The reply's text as it streams, then the tool calls it makes, each whole."""
        self.last_usage = None
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [message.to_dict() for message in messages],
            "stream": True,
            **(settings or GenerationSettings()).over(self.settings).to_dict(),
        }
        if tools:
            body["tools"] = list(tools)
        shown = ""  # what earlier tries of this call already yielded
        assembler = ToolCallAssembler()
        try:
            for attempt in self._retrying:
                with attempt, contextlib.ExitStack() as stack:
                    text = ""
                    assembler = ToolCallAssembler()  # a retake assembles its calls afresh
                    for piece in self._contents(self._open(stack, body), assembler):
                        text += piece
                        # A stream that broke off is asked again: yield only what goes past the break.
                        if len(text) > len(shown):
                            yield text[len(shown):]
                            shown = text
        except httpx.TransportError as error:
            raise LLMError(f"model server at {self.config.api_base} unreachable: {error}") from error
        yield from assembler.calls()

    def _open(self, stack: contextlib.ExitStack, body: dict[str, Any]) -> Any:
        """Connect and check the status; what fails here may be tried again."""
        event_source = stack.enter_context(connect_sse(self._client, "POST", "chat/completions", json=body))
        response = event_source.response
        if response.status_code != 200:
            detail = response.read().decode(errors="replace")[:500]
            stack.close()
            problem = f"model server at {self.config.api_base} answered {response.status_code}: {detail}"
            if response.status_code in _TRANSIENT_STATUS:
                raise TransientServerError(problem)
            raise LLMError(problem)
        return event_source.iter_sse()

    def _contents(self, events: Iterator[Any], assembler: ToolCallAssembler) -> Iterator[str]:
        """The reply's pieces; a stream that ends with neither `[DONE]` nor a finish reason broke off."""
        finished = False
        for event in events:
            if event.data == "[DONE]":
                return
            try:
                data = json.loads(event.data)
            except json.JSONDecodeError as error:
                raise LLMError(f"model server sent an event that is not JSON: {event.data[:200]!r}") from error
            if data.get("usage"):
                self.last_usage = data["usage"]
            choices = data.get("choices") or []
            for choice in choices:
                delta = choice.get("delta") or {}
                for fragment in delta.get("tool_calls") or ():
                    assembler.add(fragment)
                if delta.get("content"):
                    yield delta["content"]
                finished = finished or bool(choice.get("finish_reason"))
        if not finished:
            raise TransientServerError(f"the stream from {self.config.api_base} broke off before the reply's end")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
