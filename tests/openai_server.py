"""A local server that speaks OpenAI's chat-completions protocol, streaming included.

It answers with scripted replies, can fail first with given HTTP statuses or
break streams off part-way, and records every request body, so the HTTP model backends are tested for real
without any outside service.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIServer:
    def __init__(
        self,
        replies: list[str],
        *,
        failures: list[int] | None = None,
        cut_after: list[int] | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        """`failures`: statuses to answer first; `cut_after`: the next streams end after that many pieces."""
        self.replies = itertools.cycle(replies)
        self.failures = list(failures or [])
        self.cut_after = list(cut_after or [])
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
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

    def _next_cut(self) -> int | None:
        with self._lock:
            return self.cut_after.pop(0) if self.cut_after else None

    def _next_answer(self, headers: Any, body: dict[str, Any]) -> tuple[int, str]:
        with self._lock:
            self.requests.append(body)
            if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
                status, reply = 401, ""
            elif self.failures:
                status, reply = self.failures.pop(0), ""
            else:
                status, reply = 200, next(self.replies)
            self.statuses.append(status)
            return status, reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = server._next_answer(self.headers, body)
                if status != 200:
                    payload = json.dumps({"error": {"message": f"scripted failure {status}"}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                cut = server._next_cut()
                for sent, event in enumerate(_events(body["model"], reply)):
                    if cut is not None and sent > cut:  # the role event, then `cut` pieces: then the line drops
                        return
                    self.wfile.write(f"data: {event}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        return Handler


def _events(model: str, reply: str) -> Iterator[str]:
    yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    for piece in re.findall(r"\S+\s*|\s+", reply):
        yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {"content": piece}}]})
    yield json.dumps({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    words = len(reply.split())
    yield json.dumps(
        {
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": words, "total_tokens": 7 + words},
        }
    )
