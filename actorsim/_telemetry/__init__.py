"""A run as OpenTelemetry spans: the one mapping from run-log events to spans (`spans`), used after the fact by
`actorsim export` and live, in every process of the run, by `live` (the `otel` extra's SDK and OTLP/HTTP
exporter). Below the run log, which feeds it."""
