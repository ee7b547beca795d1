"""The run in progress: at most one per process, started by `actorsim.init` or implicitly, ended by `shutdown`.

Installed as the `actorsim._core.context` look-up on import, so that code
below the runtime (a tool service) finds the current run without importing it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence

from actorsim._core.context import install_current_run
from actorsim._core.options import RunOptions
from actorsim._runtime.interventions import Intervention
from actorsim._runtime.runtime import Runtime, new_run_id
from actorsim.transport import TRANSPORTS, Transport, load_transport_class
from actorsim.transport._hosted import HostedTransport

TRANSPORT_VARIABLE = "ACTORSIM_TRANSPORT"

_current: Runtime | None = None


def running() -> Runtime | None:
    """The run started last in this process, unless it has been shut down since."""
    return _current if _current is not None and not _current.closed else None


def transport_name(transport: str | None) -> str:
    """The transport a run uses: `transport`, else $ACTORSIM_TRANSPORT, else "local"; ValueError for an unknown one."""
    name = transport or os.environ.get(TRANSPORT_VARIABLE) or "local"
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")
    return name


def start_run(
    transport: str,
    options: RunOptions,
    interventions: Sequence[Intervention] = (),
    hosts: int | None = None,
    *,
    implicit: bool = False,
) -> Runtime:
    """Start the process's run on `transport` (a name of `TRANSPORTS`); what `actorsim.init` does once its
    arguments are checked.

    A refused option is named before any run is replaced or refused. An
    implicit run without actors gives way; any other raises `RuntimeError`.
    """
    global _current
    backend = load_transport_class(transport)
    backend.check_options(options)
    current = running()
    if current is not None and current.implicit and not current.has_actors:
        current.shutdown()  # nothing runs on it yet: the user's explicit choice wins
        current = None
    if current is not None:
        if current.implicit:
            raise RuntimeError(
                f"actorsim already runs an implicit {current.transport_name!r} run, started when a component "
                f"was created with remote=True before actorsim.init (transport from ${TRANSPORT_VARIABLE}, "
                "else 'local'), and it has actors; call actorsim.init(...) before creating components, "
                "or actorsim.shutdown() first"
            )
        raise RuntimeError(
            f"actorsim is already initialised with the {current.transport_name!r} transport; "
            "call actorsim.shutdown() first"
        )
    run_id = new_run_id()
    started: Transport = backend.from_options(options, run_id)
    if hosts is not None:
        started = HostedTransport(started, hosts)
    _current = Runtime(started, options, run_id, interventions)
    _current.implicit = implicit
    atexit.register(_current.shutdown)
    return _current


def shutdown() -> None:
    """Shut the current run down; nothing it started keeps running."""
    current = running()
    if current is not None:
        current.shutdown()


def current_runtime() -> Runtime:
    """The current run; without `actorsim.init`, an implicit one started here.

    The implicit run is what `init()` with no arguments starts: the transport
    from $ACTORSIM_TRANSPORT, else "local", logging to ./logs. A later explicit
    `init` replaces it while it has no actors, and otherwise says why not.
    """
    current = running()
    if current is not None:
        return current
    return start_run(transport_name(None), RunOptions(), implicit=True)


install_current_run(current_runtime)
