"""A run: one transport, its timeouts, and every actor started on it."""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from actorsim._errors import ActorDiedError, ComponentFailedError
from actorsim._replay import REPLAY_VARIABLE
from actorsim._runlog import LoggedBehaviour, RunLogConfig, close_run_log, open_run_log
from actorsim._supervision import Durable, Supervision, Supervisor
from actorsim._validators import positive
from actorsim.transport import TRANSPORTS, ActorRef, BehaviourFactory, Transport, load_transport

TRANSPORT_VARIABLE = "ACTORSIM_TRANSPORT"


@attrs.frozen
class RunOptions:
    """How long to wait: `ask_timeout` for one answer, `step_timeout` for the next frame of a step."""

    ask_timeout: float = attrs.field(default=60.0, validator=positive)
    step_timeout: float = attrs.field(default=600.0, validator=positive)
    log_dir: Path | None = attrs.field(default=Path("logs"), converter=attrs.converters.optional(Path))
    console_log: bool = False


def _version() -> str:
    from actorsim import __version__

    return __version__


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class Runtime:
    """The actor system of one run; a context manager that shuts it down."""

    def __init__(self, transport: Transport, options: RunOptions, run_id: str) -> None:
        self.transport = transport
        self.options = options
        self.run_id = run_id
        self.supervisor = Supervisor(self)
        self.implicit = False  # started by `current_runtime`, not by the user's `init`
        self._actors: list[str] = []
        self._closed = False
        self.log_config = (
            None if options.log_dir is None else RunLogConfig(run_id, options.log_dir / run_id, options.console_log)
        )
        self._log = None if self.log_config is None else open_run_log(self.log_config, process="driver")
        self.log(
            "run.started",
            transport=transport.name,
            argv=sys.argv,
            cwd=os.getcwd(),
            python=sys.version.split()[0],
            actorsim=_version(),
            replay_of=os.environ.get(REPLAY_VARIABLE) and Path(os.environ[REPLAY_VARIABLE]).name,
        )

    def log(self, event: str, *, flush: bool = True, **fields: Any) -> str | None:
        """Record a driver-side event in this run's log; where it is (`path:line`), or None without a log.

        `flush=False` leaves the write to the next event that flushes: one write a step, not two.
        """
        if self._log is None:
            return None
        line = self._log.event(event, **fields)
        if flush:
            self._log.flush()
        return line

    @property
    def transport_name(self) -> str:
        return self.transport.name

    def spawn(
        self,
        factory: BehaviourFactory,
        *,
        name: str,
        supervision: Supervision | None = None,
        failure_type: type[ComponentFailedError] = ComponentFailedError,
    ) -> ActorRef:
        """Start an actor under the run's supervisor."""
        if self.log_config is not None:
            factory = functools.partial(LoggedBehaviour, self.log_config, name, factory)
        ref = self.supervisor.spawn(factory, name, supervision or Supervision(), failure_type)
        self._actors.append(name)
        return ref

    @property
    def has_actors(self) -> bool:
        return bool(self._actors)

    def stop(self, ref: ActorRef) -> None:
        if ref.name in self._actors:
            self._actors.remove(ref.name)
        self.transport.stop(self.supervisor.forget(ref.name) or ref)
        self.log("actor.stopped", actor=ref.name)

    def ask(self, ref: ActorRef, request: Any) -> Any:
        """Ask the actor that now bears `ref`'s name; one whose process died is restarted first.

        A `Durable` request that succeeds is journaled, to be replayed into a successor.
        """
        while True:
            current = self.supervisor.current(ref.name)
            try:
                answer = self.transport.ask(current, request, timeout=self.options.ask_timeout)
            except ActorDiedError as died:
                self.supervisor.crashed(current, died)
                continue
            if isinstance(request, Durable):
                self.supervisor.journal(ref.name, request)
            return answer

    def stop_all(self) -> None:
        """Stop every actor of the run, keeping the system up for new ones."""
        while self._actors:
            name = self._actors.pop()
            ref = self.supervisor.forget(name)
            if ref is not None:
                self.transport.stop(ref)
                self.log("actor.stopped", actor=name)

    def shutdown(self) -> None:
        global _current
        if self._closed:
            return
        self._closed = True
        self._actors.clear()
        self.transport.shutdown()
        self.log("run.stopped")
        close_run_log(self.run_id)
        if _current is self:
            _current = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt) and not self._closed:
            # Marks the log as ended by the user, so a replay stops where the run did.
            self.log("run.interrupted")
        self.shutdown()


_current: Runtime | None = None


def init(
    transport: str | None = None,
    *,
    address: str | None = None,
    ask_timeout: float = 60.0,
    step_timeout: float = 600.0,
    log_dir: str | os.PathLike[str] | None = "logs",
    console_log: bool = False,
) -> Runtime:
    """Start the run that `create_component(..., remote=True)` will use.

    Call it first: a component created with `remote=True` before it starts an
    implicit run (see `current_runtime`), which this replaces only while it has
    no actors.

    `transport` is "local", "thespian" or "ray" (default: $ACTORSIM_TRANSPORT,
    else "local"); `address` joins an existing Ray cluster. Every process of
    the run logs to `log_dir/<run_id>/` (`log_dir=None`: no run log);
    `console_log=True` also shows the events readably on stderr. The run is shut
    down by `shutdown()`, by leaving the `with` block, or at interpreter exit.
    """
    global _current
    name = transport or os.environ.get(TRANSPORT_VARIABLE) or "local"
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")
    if address is not None and name != "ray":
        raise ValueError(f"address= is for the 'ray' transport, not {name!r}")
    options = RunOptions(ask_timeout=ask_timeout, step_timeout=step_timeout, log_dir=log_dir, console_log=console_log)
    if _current is not None and _current.implicit and not _current.has_actors:
        _current.shutdown()  # nothing runs on it yet: the user's explicit choice wins
    if _current is not None:
        if _current.implicit:
            raise RuntimeError(
                f"actorsim already runs an implicit {_current.transport_name!r} run, started when a component "
                f"was created with remote=True before actorsim.init (transport from ${TRANSPORT_VARIABLE}, "
                "else 'local'), and it has actors; call actorsim.init(...) before creating components, "
                "or actorsim.shutdown() first"
            )
        raise RuntimeError(
            f"actorsim is already initialised with the {_current.transport_name!r} transport; "
            "call actorsim.shutdown() first"
        )
    run_id = new_run_id()
    backend_options: dict[str, Any] = {}
    if name == "thespian":
        output_dir = options.log_dir / run_id if options.log_dir is not None else Path(tempfile.gettempdir())
        backend_options["output_path"] = output_dir / f"thespian-{run_id}.out"
    elif name == "ray":
        backend_options["address"] = address
    _current = Runtime(load_transport(name, **backend_options), options, run_id)
    atexit.register(_current.shutdown)
    return _current


def shutdown() -> None:
    """Shut the current run down; nothing it started keeps running."""
    if _current is not None:
        _current.shutdown()


def current_runtime() -> Runtime:
    """The current run; without `actorsim.init`, an implicit one started here.

    The implicit run is what `init()` with no arguments starts: the transport
    from $ACTORSIM_TRANSPORT, else "local", logging to ./logs. A later explicit
    `init` replaces it while it has no actors, and otherwise says why not.
    """
    if _current is not None:
        return _current
    runtime = init()
    runtime.implicit = True
    return runtime
