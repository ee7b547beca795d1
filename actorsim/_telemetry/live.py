"""Live export: this process's spans of a running run, sent as they end through the OpenTelemetry SDK's batch
processor and OTLP/HTTP exporter. One per process and run, fed by the run log (`actorsim._runlog`), so every
process of a run (the driver, each Thespian actor, each Ray worker on any node) sends its own spans, and the
ids and W3C trace context the messages carry join them into one trace per task."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from actorsim._core.options import OtelExport
from actorsim._telemetry.sdk import readable
from actorsim._telemetry.spans import Builder

SEND_EVERY_MS = 1000
"""How long an ended span may wait before it is sent: what a process killed outright may lose. Every 250 ms,
50 agent processes had made 50 posts a step (`benchmarks/otel_bench.py`); the SDK's own default is 5 s."""
EXPORT_TIMEOUT_S = 3.0
"""How long one batch may take to send (the exporter's retries included): what a dead receiver adds to a run's end."""


def unreachable(endpoint: str, timeout_s: float = 2.0) -> str | None:
    """Why the receiver at `endpoint` would not take spans (it is asked to take none), or None if it would."""
    try:
        answer = httpx.post(endpoint, content=b"", headers={"Content-Type": "application/x-protobuf"},
                            timeout=timeout_s)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    return None if answer.is_success else f"it answered {answer.status_code} {answer.reason_phrase}"


class LiveSpans:
    """Spans from this process's events, handed to the SDK as they end; `close` sends what is left."""

    def __init__(self, export: OtelExport) -> None:
        self._builder = Builder(export.content, live=True)
        self._processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=export.endpoint, timeout=EXPORT_TIMEOUT_S), schedule_delay_millis=SEND_EVERY_MS
        )
        self._lock = threading.Lock()  # hosted agents log from several threads

    def take(self, event: dict[str, Any]) -> None:
        with self._lock:
            ended = list(self._builder.take(event))
        for span in ended:
            self._processor.on_end(readable(span))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send every ended span now; whether all were sent within `timeout_s`."""
        return self._processor.force_flush(int(timeout_s * 1000))

    def close(self) -> None:
        self._processor.shutdown()  # type: ignore[no-untyped-call]  # sends what is left, then stops its thread
