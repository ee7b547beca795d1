"""Arize Phoenix, a real OpenTelemetry receiver: started for the session on free ports, spans read back through
its REST API. It lives in a venv of its own (`make test` builds `.venv-phoenix`); $ACTORSIM_PHOENIX names
another `phoenix` executable. Missing, its tests are skipped, except under CI, where they fail."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ray_cluster import free_ports
from tests.serving import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0
"""Phoenix migrates its SQLite database and starts in 10 to 40 s on a 2-core machine."""


def phoenix_executable() -> Path | None:
    named = os.environ.get("ACTORSIM_PHOENIX")
    found = Path(named) if named else ROOT / ".venv-phoenix" / "bin" / "phoenix"
    return found if found.exists() else None


class Phoenix:
    """A running Phoenix: its OTLP/HTTP traces endpoint and its spans."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.traces_endpoint = f"{url}/v1/traces"

    def spans(self, traces: Iterable[str]) -> list[dict[str, Any]]:
        """Every span Phoenix holds of these traces (its default project, all pages)."""
        wanted = set(traces)
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{self.url}/v1/projects/default/spans", params=params, timeout=30).json()
            found += [span for span in page["data"] if span["context"]["trace_id"] in wanted]
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def wait_for_spans(self, traces: Iterable[str], count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """The spans of `traces` once Phoenix holds `count` of them (it stores what it receives in the
        background); fails after `timeout_s` with what it holds."""
        traces = set(traces)
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(traces)
            if len(spans) >= count or time.monotonic() > deadline:
                assert len(spans) == count, f"Phoenix holds {len(spans)} spans of these traces, expected {count}"
                return spans
            time.sleep(0.2)  # polls a condition, with a deadline: Phoenix says nothing when it has stored a span


@contextlib.contextmanager
def running_phoenix(workdir: Path) -> Iterator[Phoenix]:
    executable = phoenix_executable()
    if executable is None:
        message = "Arize Phoenix is not installed: `make test` installs it into .venv-phoenix"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    http_port, grpc_port = free_ports(2)
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(workdir), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(http_port), "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_TELEMETRY_ENABLED": "false"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with (workdir / "phoenix.log").open("wb") as output:
        process = subprocess.Popen([str(executable), "serve"], env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_until_serving(process, f"{url}/healthz", START_TIMEOUT_S, workdir / "phoenix.log", "Phoenix")
        yield Phoenix(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # its own session: Phoenix and any worker it started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
