"""The run log: one JSON-lines file per process under `logs/<run_id>/`, read as one.

Each process of a run (the driver, every Thespian actor, every Ray worker)
has its own file, so nothing is shared across processes. A process that
shares the driver's file system appends it itself; on a Ray cluster, where
the run's folder is on the driver's machine only, an actor ships its lines
to a sink there (`RunLogConfig.sink`, see `actorsim._logsink`), which writes
the same files.
structlog binds the actor in the context a message is handled in, so a
user's own structlog loggers see it, and renders the optional console view.
The file's lines are rendered here with orjson: an event's own fields, then
those every line of the process and actor shares, rendered once. structlog's
processor chain had cost more per event than the event itself. What a user
binds in structlog's contextvars stays out of the run log, and the user's own
structlog and logging configuration is never touched.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs
import orjson
import structlog

from actorsim._core.options import OtelExport

FORMAT_VERSION = 1
_MOST_PENDING_BYTES = 1 << 20  # kept in memory before it is written anyway


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Actor processes may run elsewhere (a Ray worker's cwd is its own)."""
    return Path(path).absolute()


class Sink(Protocol):
    """Takes a process's lines where the run's folder is; must pickle, as it travels with the config."""

    def ship(self, file_name: str, data: bytes, first_line: int) -> None:
        """Store `data` (whole lines, numbered from `first_line`) in `file_name`; returns once it is stored."""


@attrs.frozen
class RunLogConfig:
    """Where a run's processes write; travels to actor processes with their factory."""

    run_id: str
    directory: Path = attrs.field(converter=_absolute)
    console: bool = False
    """Also render events readably on stderr, for people watching a run."""
    sink: Sink | None = attrs.field(default=None, eq=False)
    """Set when actor processes may not share the driver's file system: they ship their lines to it."""
    otel: OtelExport | None = None
    """Set for live export: every process also sends its spans (`actorsim._telemetry.live`)."""


@attrs.frozen
class FlushSpans:
    """Asks an actor to send the spans its process holds (before it is stopped); answered with whether all went."""


_process_fields: dict[str, str] = {}


def set_process_fields(**fields: str | None) -> None:
    """What identifies this process besides its pid and host (a Ray node id): on every line it logs.

    Set by a backend in the processes it runs, before their logs open; None removes a field.
    """
    for key, value in fields.items():
        if value is None:
            _process_fields.pop(key, None)
        else:
            _process_fields[key] = value


