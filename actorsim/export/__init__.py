"""A recorded run in the tools people already use: OTLP/JSON for OpenTelemetry receivers (Jaeger, Tempo,
Phoenix), Chrome trace-event JSON for Perfetto. Read as a stream, so a swarm's log is never held whole.

    actorsim export RUN --format otlp -o run.otlp.json
    actorsim export RUN --format chrome -o run.trace.json
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import orjson

from actorsim._telemetry.spans import Span, spans
from actorsim.export._chrome import trace_events
from actorsim.export._events import stream_events
from actorsim.export._otlp import SPANS_PER_REQUEST, requests

Format = Literal["otlp", "chrome"]


def run_spans(directory: str | os.PathLike[str], *, content: bool = False) -> list[Span]:
    """Every span of a recorded run, in the order they end (for a reader in Python; holds them all)."""
    return list(spans(stream_events(directory), content=content))


def export_run(
    directory: str | os.PathLike[str], out: str | os.PathLike[str], *, format: Format = "otlp",  # noqa: A002
    content: bool = False,
) -> int:
    """Write the run in `directory` to the file `out` as `format`; the number of spans written.

    OTLP/JSON is written as JSON lines, one `ExportTraceServiceRequest` a line (the OTLP file exporter's
    form); Chrome trace-event JSON as one object with `traceEvents`. Raises `RunLogError` for a log it
    cannot read, `ValueError` for an unknown format.
    """
    if format not in ("otlp", "chrome"):
        raise ValueError(f"unknown export format {format!r}: 'otlp' or 'chrome'")
    count = 0

    events = stream_events(directory)
    opening = next(events, None)
    # The Chrome trace counts microseconds from the run's first second: from the epoch, a double holds them to
    # a quarter of a microsecond, and slices a few hundred nanoseconds apart would seem to overlap.
    origin = float(int(opening["ts"])) if opening is not None else 0.0

    def counted() -> Iterator[Span]:
        nonlocal count
        for span in spans(itertools.chain([opening] if opening is not None else [], events), content=content):
            count += 1
            yield span

    with Path(out).open("wb") as file, _few_collections():
        if format == "otlp":
            for request in requests(counted()):
                file.write(orjson.dumps(request) + b"\n")
        else:
            file.write(b'{"displayTimeUnit": "ms", "traceEvents": [\n')
            first = True
            for event in trace_events(counted(), origin=origin):
                file.write((b"" if first else b",\n") + orjson.dumps(event))
                first = False
            file.write(b"\n]}\n")
    return count


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """The collector runs rarely while a run is exported: its full passes over the spans still open took a
    third of the time (`benchmarks/export_bench.py`); nothing exported makes reference cycles to reclaim."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def post_run(
    directory: str | os.PathLike[str], endpoint: str, *, content: bool = False, timeout: float = 30.0
) -> int:
    """Post the run's spans to an OTLP/HTTP receiver (`endpoint`: its `/v1/traces` URL), protobuf-encoded by the
    OpenTelemetry SDK's encoder (every receiver takes that; not all take JSON), `SPANS_PER_REQUEST` a request;
    the number of spans sent. Needs the `otel` extra. Raises `ValueError` for a receiver that refuses a request
    (its status and words), `httpx.HTTPError` for one that cannot be reached."""
    try:
        from actorsim._telemetry.sdk import protobuf  # the `otel` extra, imported only when asked for
    except ImportError as missing:
        raise ImportError(f"posting spans needs the otel extra: pip install 'actorsim[otel]' ({missing})") from None
    count = 0
    batch: list[Span] = []
    with httpx.Client(timeout=timeout) as client:

        def send() -> None:
            answer = client.post(endpoint, content=protobuf(batch),
                                 headers={"Content-Type": "application/x-protobuf"})
            if answer.status_code >= 300:
                raise ValueError(f"{endpoint} answered {answer.status_code}: {answer.text[:200]}")

        for span in spans(stream_events(directory), content=content):
            batch.append(span)
            count += 1
            if len(batch) == SPANS_PER_REQUEST:
                send()
                batch = []
        if batch:
            send()
    return count


__all__ = ["Format", "Span", "export_run", "post_run", "run_spans"]
