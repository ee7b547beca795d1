"""The driver's own part of a run log: where the run writes, the `run.started` event, the driver's events."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import Any

import attrs

from actorsim._core.options import RunOptions
from actorsim._runlog import RunLog, RunLogConfig, close_run_log, open_run_log
from actorsim._version import __version__
from actorsim.transport import Transport


def _cwd() -> str:
    """The working dir; a `ray job submit` driver's is deleted under it once it joins the cluster."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        return f"{os.environ.get('PWD', '?')} (deleted)"


HEARTBEAT_SECONDS = 5.0
"""How often a driver with nothing else to say says it is alive (`run.heartbeat`): a reader of its log can then
tell a run that goes on from one whose driver died, on any machine (see `actorsim.runs.Run.ending`)."""


class DriverLog:
    """The run log as the driver writes it; `config` (None without a log) travels to the actors' processes."""

    def __init__(
        self, transport: Transport, options: RunOptions, run_id: str, *, heartbeat_s: float = HEARTBEAT_SECONDS
    ) -> None:
        self.run_id = run_id
        self.config: RunLogConfig | None = None
        self._log: RunLog | None = None
        self._heartbeat_s = heartbeat_s
        self._last = time.monotonic()
        self._closing = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if options.log_dir is not None:
            config = RunLogConfig(run_id, options.log_dir / run_id, options.console_log, otel=options.otel)
            self.config = attrs.evolve(config, sink=transport.log_sink(config))
            self._log = open_run_log(self.config, process="driver")

    def started(self, transport: str, **fields: Any) -> None:
        """The run's first event: what ran, where, with which versions (a replay runs the program again from it).

        From then on, a heartbeat says the driver is alive whenever it has been silent for `heartbeat_s`.
        """
        self.event(
            "run.started", transport=transport, argv=sys.argv, cwd=_cwd(), python=sys.version.split()[0],
            actorsim=__version__, heartbeat_s=self._heartbeat_s, **fields,
        )
        if self._log is not None:
            self._heartbeat = threading.Thread(target=self._beat, name="actorsim-heartbeat", daemon=True)
            self._heartbeat.start()
        if self.config is not None and self.config.otel is not None:
            self._check_receiver(self.config.otel.endpoint)

    def _check_receiver(self, endpoint: str) -> None:
        """Live export to a receiver that is not there: said once, at the start; the run goes on without it."""
        from actorsim._telemetry.live import unreachable  # the `otel` extra, imported only when asked for

        problem = unreachable(endpoint)
        if problem is not None:
            self.event("otel.unreachable", endpoint=endpoint, error=problem)
            warnings.warn(f"live export: the receiver at {endpoint} cannot take spans ({problem}); the run goes "
                          f"on, and `actorsim export RUN --endpoint URL` sends them later", stacklevel=6)

    def _beat(self) -> None:
        while not self._closing.wait(max(0.0, self._last + self._heartbeat_s - time.monotonic())):
            if time.monotonic() - self._last >= self._heartbeat_s:
                self.event("run.heartbeat")

    def event(self, event: str, *, flush: bool = True, **fields: Any) -> str | None:
        """Record a driver-side event; where it is (`path:line`), or None without a log.

        `flush=False` leaves the write to the next event that flushes: one write a step, not two.
        """
        if self._log is None:
            return None
        line = self._log.event(event, **fields)
        if flush:
            self._log.flush()
            self._last = time.monotonic()
        return line

    def close(self) -> None:
        """The run's last event, `run.stopped`, after the heartbeat has stopped; then the log is closed."""
        self._closing.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()
        self.event("run.stopped")
        close_run_log(self.run_id)
