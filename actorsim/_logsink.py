"""The run log's sink: writes the lines that actor processes on other machines ship to the driver's.

On a cluster the run's folder exists on the driver's machine only; each
actor process ships its lines here (in batches: what one handled message
logged) and waits until they are stored, before its answer leaves. The files
are named and numbered as if the process had written them itself, so
`actorsim runs/trace/replay` read them unchanged. A process whose node dies
loses only what it logged since its last shipped batch; the sink records
each such death as a `runlog.lost` event, with the lines that did arrive, and
a gap between batches (one that never arrived) as `runlog.gap`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from actorsim._runlog import RunLog, RunLogConfig, file_writer, pid_of_file


@attrs.define
class _File:
    write: Callable[[bytes, int], None]
    close: Callable[[], None]
    lines: int = 0  # lines stored so far
    pid: int | None = None


class LogSink:
    """Keeps one open file per shipping process; its own events go to a file of its own."""

    def __init__(self, config: RunLogConfig) -> None:
        self._config = attrs.evolve(config, sink=None)
        self._config.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, _File] = {}
        self._log = RunLog(self._config, process="log-sink")
        self.batches = 0
        self.bytes = 0
        self.started = time.monotonic()

    def ship(self, file_name: str, data: bytes, first_line: int) -> None:
        """Append one batch to `file_name`, noting a batch that went missing before it."""
        entry = self._files.get(file_name)
        if entry is None:
            write, close = file_writer(self._config.directory / file_name)
            entry = self._files[file_name] = _File(write, close, pid=pid_of_file(file_name))
        if first_line != entry.lines + 1:
            self._event("runlog.gap", file=file_name, after_line=entry.lines, next_line=first_line)
        entry.write(data, first_line)
        entry.lines = first_line - 1 + data.count(b"\n")
        self.batches += 1
        self.bytes += len(data)

    def lost(self, pid: int, actor: str, node: str | None, reason: str) -> None:
        """Record that process `pid` died: what it logged after its last shipped line is lost."""
        shipped = [(name, f.lines) for name, f in self._files.items() if f.pid == pid]
        self._event(
            "runlog.lost", lost_pid=pid, actor=actor, lost_node=node, reason=reason,
            file=shipped[0][0] if shipped else None, shipped_lines=shipped[0][1] if shipped else 0,
            note="events the process logged after its last shipped line, if any, were lost with it",
        )

    def stats(self) -> dict[str, float]:
        """Batches and bytes stored so far, and the seconds since the sink started."""
        return {"batches": self.batches, "bytes": self.bytes, "seconds": time.monotonic() - self.started}

    def close(self) -> None:
        self._event("runlog.sink_closed", files=len(self._files), batches=self.batches, bytes=self.bytes)
        for entry in self._files.values():
            entry.close()
        self._files.clear()
        self._log.close()

    def _event(self, name: str, **fields: object) -> None:
        self._log.write(name, dict(fields))
        self._log.flush()
