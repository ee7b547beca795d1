"""The run log: one JSON-lines file per process under `logs/<run_id>/`, read as one.

Each process of a run (the driver, every Thespian actor, every Ray worker)
appends its own file, so nothing is shared across processes or machines. The
logger is built with `structlog.wrap_logger`: the user's own structlog and
logging configuration is never touched.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs
import orjson
import structlog

FORMAT_VERSION = 1


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Actor processes may run elsewhere (a Ray worker's cwd is its own)."""
    return Path(path).absolute()


@attrs.frozen
class RunLogConfig:
    """Where a run's processes write; travels to actor processes with their factory."""

    run_id: str
    directory: Path = attrs.field(converter=_absolute)


def _orjson_lines(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    return orjson.dumps(event, default=repr)


class RunLog:
    """Writes this process's events; one per process and run."""

    def __init__(self, config: RunLogConfig, process: str) -> None:
        self.config = config
        config.directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in process)
        self.path = config.directory / f"{safe}-{os.getpid()}.jsonl"
        self._file = self.path.open("ab")
        static = {"v": FORMAT_VERSION, "run_id": config.run_id, "pid": os.getpid(),
                  "host": socket.gethostname(), "process": process}

        def add_static(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
            event.pop("run_log", None)
            event.update(static)
            return event

        self._logger = structlog.wrap_logger(
            structlog.BytesLogger(self._file),
            processors=[
                structlog.contextvars.merge_contextvars,
                add_static,
                structlog.processors.TimeStamper(fmt=None, key="ts"),
                structlog.processors.format_exc_info,
                _orjson_lines,
            ],
        )

    def event(self, name: str, **fields: Any) -> None:
        self._logger.msg(name, **fields)

    def close(self) -> None:
        self._file.close()


_lock = threading.Lock()
_logs: dict[str, RunLog] = {}
_process_log: RunLog | None = None


def open_run_log(config: RunLogConfig, process: str) -> RunLog:
    """This process's log for the run, opened on first use."""
    global _process_log
    with _lock:
        log = _logs.get(config.run_id)
        if log is None:
            log = _logs[config.run_id] = RunLog(config, process)
        _process_log = log
        return log


def close_run_log(run_id: str) -> None:
    global _process_log
    with _lock:
        log = _logs.pop(run_id, None)
        if log is not None:
            log.close()
            if _process_log is log:
                _process_log = None


def log_event(name: str, **fields: Any) -> None:
    """Record an event in the log of the run whose actor is running, if there is one.

    An actor's messages are handled with `run_log` bound in structlog's context
    vars (see `LoggedBehaviour`); a process serving one run needs no binding.
    """
    run_id = structlog.contextvars.get_contextvars().get("run_log")
    log = _logs.get(run_id) if run_id is not None else _process_log
    if log is not None:
        log.event(name, **fields)


class LoggedBehaviour:
    """Runs a behaviour with its run and actor bound in the log context.

    Built in the actor's own process (it pickles as its factory), where it
    opens that process's run log; failures are logged with their traceback
    before they travel back to the caller.
    """

    def __init__(self, config: RunLogConfig, name: str, factory: Callable[[], Any]) -> None:
        open_run_log(config, process=name)
        self._run_id = config.run_id
        self._name = name
        with self._bound():
            self._behaviour = factory()
            log_event("actor.started", behaviour=type(self._behaviour).__qualname__)

    def _bound(self) -> AbstractContextManager[None]:
        return structlog.contextvars.bound_contextvars(run_log=self._run_id, actor=self._name)

    def receive(self, request: Any) -> Any:
        with self._bound():
            try:
                result = self._behaviour.receive(request)
            except Exception:
                log_event("actor.failed", request=type(request).__name__, exc_info=True)
                raise
        return self._bound_items(result, request) if inspect.isgenerator(result) else result

    def _bound_items(self, items: Iterator[Any], request: Any) -> Iterator[Any]:
        """Bind the context while the generator runs, never across its yields."""
        while True:
            with self._bound():
                try:
                    item = next(items)
                except StopIteration:
                    return
                except Exception:
                    log_event("actor.failed", request=type(request).__name__, exc_info=True)
                    raise
            yield item
