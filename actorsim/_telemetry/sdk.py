"""Spans handed to the OpenTelemetry SDK (the `otel` extra): its `ReadableSpan`, so that its OTLP exporters
encode and send them as they would any instrumented program's."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from actorsim._telemetry.spans import SERVICE_NAME, Resource, Span, resource_attributes
from actorsim._version import __version__

_SCOPE = InstrumentationScope(SERVICE_NAME, __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_FAILED, _UNSET = Status(StatusCode.ERROR), Status(StatusCode.UNSET)


def readable(span: Span) -> ReadableSpan:
    """`span` as the SDK's finished span."""
    return ReadableSpan(
        name=span.name,
        context=_context(span.trace_id, span.span_id),
        parent=_context(span.trace_id, span.parent_span_id, remote=True) if span.parent_span_id else None,
        resource=_resource(span.resource),
        attributes=_attributes({**span.attributes, "actorsim.actor": span.actor}),
        events=[Event(event.name, _attributes(event.attributes), _nanos(event.ts)) for event in span.events],
        links=[Link(_context(trace, linked, remote=True)) for trace, linked in span.links],
        kind=SpanKind.INTERNAL,
        instrumentation_scope=_SCOPE,
        status=_FAILED if "error.type" in span.attributes else _UNSET,
        start_time=_nanos(span.start),
        end_time=_nanos(max(span.end, span.start)),
    )


def protobuf(spans: Iterable[Span]) -> bytes:
    """The spans as one OTLP `ExportTraceServiceRequest`, protobuf-encoded (what every OTLP/HTTP receiver takes)."""
    encoded: bytes = encode_spans([readable(span) for span in spans]).SerializeToString()
    return encoded


def _context(trace: str, span: str, *, remote: bool = False) -> SpanContext:
    return SpanContext(int(trace, 16), int(span, 16), is_remote=remote, trace_flags=_SAMPLED)


@functools.lru_cache(maxsize=256)
def _resource(resource: Resource) -> SdkResource:
    return SdkResource.create(resource_attributes(resource))


def _attributes(items: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry's attribute values: no None, sequences of one primitive type, anything else as text."""
    found: dict[str, Any] = {}
    for key, value in items.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = [str(each) for each in value] if any(not isinstance(each, str) for each in value) else list(value)
        elif not isinstance(value, (str, bool, int, float)):
            value = str(value)
        found[key] = value
    return found


def _nanos(seconds: float) -> int:
    return round(seconds * 1e9)
