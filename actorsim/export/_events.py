"""A run's events read as a stream: every file line by line, merged in time order, never the whole log in memory.

`actorsim.runs.read_run` holds a run whole (what `replay` and `trace` need); an export of a swarm's run
of 100,000 messages must not. Each file is read a line at a time and the files are merged by timestamp
(`heapq.merge`): memory holds one line per file.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actorsim._errors import RunLogError
from actorsim.runs import parse_event, writer_gone


def run_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The run's JSON-lines files; `RunLogError` for a folder without any."""
    folder = Path(directory)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise RunLogError(f"{folder}: no run log here (expected a folder of .jsonl files)")
    return files


def stream_events(directory: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every event of the run, in time order; errors name the file and line, as `read_run`'s do."""
    return heapq.merge(*(_file_events(path) for path in run_files(directory)), key=lambda event: event["ts"])


def _file_events(path: Path) -> Iterator[dict[str, Any]]:
    first: bytes | None = None
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                if writer_gone(path, first):
                    return  # the truncated last line of a killed process: passed over, as `read_run` does
                raise RunLogError(f"{path}:{number}: truncated line (the process may have died while writing)")
            first = first or line
            yield parse_event(line, f"{path}:{number}")
