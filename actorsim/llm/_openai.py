"""Any OpenAI-compatible chat-completions server, streamed over server-sent events.

vLLM, Ollama, llama.cpp's server and OpenAI speak this protocol; DashScope
does too, through its compatible-mode endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import types
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import attrs
import httpx
import tenacity
from httpx_sse import connect_sse

from actorsim._core.chat import ChatMessage
from actorsim._core.context import gates_in_place, wait_unless_stopped
from actorsim._core.validators import positive
from actorsim._errors import ActorStoppedError, LLMError, TransientServerError
from actorsim.llm._gate import ServerGate
from actorsim.llm._limits import (
    THROTTLE_STATUS,
    UNAVAILABLE,
    PermitRequest,
    ServerLimits,
    Throttled,
    rate_spent,
    retry_after,
)
from actorsim.llm._price import Price
from actorsim.llm._protocol import ModelItem, RetryNotice
from actorsim.llm._settings import GenerationSettings
from actorsim.llm._tool_calls import ToolCallAssembler

_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_ASK_FOR_USAGE = {"include_usage": True}
"""Streams carry token counts only when asked (OpenAI, llama.cpp, vLLM): a last event with `usage`."""
_refuse_stream_options: set[str] = set()  # servers that answered 400 to `stream_options`: asked without it
_refusals_lock = threading.Lock()


def forget_refusals() -> None:
    """A run is over: the servers that refused `stream_options` are asked with them again in the next.

    Remembered for the process, a refusal outlived its run where a process
    serves several (the driver's, on `local`): another server at the same
    address, or the same one upgraded, was never asked for its usage again.
    """
    with _refusals_lock:
        _refuse_stream_options.clear()


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

    @property
    def server_key(self) -> tuple[str, str]:
        """The server its calls go to, as limits key it: (`api_base`, `model`)."""
        return self.api_base.rstrip("/"), self.model


def _is_transient(error: BaseException) -> bool:
    # A refused connection is not: the server is not there, and trying again only keeps the user waiting.
    return isinstance(error, TransientServerError) or (
        isinstance(error, httpx.TransportError) and not isinstance(error, httpx.ConnectError)
    )


def _problem(error: BaseException | None) -> str:
    """What went wrong with a try, as a retry notice says it."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, TransientServerError):
        return error.problem
    return f"failed ({error!r})"


def _wait(seconds: float) -> None:
    """Wait for another try; an agent stopped meanwhile (its run ends) does not wait it out."""
    if wait_unless_stopped(seconds):
        raise ActorStoppedError("the agent was stopped while it waited to try its model server again")


@contextlib.contextmanager
def _try_through(gate: ServerGate | None, wait_s: float = 0.0) -> Iterator[Callable[[], None]]:
    """One try's place at its host's gate (no gate: none), not before `wait_s` from now, given back however the
    try ends; yields what to call once the server has taken the try."""
    if gate is None:
        yield lambda: None
        return
    ticket = gate.enter(wait_s)
    try:
        yield functools.partial(gate.admitted, ticket)
    except TransientServerError as error:
        if error.status in THROTTLE_STATUS:
            gate.throttled(ticket, error.retry_after, pauses_server=error.pauses_server)
        else:
            gate.leave(ticket, succeeded=False)
        raise
    except BaseException:
        gate.leave(ticket, succeeded=False)
        raise
    gate.leave(ticket, succeeded=True)


_pools: dict[tuple[str, str | None, float], httpx.Client] = {}
_pools_lock = threading.Lock()


def shared_pool(api_base: str, api_key: str | None, timeout: float) -> httpx.Client:
    """One HTTP connection pool per process and server, whatever the number of models using it.

    A host runs hundreds of agents, each with its own model: a pool each would
    open as many connections (and sockets, and TLS handshakes) to one server.
    httpx's `Client` is safe to share between threads.
    """
    key = (api_base.rstrip("/") + "/", api_key, timeout)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool.is_closed:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            pool = _pools[key] = httpx.Client(
                base_url=key[0], headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=256)
            )
        return pool


