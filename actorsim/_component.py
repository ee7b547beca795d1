"""`create_component`: a TaskCenter, an agent or a tool service, made as the seed makes them.

It checks what it is given (the class, its options, its tools, its model)
in the caller, before any actor starts, naming what it refuses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any, TypeVar

from actorsim._actors.agent import AgentBehaviour
from actorsim._core.roles import ALL
from actorsim._core.supervision import supervision_from
from actorsim._engine.handles import AgentHandle
from actorsim._errors import AgentFailedError
from actorsim._protocol.agent import Describe
from actorsim._runtime.current import current_runtime
from actorsim._runtime.runtime import Runtime
from actorsim.agents import Agent
from actorsim.llm import check_llm
from actorsim.routing import check_send_to
from actorsim.task_center import TaskCenter
from actorsim.tools import ToolService, resolve_tools

T = TypeVar("T")


def accepted_options(cls: type, *, leave_out: Iterable[str] = ("self", "name")) -> list[str]:
    """The keyword options of `cls.__init__`, following `**options` up to the classes it passes them on to."""
    return list(_accepted_options(cls, frozenset(leave_out)))


@functools.lru_cache(maxsize=256)
def _accepted_options(cls: type, skip: frozenset[str]) -> tuple[str, ...]:
    """Cached: a swarm makes thousands of agents of one class, and reading a signature is slow."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                  and p.name not in skip and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


def check_options(cls: type, options: Iterable[str], *, leave_out: Iterable[str] = ("self", "name")) -> None:
    """Refuse options `cls` does not take, naming them and the accepted ones."""
    accepted = accepted_options(cls, leave_out=leave_out)
    unknown = [option for option in options if option not in accepted]
    if unknown:
        raise TypeError(
            f"{cls.__name__} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted)}"
        )


def create_component(
    cls: type[T], name: str, remote: bool = False, *, runtime: Runtime | None = None, **kwargs: Any
) -> Any:
    """Make a TaskCenter, an agent or a tool service, as the seed's `create_component` does.

    With `remote=True` an agent runs as an actor on the current run (see
    `actorsim.init`) and a handle comes back; with `remote=False` it is the
    plain object. A TaskCenter always lives in the calling process; with
    `remote=True` its Environment and Registry are actors. A `ToolService`
    with `remote=True` is served by actors of its own. On the Ray transport,
    `placement=` ("spread", "pack", "node:<id>", "label:<key>=<value>") puts
    this component's actors there, over the run's `placement`; the other
    transports, and `remote=False`, refuse it (ValueError). An option the class
    does not take is refused, naming it and the accepted ones; so is a tool
    of `function_list` that cannot be one. Raises `TypeError`
    for a bad name or class.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, not {name!r}")
    if isinstance(cls, type) and issubclass(cls, TaskCenter | ToolService):
        check_options(cls, kwargs, leave_out=("self", "name", "remote", "runtime"))
        return cls(name=name, remote=remote, runtime=runtime, **kwargs)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"create_component makes a TaskCenter, an Agent subclass or a ToolService, not {cls!r}")
    placement = kwargs.pop("placement", None)
    if placement is not None and not remote:
        raise ValueError("placement= is for components made with remote=True on the 'ray' transport")
    check_options(cls, kwargs)
    if kwargs.get("function_list"):
        # Resolved here, in the driver: names are looked up where they were registered, and only
        # specs travel to the agent's process (a tool service's handle would not pickle).
        kwargs["function_list"] = resolve_tools(kwargs["function_list"])
    if kwargs.get("llm") is not None:
        check_llm(kwargs["llm"])  # here, before any actor is spawned or any run is started
    if not remote:
        return cls(name=name, **kwargs)
    runtime = runtime or current_runtime()
    runtime.check_placement(placement)  # before anything starts
    # The driver routes replies: a policy (maybe a lambda) stays here rather than travel to the actor.
    send_to = kwargs.pop("send_to", ALL)
    check_send_to(send_to)
    if kwargs.get("llm") is not None:
        kwargs["llm"] = runtime.interventions.choose_model(kwargs.get("role") or name, kwargs["llm"])
        runtime.limits.register(name, kwargs["llm"])  # before it starts: clashing limits are refused here
    try:
        ref = runtime.spawn(
            functools.partial(AgentBehaviour.build, cls, {"name": name, **kwargs}),
            name=name,
            supervision=supervision_from(kwargs.get("supervision")),
            failure_type=AgentFailedError,
            hosted=True,
            placement=placement,
        )
    except BaseException:
        runtime.limits.forget(name)  # it never ran: its limits do not hold for those added later
        raise
    # An agent in an actor of its own has started (or raised) by now: it describes itself at once. Hosted
    # agents start in batches and describe themselves together, when first asked.
    info = None if runtime.hosts_agents else runtime.ask(ref, Describe())
    return AgentHandle(runtime, ref, info, send_to)
