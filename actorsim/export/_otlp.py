"""Spans as OTLP/JSON: the `ExportTraceServiceRequest` JSON mapping (ids in hex, times as nanosecond strings),
as Jaeger's upload and any OTLP/HTTP receiver (`/v1/traces`) read it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from actorsim._telemetry.spans import Resource, Span, resource_attributes
from actorsim._version import __version__

SPANS_PER_REQUEST = 1000
"""Spans in one request: a receiver's body limit (4 MiB is common) holds them, and a writer holds no more."""

def value(item: Any) -> dict[str, Any]:
    """An attribute's value as OTLP/JSON's `AnyValue`."""
    if isinstance(item, bool):
        return {"boolValue": item}
    if isinstance(item, int):
        return {"intValue": str(item)}  # int64 is a string in the JSON mapping
    if isinstance(item, float):
        return {"doubleValue": item}
    if isinstance(item, (list, tuple)):
        return {"arrayValue": {"values": [value(each) for each in item]}}
    return {"stringValue": str(item)}


def attributes(items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": value(item)} for key, item in items.items() if item is not None]


def nanos(seconds: float) -> str:
    return str(round(seconds * 1e9))


def span_json(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id, "spanId": span.span_id, "name": span.name, "kind": 1,  # SPAN_KIND_INTERNAL
        "startTimeUnixNano": nanos(span.start), "endTimeUnixNano": nanos(max(span.end, span.start)),
        "attributes": attributes({**span.attributes, "actorsim.actor": span.actor}),
        "events": [{"timeUnixNano": nanos(e.ts), "name": e.name, "attributes": attributes(e.attributes)}
                   for e in span.events],
        "links": [{"traceId": trace, "spanId": linked} for trace, linked in span.links],
        "status": {"code": 2} if "error.type" in span.attributes else {},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def requests(spans: Iterable[Span]) -> Iterator[dict[str, Any]]:
    """`ExportTraceServiceRequest`s of at most `SPANS_PER_REQUEST` spans each, spans grouped by resource."""
    batch: list[Span] = []
    for span in spans:
        batch.append(span)
        if len(batch) == SPANS_PER_REQUEST:
            yield _request(batch)
            batch = []
    if batch:
        yield _request(batch)


def _request(batch: list[Span]) -> dict[str, Any]:
    by_resource: dict[Resource, list[dict[str, Any]]] = {}
    for span in batch:
        by_resource.setdefault(span.resource, []).append(span_json(span))
    return {"resourceSpans": [
        {"resource": {"attributes": attributes(resource_attributes(resource))},
         "scopeSpans": [{"scope": {"name": "actorsim", "version": __version__}, "spans": spans}]}
        for resource, spans in by_resource.items()
    ]}