class OpenAIChatModel:
    """Streams replies from a chat-completions endpoint, retrying transient failures.

    A refused connection and a 4xx answer (but 408/409/429) fail at once, not
    restartable: no retry or agent restart can cure them.
    """

    def __init__(self, config: OpenAIConfig, *, sleep: Callable[[float], None] = _wait) -> None:
        self.config = config
        self.function_calling = config.function_calling
        self.settings = GenerationSettings(config.temperature, config.top_p, config.seed, config.max_tokens)
        self.last_usage: dict[str, Any] | None = None
        """Token counts of the last call, when the server sent them."""
        self.price: Price | None = None
        """What its tokens cost, per million (`llm={"price": ...}`): each call's cost is logged with its usage."""
        self.limits = ServerLimits()
        """Its server's limits (`llm={"max_concurrency": ...}`): kept by the run's driver, for all its agents."""
        self.last_finish_reason: str | None = None
        """Why the last reply ended, as the server said: "stop", "length" (cut at the token limit), "tool_calls"."""
        self.last_served: tuple[float, float] | None = None
        """When the last call's answered try was sent and ended (wall clock): its driver counts from such times
        what a server that refused a call was serving then (`actorsim.llm._limiter`)."""
        self._client = shared_pool(config.api_base, config.api_key, config.timeout)
        self._sleep = sleep
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(config.max_attempts)
            | tenacity.stop_after_delay(config.max_retry_seconds),
            wait=tenacity.wait_exponential_jitter(
                multiplier=config.retry_initial_wait,
                jitter=config.retry_initial_wait,
                max=config.retry_max_wait,
            ),
            retry=tenacity.retry_if_exception(_is_transient),
            sleep=lambda _: None,  # `stream_events` waits itself, after saying so
            reraise=True,
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[ModelItem]:
        """The reply's text as it streams, then the tool calls it makes, each whole."""
        for item in self.stream_events(messages, tools=tools, settings=settings):
            if not isinstance(item, RetryNotice | PermitRequest):
                yield item

    def stream_events(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Generator[ModelItem | RetryNotice | PermitRequest, Any, None]:
        """As `stream`, with a `RetryNotice` before each wait for another try.

        A throttled try (429, 503) is a `Throttled` notice followed by a
        `PermitRequest`: sent a `Permit` back, the call goes again at once (its
        driver did the waiting); sent None, it waits here.
        """
        self.last_usage = self.last_finish_reason = self.last_served = None
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [message.to_dict() for message in messages],
            "stream": True,
            **(settings or GenerationSettings()).over(self.settings).to_dict(),
        }
        if self.config.api_base not in _refuse_stream_options:
            body["stream_options"] = _ASK_FOR_USAGE
        if tools:
            body["tools"] = list(tools)
        shown = ""  # what earlier tries of this call already yielded
        assembler = ToolCallAssembler()
        waits: list[RetryNotice] = []
        refused_before = False  # the server refused an earlier try of this call
        retrying = self._retrying.copy(before_sleep=functools.partial(self._note_retry, waits))
        # tenacity keeps a retry loop's state per thread; a call paused for a permit goes on in another thread
        # (its actor's next request), so this copy, which serves this call alone, keeps it in one place.
        retrying._local = types.SimpleNamespace()  # type: ignore[assignment]
        server = self.config.api_base
        gates = gates_in_place()  # on a host: every try waits for its server there (`actorsim.llm._gate`)
        gate = None if gates is None else gates.gate(self.config.server_key, self.limits)
        try:
            for attempt in retrying:
                at_gate_after = 0.0
                if waits:
                    notice = waits.pop()
                    yield notice
                    if not isinstance(notice, Throttled):
                        self._sleep(notice.wait_s)
                    else:
                        refused_before = True
                        if gate is not None:  # a throttled try waits at its host's gate, its own wait and the server's
                            at_gate_after = notice.wait_s
                        elif (yield PermitRequest(server, notice.wait_s)) is None:
                            self._sleep(notice.wait_s)
                with (
                    attempt,
                    _try_through(gate, at_gate_after) as admitted,
                    contextlib.ExitStack() as stack,
                ):
                    text = ""
                    assembler = ToolCallAssembler()  # a retake assembles its calls afresh
                    sent = time.time()
                    events = self._open(stack, body, sent, refused_before)
                    admitted()
                    for piece in self._contents(events, assembler):
                        text += piece
                        # A stream that broke off is asked again: yield only what goes past the break.
                        if len(text) > len(shown):
                            yield text[len(shown):]
                            shown = text
                    self.last_served = (sent, time.time())
        except httpx.ConnectError as error:
            raise LLMError(f"cannot connect to the model server at {server}: {error}", restartable=False) from error
        except httpx.TransportError as error:
            raise LLMError(f"model server at {server} unreachable: {error}") from error
        yield from assembler.calls()

    def _note_retry(self, waits: list[RetryNotice], state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        notice = RetryNotice(
            server=self.config.api_base,
            problem=_problem(error),
            attempt=state.attempt_number + 1,
            max_attempts=self.config.max_attempts,
            wait_s=state.upcoming_sleep,
        )
        if isinstance(error, TransientServerError) and error.status in THROTTLE_STATUS:
            asked = error.retry_after
            notice = Throttled(
                **attrs.asdict(notice, recurse=False) | {"wait_s": max(notice.wait_s, asked or 0.0)},
                status=error.status, retry_after=asked, window=error.window, pauses_server=error.pauses_server,
            )
        waits.append(notice)

    def _open(self, stack: contextlib.ExitStack, body: dict[str, Any], sent: float, refused_before: bool) -> Any:
        """Connect and check the status; what fails here may be tried again. `sent`: when the try began;
        `refused_before`: the server throttled an earlier try of this call."""
        event_source = stack.enter_context(connect_sse(self._client, "POST", "chat/completions", json=body))
        response = event_source.response
        if response.status_code != 200:
            detail = " ".join(response.read().decode(errors="replace").split())[:300]
            stack.close()
            status = f"{response.status_code} {response.reason_phrase}".strip()
            if response.status_code in (400, 422) and "stream_options" in body and "stream_options" in detail:
                # A server that does not know the option: asked again without it, now and from now on.
                with _refusals_lock:
                    _refuse_stream_options.add(self.config.api_base)
                del body["stream_options"]
                return self._open(stack, body, time.time(), refused_before)
            problem = f"model server at {self.config.api_base} answered {status}: {detail}"
            if response.status_code in _TRANSIENT_STATUS:
                raise TransientServerError(
                    problem, problem=f"answered {status}", status=response.status_code,
                    retry_after=retry_after(response.headers), window=(sent, time.time()),
                    # Down, its rate spent, or refusing a call again after it waited its turn and its Retry-After
                    # (the cut made no room): the server's pause is for every call.
                    pauses_server=response.status_code == UNAVAILABLE or rate_spent(response.headers)
                    or (refused_before and response.status_code in THROTTLE_STATUS),
                )
            raise LLMError(problem, restartable=False)
        return event_source.iter_sse()

    def _contents(self, events: Iterator[Any], assembler: ToolCallAssembler) -> Iterator[str]:
        """The reply's pieces; a stream that ends with neither `[DONE]` nor a finish reason broke off.

        The stream is read to its very end, past `[DONE]`: a response left with unread bytes cannot go back
        to the connection pool, and each call would then open (and a TLS server shake hands on) a new one.
        """
        finished = False
        for event in events:
            if event.data == "[DONE]":
                for _ in events:  # the stream's last bytes (a chunked body's end): the connection is kept
                    pass
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
                if choice.get("finish_reason"):
                    self.last_finish_reason = str(choice["finish_reason"])
                    finished = True
        if not finished:
            raise TransientServerError(
                f"the stream from {self.config.api_base} broke off before the reply's end",
                problem="broke off its stream",
            )