def file_writer(path: Path) -> tuple[Callable[[bytes, int], None], Callable[[], None]]:
    """Appends to `path`; the lines' numbers are the file's own."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(data: bytes, first_line: int) -> None:
        written = memoryview(data)
        while written:
            written = written[os.write(fd, written):]

    return write, functools.partial(os.close, fd)


class _Lines:
    """The file's lines, kept in memory until `flush` writes (or ships) them in one go.

    Writing each event at once made actors' threads queue on the file lock and
    the GIL (a step logged 2.7 times slower); a handled message is flushed
    whole, before its answer leaves the actor, so nothing it logged is lost.
    """

    def __init__(self, write: Callable[[bytes, int], None], close: Callable[[], None] = lambda: None) -> None:
        self._write = write
        self._close = close
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flushing = threading.Lock()  # held from taking the lines to writing them: writes keep their order
        self._taking = threading.Lock()
        self.count = 0  # lines taken so far: the number of the last one in the file
        self._written = 0  # lines written so far

    def append(self, line: bytes) -> int:
        """Take one line; returns its number in the file."""
        with self._taking:
            self._pending.append(line)
            self._pending_bytes += len(line)
            self.count += 1
            number = self.count
            full = self._pending_bytes >= _MOST_PENDING_BYTES
        if full:
            self.flush()
        return number

    def flush(self) -> None:
        with self._flushing:
            with self._taking:
                pending, self._pending, self._pending_bytes = self._pending, [], 0
            if pending:
                self._write(b"".join(pending), self._written + 1)
                self._written += len(pending)

    def close(self) -> None:
        self.flush()
        self._close()


def pid_of_file(file_name: str) -> int | None:
    """The process id a run-log file is named after (`<process>-<pid>.jsonl`)."""
    stem = file_name.rsplit(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


class RunLog:
    """Writes this process's events; one per process and run."""

    def __init__(self, config: RunLogConfig, process: str) -> None:
        self.config = config
        self.is_driver = process == "driver"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in process)
        self.path = config.directory / f"{safe}-{os.getpid()}.jsonl"
        if config.sink is not None and not self.is_driver:
            self._lines = _Lines(functools.partial(config.sink.ship, self.path.name))
        else:
            config.directory.mkdir(parents=True, exist_ok=True)
            self._lines = _Lines(*file_writer(self.path))
        self._static = {"v": FORMAT_VERSION, "run_id": config.run_id, "pid": os.getpid(),
                        "host": socket.gethostname(), "process": process, **_process_fields}
        self._tail = self.tail()
        self._live = _live_spans(config.otel) if config.otel is not None else None
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

    def tail(self, **bound: str) -> bytes:
        """The end of every line written with these bindings, rendered once: the fields
        every event of this process (and actor) has, then the line's end."""
        return b"," + orjson.dumps({**bound, **self._static})[1:] + b"\n"

    def event(self, name: str, **fields: Any) -> str:
        """Log one event; returns where it is, `path:line`, for errors that point at it."""
        return f"{self.path}:{self.write(name, fields)}"

    def write(self, name: str, fields: dict[str, Any], tail: bytes | None = None) -> int:
        """Log one event, taking `fields` as its dict; returns its line number."""
        if self._console is not None:
            self._console.msg(name, **fields)
        fields["event"] = name
        fields["ts"] = time.time()
        if "exc_info" in fields:
            structlog.processors.format_exc_info(None, name, fields)
        line = orjson.dumps(fields, default=repr)[:-1] + (tail or self._tail)
        if self._live is not None:
            self.tap(name, fields)
        if _captures:
            event = orjson.loads(line)
            for captured in list(_captures):
                captured.append(event)
        return self._lines.append(line)

    @property
    def traced(self) -> bool:
        """Whether this process sends its spans live."""
        return self._live is not None

    def tap(self, name: str, fields: dict[str, Any]) -> None:
        """Feed an event to live export alone (with what says where it happened)."""
        if self._live is not None:
            actor = structlog.contextvars.get_contextvars().get("actor")
            self._live.take({**fields, "event": name, "ts": fields.get("ts") or time.time(), **self._static,
                             "actor": actor})

    def flush_spans(self, timeout_s: float = 5.0) -> bool:
        return self._live.flush(timeout_s) if self._live is not None else True

    def flush(self) -> None:
        self._lines.flush()

    def close(self) -> None:
        self._lines.close()
        if self._live is not None:
            self._live.close()


_lock = threading.Lock()
_captures: list[list[dict[str, Any]]] = []
_logs: dict[str, RunLog] = {}
_process_log: RunLog | None = None


def _forget_parents_logs() -> None:
    """A process forked from one with run logs open starts without them: its actors open files of their own.

    Thespian forks its admin from the driver, and a restarted actor system's
    admin is forked after the driver opened its log: its actors would take
    the driver's log for theirs. The copies are dropped, never closed or
    flushed: their lines are the parent's to write.
    """
    global _lock, _process_log
    _lock = threading.Lock()
    _captures.clear()
    _logs.clear()
    _process_log = None


os.register_at_fork(after_in_child=_forget_parents_logs)


@attrs.frozen
class _Binding:
    """The log and line tail of the actor handling a message here.

    A ContextVar of our own: it routes events when one process serves several runs.
    """

    log: RunLog
    tail: bytes


_binding: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar("actorsim_binding", default=None)
_host: contextvars.ContextVar[str | None] = contextvars.ContextVar("actorsim_host", default=None)


@contextlib.contextmanager
def hosted_by(host: str) -> Iterator[None]:
    """Actors started in this block run inside host actor `host`: their `actor.started` says so (`hosted_by`)."""
    token = _host.set(host)
    try:
        yield
    finally:
        _host.reset(token)


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


