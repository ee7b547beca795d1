"""A local server that speaks OpenAI's chat-completions protocol, streaming included.

It answers with scripted replies, can fail first with given HTTP statuses or
break streams off part-way, and records every request body, so the HTTP model backends are tested for real
without any outside service. A reply may be tool calls (`tool_reply`), streamed as `tool_calls` deltas
in the standard shape or in one of the deviant shapes servers send (`SHAPES`).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SHAPES = ("standard", "reused_index", "no_index", "split_name")
"""How tool-call deltas are streamed: as OpenAI does, with index 0 for every call, without `index`,
or with the function name split over two fragments."""


def weather_then_answer(body: dict[str, Any]) -> Any:
    """Replies of a model that asks for the weather (tool "weather"), then answers once the tool has: two calls a
    step, of 7 + 3 tokens each."""
    if body["messages"][-1]["role"] == "tool":
        return "Mild and clear."
    return tool_reply(("c1", "weather", '{"city": "Oslo"}'))


def tool_reply(*calls: tuple[str, str, str], shape: str = "standard") -> dict[str, Any]:
    """A reply of tool calls, each `(id, name, arguments JSON)`, streamed in `shape`."""
    assert shape in SHAPES
    return {"tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in calls], "shape": shape}


class OpenAIServer:
    def __init__(
        self,
        replies: list[Any] | Callable[[dict[str, Any]], Any],
        *,
        failures: list[int] | None = None,
        cut_after: list[int] | None = None,
        reset_after: list[int | None] | None = None,
        reset_first_after: int | None = None,
        keep_alive: bool = False,
        piece_latency: float = 0.0,
        api_key: str | None = None,
        port: int = 0,
        refuse_stream_options: bool = False,
        max_concurrency: int | None = None,
        retry_after: str | None = None,
        call_seconds: float = 0.0,
        throttle_always: bool = False,
    ) -> None:
        """`failures`: statuses to answer first; `cut_after`: the next streams end after that many pieces;
        `reset_after`: the next streams' connections are reset (TCP RST) after that many pieces;
        `reset_first_after`: so is the first stream of each prompt (a retry asks with the same prompt again).

        `keep_alive`: HTTP/1.1, streams sent chunked, connections kept open for the next request, as real
        servers do; `connections` then holds the connection each request came on (a number per connection).
        `replies` may be a function of the request's body: the same prompt gets the same reply, in any order.
        `piece_latency`: seconds before each piece of a stream.

        As real servers do, a stream ends with token counts only when asked (`stream_options.include_usage`),
        and a reply longer than `max_tokens` words is cut there with finish_reason "length";
        `refuse_stream_options`: answers 400 to a request with `stream_options`, as servers that do not know it.

        As a rate-limited server does: `max_concurrency` answers 429 to a call above that many in flight
        (`in_flight`; the most ever is `most_in_flight`, the times of its 429s `throttled_at`, of its first call
        `first_call_at`), with a
        `Retry-After: retry_after` header when given; `throttle_always` answers 429 to every call.
        `call_seconds`: each reply takes that long, spread over its pieces.
        """
        self.refuse_stream_options = refuse_stream_options
        self.max_concurrency = max_concurrency
        self.retry_after = retry_after
        self.call_seconds = call_seconds
        self.throttle_always = throttle_always
        self.in_flight = self.most_in_flight = 0
        self.throttled_at: list[float] = []
        self.first_call_at: float | None = None
        self.replies = replies if callable(replies) else itertools.cycle(replies)
        self.piece_latency = piece_latency
        self.failures = list(failures or [])
        self.cut_after = list(cut_after or [])
        self.reset_after = list(reset_after or [])
        self.reset_first_after = reset_first_after
        self._prompts_seen: set[str] = set()
        self.keep_alive = keep_alive
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.connections: list[int] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._connection_ids = itertools.count()
        self._http = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def api_base(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _next_cut(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """After how many pieces this stream ends, and after how many its connection is reset (None: never)."""
        with self._lock:
            reset = self.reset_after.pop(0) if self.reset_after else None
            prompt = json.dumps(body["messages"], sort_keys=True)
            if self.reset_first_after is not None and prompt not in self._prompts_seen:
                reset = self.reset_first_after
            self._prompts_seen.add(prompt)
            return self.cut_after.pop(0) if self.cut_after else None, reset

    def _next_answer(self, headers: Any, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(body)
            if self.first_call_at is None:
                self.first_call_at = time.monotonic()
            if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
                status, reply = 401, ""
            elif self.refuse_stream_options and "stream_options" in body:
                status, reply = 400, "Unrecognized request argument supplied: stream_options"
            elif self.failures:
                status, reply = self.failures.pop(0), ""
            elif self.throttle_always or (self.max_concurrency is not None and self.in_flight >= self.max_concurrency):
                status, reply = 429, "Rate limit reached: too many requests in flight"
                self.throttled_at.append(time.monotonic())
            else:
                status, reply = 200, self.replies(body) if callable(self.replies) else next(self.replies)
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.statuses.append(status)
            return status, reply

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if server.keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                self.connection_id = next(server._connection_ids)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.connections.append(self.connection_id)
                status, reply = server._next_answer(self.headers, body)
                if status != 200:
                    payload = json.dumps({"error": {"message": reply or f"scripted failure {status}"}}).encode()
                    self.send_response(status)
                    if status == 429 and server.retry_after is not None:
                        self.send_header("Retry-After", server.retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self._counted = True
                try:
                    self._stream(body, reply)
                finally:
                    self._uncount()

            def _uncount(self) -> None:
                """The call stops counting as in flight, once: before its end is sent, as a server's slot is free
                once its reply is made (a client that read the whole reply must not find it counted), or as it
                broke off."""
                if self._counted:
                    self._counted = False
                    server._done()

            def _stream(self, body: dict[str, Any], reply: Any) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                if server.keep_alive:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                cut, reset = server._next_cut(body)
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = list(_events(body["model"], reply, usage, body.get("max_tokens")))
                pause = server.piece_latency or server.call_seconds / len(events)
                for sent, event in enumerate(events):
                    if reset is not None and sent > reset:  # the line is reset (a TCP RST), mid-stream
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                        return
                    if cut is not None and sent > cut:  # the role event, then `cut` pieces: then the stream ends
                        break
                    if pause:
                        time.sleep(pause)
                    self._write(f"data: {event}\n\n".encode())
                else:
                    self._uncount()
                    self._write(b"data: [DONE]\n\n")
                if server.keep_alive:
                    self.wfile.write(b"0\r\n\r\n")

            def _write(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if server.keep_alive else data)
                self.wfile.flush()

        return Handler


class _QuietServer(ThreadingHTTPServer):
    """Says nothing of a client that reset its connection: what a test resets, or a pool closing at exit."""

    request_queue_size = 4096  # a swarm connects by the thousand at once: a backlog of 5 would refuse them

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _tool_fragments(calls: list[dict[str, str]], shape: str) -> Iterator[dict[str, Any]]:
    for number, call in enumerate(calls):
        where = {} if shape == "no_index" else {"index": 0 if shape == "reused_index" else number}
        name = call["name"]
        first_name = name[: len(name) // 2] if shape == "split_name" else name
        yield {**where, "id": call["id"], "type": "function", "function": {"name": first_name, "arguments": ""}}
        if shape == "split_name":
            yield {**where, "function": {"name": name[len(name) // 2:]}}
        half = len(call["arguments"]) // 2
        for piece in (call["arguments"][:half], call["arguments"][half:]):
            yield {**where, "function": {"arguments": piece}}


def _events(model: str, reply: Any, usage: bool = True, max_tokens: int | None = None) -> Iterator[str]:
    yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    if isinstance(reply, dict):
        for fragment in _tool_fragments(reply["tool_calls"], reply["shape"]):
            yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
        yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        if usage:  # counted as a reply of 3 words per call
            completion = 3 * len(reply["tool_calls"])
            yield json.dumps({"model": model, "choices": [],
                              "usage": {"prompt_tokens": 7, "completion_tokens": completion,
                                        "total_tokens": 7 + completion}})
        return
    pieces = re.findall(r"\S+\s*|\s+", reply)
    cut = max_tokens is not None and len(pieces) > max_tokens
    for piece in pieces[:max_tokens] if cut else pieces:
        yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {"content": piece}}]})
    finish = "length" if cut else "stop"
    yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if not usage:
        return
    words = min(len(reply.split()), max_tokens) if cut and max_tokens is not None else len(reply.split())
    yield json.dumps(
        {
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": words, "total_tokens": 7 + words},
        }
    )
