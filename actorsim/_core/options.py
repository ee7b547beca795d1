"""A run's options: what the runtime waits for, where it logs, and what a transport is built from.

Here, below the transports, because a backend builds itself from them
(`Transport.from_options`) and the runtime hands them over: neither imports the other.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import attrs

from actorsim._core.budget import Budget, budget_from
from actorsim._core.placement import Placement, placement_from
from actorsim._core.validators import positive


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Made absolute at once, before a transport starts: joining a Ray cluster may change the working dir."""
    return Path(path).absolute()


TRACES_PATH = "/v1/traces"


@attrs.frozen
class OtelExport:
    """Live export of a run's spans, from every process, to an OTLP/HTTP receiver (`actorsim.init(otel=...)`)."""

    endpoint: str
    """The receiver's traces URL (its `/v1/traces`)."""
    content: bool = False
    """Message text in the spans too (off by default, as the GenAI conventions ask)."""


def otel_from(value: OtelExport | bool | str | None) -> OtelExport | None:
    """What `init(otel=...)` takes: True for the receiver the standard variables name (else localhost:4318),
    a URL (a base, as `OTEL_EXPORTER_OTLP_ENDPOINT`, or a `/v1/traces` URL), False or None for none."""
    if value is None or value is False:
        return None
    if not isinstance(value, (bool, str, OtelExport)):
        raise ValueError(f"otel= takes True, False or an http(s) URL of an OTLP/HTTP receiver, not {value!r}")
    if not otel_installed():
        raise ImportError("live export needs the otel extra: pip install 'actorsim[otel]'")
    if isinstance(value, OtelExport):
        return value
    return otel_from_environment(required=True) if value is True else OtelExport(traces_url(value))


def traces_url(url: str) -> str:
    """An OTLP/HTTP receiver's traces URL, from its base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`) or that URL."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not the http(s) URL of an OTLP/HTTP receiver")
    return url if url.rstrip("/").endswith(TRACES_PATH) else url.rstrip("/") + TRACES_PATH


def otel_from_environment(required: bool = False) -> OtelExport | None:
    """Live export where the standard OpenTelemetry variables name a receiver and the `otel` extra is
    installed; with neither, none (`required`: the default receiver, localhost:4318)."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not required and not ((traces or base) and otel_installed()):
        return None
    if traces:
        return OtelExport(traces)  # the signal's own variable: used as it is, as the SDK does
    return OtelExport(traces_url(base or "http://localhost:4318"))


def otel_installed() -> bool:
    """Whether the `otel` extra (the OpenTelemetry SDK and its OTLP/HTTP exporter) is installed."""
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except ModuleNotFoundError:
        return False


@attrs.frozen
class RunOptions:
    """How long to wait: `ask_timeout` for one answer, `step_timeout` for the next frame of a step.

    Also what a backend builds itself from (`Transport.from_options`): `address`
    is the Ray cluster to join, `placement` where Ray actors run unless their
    component says, `log_dir` holds Thespian's output.
    """

    ask_timeout: float = attrs.field(default=60.0, validator=positive)
    step_timeout: float = attrs.field(default=600.0, validator=positive)
    log_dir: Path | None = attrs.field(default=Path("logs"), converter=attrs.converters.optional(_absolute))
    console_log: bool = False
    address: str | None = None
    placement: Placement | None = attrs.field(default=None, converter=placement_from)
    otel: OtelExport | None = attrs.field(factory=otel_from_environment, converter=otel_from)
    """Live export of the run's spans (see `OtelExport`); by default where the environment names a receiver."""
    budget: Budget | None = attrs.field(default=None, converter=budget_from)
    """What the run's model calls may spend (see `Budget`); None: no bound."""
