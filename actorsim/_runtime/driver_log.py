"""The driver's own part of a run log: where the run writes, the `run.started` event, the driver's events."""

from __future__ import annotations

import os
import sys
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


class DriverLog:
    """The run log as the driver writes it; `config` (None without a log) travels to the actors' processes."""

    def __init__(self, transport: Transport, options: RunOptions, run_id: str) -> None:
        self.run_id = run_id
        self.config: RunLogConfig | None = None
        self._log: RunLog | None = None
        if options.log_dir is not None:
            config = RunLogConfig(run_id, options.log_dir / run_id, options.console_log)
            self.config = attrs.evolve(config, sink=transport.log_sink(config))
            self._log = open_run_log(self.config, process="driver")

    def started(self, transport: str, **fields: Any) -> None:
        """The run's first event: what ran, where, with which versions (a replay runs the program again from it)."""
        self.event(
            "run.started", transport=transport, argv=sys.argv, cwd=_cwd(), python=sys.version.split()[0],
            actorsim=__version__, **fields,
        )

    def event(self, event: str, *, flush: bool = True, **fields: Any) -> str | None:
        """Record a driver-side event; where it is (`path:line`), or None without a log.

        `flush=False` leaves the write to the next event that flushes: one write a step, not two.
        """
        if self._log is None:
            return None
        line = self._log.event(event, **fields)
        if flush:
            self._log.flush()
        return line

    def close(self) -> None:
        """Write what is left and close this run's log in this process."""
        close_run_log(self.run_id)
