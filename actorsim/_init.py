"""`actorsim.init`: the process's run, started from what the user asked for."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from actorsim._core.budget import Budget
from actorsim._core.options import OtelExport, RunOptions
from actorsim._core.placement import placement_from
from actorsim._replay import Replay, Resume
from actorsim._runtime.current import start_run, transport_name
from actorsim._runtime.interventions import Intervention
from actorsim._runtime.runtime import Runtime


def init(
    transport: str | None = None,
    *,
    address: str | None = None,
    placement: str | None = None,
    ask_timeout: float = 60.0,
    step_timeout: float = 600.0,
    log_dir: str | os.PathLike[str] | None = "logs",
    console_log: bool = False,
    replay: Replay | str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    interventions: Sequence[Intervention] = (),
    hosts: int | None = None,
    otel: bool | str | OtelExport | None = None,
    budget: Budget | Mapping[str, Any] | None = None,
) -> Runtime:
    """Start the run that `create_component(..., remote=True)` will use.

    Call it first: a component created with `remote=True` before it starts an
    implicit run (see `current_runtime`), which this replaces only while it has
    no actors.

    `transport` is "local", "thespian" or "ray" (default: $ACTORSIM_TRANSPORT,
    else "local"). On "ray", `address` (else $RAY_ADDRESS, as `ray submit` and
    `ray job submit` set it) is the cluster to join, "auto" the one started on
    this machine; with neither, or "local", a private instance is started.
    `placement` says where Ray actors run: "spread" over the live nodes, "pack"
    on the driver's node, "node:<node id>", or "label:<key>=<value>" (default:
    Ray's choice); a component's own `placement=` overrides it. Every process of
    the run logs to `log_dir/<run_id>/` (`log_dir=None`: no run log);
    `console_log=True` also shows the events readably on stderr. `replay`
    (a `Replay`, or a recorded run's folder) answers every model call and
    human input from that recording and checks each message against it;
    `resume` (a recorded run's folder, whose driver died) answers from it
    whatever it holds and goes on live from where it ends (see `actorsim
    resume`); `interventions` hook into the run (see `Intervention`). The run is shut
    down by `shutdown()`, by leaving the `with` block, or at interpreter exit.
    `hosts=N` places the run's agents many to a process, on a pool of N host
    actors, instead of one actor each (see `actorsim.transport._hosted`); they start
    in batches, so an agent whose constructor raises raises at its first use.
    `otel=True` (or a receiver's URL, or an `OtelExport`) sends the run's spans, as it goes, from
    every process, to an OTLP/HTTP receiver (needs `pip install actorsim[otel]`;
    default: on where `$OTEL_EXPORTER_OTLP_ENDPOINT` names one and the extra is
    installed; `otel=False`: off). See "Traces in other tools" in the README.
    `budget` (a `Budget`, or a dict of its fields) bounds the tokens and cost of
    the run's model calls: once spent, a step raises `BudgetExceeded` (see
    `Runtime.budget` to raise it).

    Raises `ValueError` for an unknown transport, or a bad placement, or
    `address`/`placement` on a transport other than "ray", or both `replay` and
    `resume`; `RunLogError` for a recording that cannot be read; `RuntimeError` when a run
    is already going, `TransportUnavailableError` when its package is missing,
    `ClusterUnreachableError` when no cluster answers at the address;
    `ImportError` for `otel=` without the `otel` extra.
    """
    name = transport_name(transport)
    options = RunOptions(
        ask_timeout=ask_timeout, step_timeout=step_timeout, log_dir=log_dir, console_log=console_log,
        address=address, placement=placement_from(placement),
        **({"otel": otel} if otel is not None else {}), budget=budget,
    )
    if replay is not None and resume is not None:
        raise ValueError("init takes replay= or resume=, not both")
    if options.otel is not None and log_dir is None and otel:
        raise ValueError("otel= sends the spans the run log makes: it needs a log_dir, not None")
    handlers = [*interventions, *([replay_from(replay)] if replay is not None else [])]
    if resume is not None:
        handlers.append(Resume(Path(resume)))
    return start_run(name, options, handlers, hosts)


def replay_from(replay: Replay | str | os.PathLike[str]) -> Replay:
    """A `Replay` as given, or of the run recorded in that folder."""
    return replay if isinstance(replay, Replay) else Replay(Path(replay))