@contextlib.contextmanager
def capture_events() -> Iterator[list[dict[str, Any]]]:
    """Collect every run-log event this process writes during the block, as its file gets it.

    For tests, after structlog's `testing.capture_logs`: no reading back, no
    filtering a shared log by time. Events other processes log are not seen
    (their files are theirs). A model call's `prompt` is as written:
    `prompt_reused` turns of the previous call, then `prompt_new`.
    """
    captured: list[dict[str, Any]] = []
    with _lock:
        _captures.append(captured)
    try:
        yield captured
    finally:
        with _lock:
            _captures.remove(captured)


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

    An actor's messages are handled with its run bound (see `LoggedBehaviour`);
    a process serving one run needs no binding.
    """
    _log_for_here(lambda log, tail: log.write(name, fields, tail))


def log_result(name: str, **fields: Any) -> None:
    """Record an event and write it out at once: a result that must survive this process (a finished model or
    tool call), so that a resumed run answers it from the log instead of making the call again. Otherwise
    lines wait for the end of the message being handled. In the driver's own process (local and plain
    runs) the driver's next event writes it: that process's death takes the call's agent too."""

    def write(log: RunLog, tail: bytes | None) -> None:
        log.write(name, fields, tail)
        if not log.is_driver:
            log.flush()

    _log_for_here(write)


def tap(name: str, **fields: Any) -> None:
    """Feed an event to live export only, never to the file: what only spans need (an agent's reply, ended)."""
    _log_for_here(lambda log, tail: log.tap(name, fields))


def traced() -> bool:
    """Whether the run whose actor is running here sends its spans live."""
    binding = _binding.get()
    log = binding.log if binding is not None else _process_log
    return log is not None and log.traced


def _live_spans(export: OtelExport) -> Any:
    from actorsim._telemetry.live import LiveSpans  # the `otel` extra, imported only when asked for

    return LiveSpans(export)


def _log_for_here(write: Callable[[RunLog, bytes | None], object]) -> None:
    binding = _binding.get()
    if binding is not None:
        write(binding.log, binding.tail)
    elif _process_log is not None:
        write(_process_log, None)


def flush_logs() -> None:
    """Write out what every run log of this process holds: before the process ends abruptly (`os._exit`)."""
    with _lock:
        logs = list(_logs.values())
    for log in logs:
        log.flush()
        log.flush_spans(timeout_s=1.0)


class LoggedBehaviour:
    """Runs a behaviour with its run and actor bound in the log context.

    Built in the actor's own process (it pickles as its factory), where it
    opens that process's run log; failures are logged with their traceback
    before they travel back to the caller.

    The bindings are made once, in a context of the actor's own; each message
    is handled in a copy of it. Binding and unbinding structlog's contextvars
    around every message cost more than the events it logged. The copy also
    keeps what one message binds from leaking into the next, and an actor
    sees the same context on every transport, not its caller's.
    """

    def __init__(self, config: RunLogConfig, name: str, factory: Callable[[], Any]) -> None:
        self._log = open_run_log(config, process=name)
        host = _host.get()  # read here: the actor's own context below starts empty
        self._context = contextvars.Context()
        self._context.run(self._bind, name)
        self._behaviour = self._context.copy().run(self._start, factory, host)

    def _bind(self, name: str) -> None:
        structlog.contextvars.bind_contextvars(actor=name)
        _binding.set(_Binding(self._log, self._log.tail(actor=name)))

    def _start(self, factory: Callable[[], Any], host: str | None) -> Any:
        behaviour = factory()
        log_event("actor.started", behaviour=type(behaviour).__qualname__, **({"hosted_by": host} if host else {}))
        self._flush()
        return behaviour

    def _flush(self) -> None:
        """Write what an actor process has logged before its answer leaves.

        In the driver's own process (local and plain runs) the driver flushes
        at each of its own events instead: per request, writing cost more than
        the logging itself.
        """
        if not self._log.is_driver:
            self._log.flush()

    def receive(self, request: Any) -> Any:
        if isinstance(request, FlushSpans):
            return self._log.flush_spans()
        context = self._context.copy()
        try:
            result = context.run(self._behaviour.receive, request)
        except Exception:
            context.run(log_event, "actor.failed", request=type(request).__name__, exc_info=True)
            raise
        finally:
            self._flush()
        return self._bound_items(result, request, context) if inspect.isgenerator(result) else result

    def _bound_items(
        self, items: Generator[Any, Any, Any], request: Any, context: contextvars.Context
    ) -> Iterator[Any]:
        """Run each step of a streamed answer in the message's context."""
        try:
            while True:
                try:
                    item = context.run(next, items)
                except StopIteration:
                    return
                yield item
        except GeneratorExit:
            context.run(items.close)
            raise
        except Exception:
            context.run(log_event, "actor.failed", request=type(request).__name__, exc_info=True)
            raise
        finally:
            self._flush()
