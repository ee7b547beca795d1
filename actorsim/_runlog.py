"""The run log: one JSON-lines file per process under `logs/<run_id>/`, read as one.

Each process of a run (the driver, every Thespian actor, every Ray worker)
appends its own file, so nothing is shared across processes or machines. The
logger is built with `structlog.wrap_logger`: the user's own structlog and
logging configuration is never touched.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import inspect
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import structlog

FORMAT_VERSION = 1
_MOST_PENDING = 2000  # events kept in memory before they are written anyway


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Actor processes may run elsewhere (a Ray worker's cwd is its own)."""
    return Path(path).absolute()


@attrs.frozen
class RunLogConfig:
    """Where a run's processes write; travels to actor processes with their factory."""

    run_id: str
    directory: Path = attrs.field(converter=_absolute)
    console: bool = False
    """Also render events readably on stderr, for people watching a run."""


def _orjson_lines(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
    return orjson.dumps(event, default=repr, option=orjson.OPT_APPEND_NEWLINE)


def _traceback_if_any(logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return structlog.processors.format_exc_info(logger, name, event) if "exc_info" in event else event


class _Lines:
    """structlog's output: lines kept in memory until `flush` writes them in one go.

    Writing each event at once made actors' threads queue on the file lock and
    the GIL (a step logged 2.7 times slower); a handled message is flushed
    whole, before its answer leaves the actor, so nothing it logged is lost.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._pending: collections.deque[bytes] = collections.deque()
        self._flushing = threading.Lock()
        self._taking = threading.Lock()
        self.count = 0  # lines taken so far: the number of the last one in the file

    def info(self, line: bytes) -> int:
        with self._taking:
            self._pending.append(line)
            self.count += 1
            number = self.count
        if len(self._pending) >= _MOST_PENDING:
            self.flush()
        return number

    def flush(self) -> None:
        with self._flushing:
            lines = []
            while self._pending:
                lines.append(self._pending.popleft())
            if lines:
                os.write(self._fd, b"".join(lines))

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


class RunLog:
    """Writes this process's events; one per process and run."""

    def __init__(self, config: RunLogConfig, process: str) -> None:
        self.config = config
        config.directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in process)
        self.path = config.directory / f"{safe}-{os.getpid()}.jsonl"
        self._lines = _Lines(self.path)
        static = {"v": FORMAT_VERSION, "run_id": config.run_id, "pid": os.getpid(),
                  "host": socket.gethostname(), "process": process}

        def context_static_and_time(
            logger: Any, name: str, event: MutableMapping[str, Any]
        ) -> MutableMapping[str, Any]:
            """structlog's context vars, the process's fields and a timestamp: one processor, not three."""
            structlog.contextvars.merge_contextvars(logger, name, event)
            event.update(static)
            event["ts"] = time.time()
            return event

        # Bound once: calls on wrap_logger's lazy proxy each went through its `__getattr__`.
        self._logger = structlog.wrap_logger(
            self._lines,
            processors=[context_static_and_time, _traceback_if_any, _orjson_lines],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        ).bind()
        self.is_driver = process == "driver"

        self._console = (
            structlog.wrap_logger(
                structlog.PrintLogger(sys.stderr),
                processors=[
                    structlog.contextvars.merge_contextvars,
                    structlog.processors.TimeStamper(fmt="%H:%M:%S.%f"),
                    structlog.dev.ConsoleRenderer(),
                ],
            )
            if config.console
            else None
        )

    def event(self, name: str, **fields: Any) -> str:
        """Log one event; returns where it is, `path:line`, for errors that point at it."""
        number = self._logger.info(name, **fields)
        if self._console is not None:
            self._console.msg(name, **fields)
        return f"{self.path}:{number}"

    def flush(self) -> None:
        self._lines.flush()

    def close(self) -> None:
        self._lines.close()


_lock = threading.Lock()
_logs: dict[str, RunLog] = {}
_process_log: RunLog | None = None
# The run whose actor is handling a message here: routes events when one process serves several runs.
# A ContextVar of our own, not a structlog one, so it is not written into every event.
_bound_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("actorsim_bound_run", default=None)


def open_run_log(config: RunLogConfig, process: str) -> RunLog:
    """This process's log for the run, opened on first use.

    In an actor's own process it also takes the events logged outside any
    bound handling (a model's retries on a worker thread, say); never in the
    driver, which may run other task centers with no log, or another log.
    """
    global _process_log
    with _lock:
        log = _logs.get(config.run_id)
        if log is None:
            log = _logs[config.run_id] = RunLog(config, process)
        if not log.is_driver:
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


def flush_run_logs() -> None:
    """Write what an actor process has logged; done before the actor answers.

    In the driver's own process (local and plain runs) the driver flushes at
    each of its own events instead: per request, writing cost more than the
    logging itself.
    """
    for log in list(_logs.values()):
        if not log.is_driver:
            log.flush()


def log_event(name: str, **fields: Any) -> None:
    """Record an event in the log of the run whose actor is running, if there is one.

    An actor's messages are handled with its run bound (see `LoggedBehaviour`);
    a process serving one run needs no binding.
    """
    run_id = _bound_run.get()
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
        tokens = self._bind()
        try:
            self._behaviour = factory()
            log_event("actor.started", behaviour=type(self._behaviour).__qualname__)
        finally:
            self._unbind(tokens)
        flush_run_logs()

    def _bind(self) -> tuple[Mapping[str, contextvars.Token[Any]], contextvars.Token[str | None]]:
        return structlog.contextvars.bind_contextvars(actor=self._name), _bound_run.set(self._run_id)

    @staticmethod
    def _unbind(tokens: tuple[Mapping[str, contextvars.Token[Any]], contextvars.Token[str | None]]) -> None:
        structlog.contextvars.reset_contextvars(**tokens[0])
        _bound_run.reset(tokens[1])

    def receive(self, request: Any) -> Any:
        tokens = self._bind()
        try:
            result = self._behaviour.receive(request)
        except Exception:
            log_event("actor.failed", request=type(request).__name__, exc_info=True)
            raise
        finally:
            self._unbind(tokens)
            flush_run_logs()
        return self._bound_items(result, request) if inspect.isgenerator(result) else result

    def _bound_items(self, items: Iterator[Any], request: Any) -> Iterator[Any]:
        """Keep the run and actor bound while the generator runs.

        Bound once for the whole stream: every transport drains a stream on a
        single thread that does nothing else meanwhile, and binding around each
        item cost more than the logging itself.
        """
        tokens = self._bind()
        try:
            yield from items
        except Exception:
            log_event("actor.failed", request=type(request).__name__, exc_info=True)
            raise
        finally:
            with contextlib.suppress(ValueError):  # closed from another thread: nothing of ours is bound there
                self._unbind(tokens)
            flush_run_logs()
