"""Tool services: a tool served by actors of its own, shared by many agents.

`create_component(ToolService, "fetcher", remote=True, tools=[fetch], pool=2)`
starts `pool` actors under the run's supervisor. An agent's call to one is an
ordinary message (`CallTool`, with the call's id), asked by the driver: the
agent's step pauses with a `ServiceRequest`, the driver asks the service and
resumes the step with the outcome (`actorsim._engine.tool_calls`). The driver,
not the agent's process, asks, because it is where the supervisor and every
transport's handles are (an actor cannot wait for another actor's answer on
Thespian). A service that dies during a call is restarted; the call is made
again only for a tool declared idempotent, else the model is told that it may
or may not have run.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Sequence
from typing import Any

import attrs

from actorsim._core.chat import ToolCall
from actorsim._core.context import LiveRun, current_run
from actorsim._core.ref import ActorRef
from actorsim._core.supervision import Supervision, supervision_from
from actorsim.tools._execute import ToolOutcome, execute
from actorsim.tools._resolve import resolve_tools
from actorsim.tools._spec import Tool


@attrs.frozen
class CallTool:
    """Run tool `tool` with `arguments` (JSON text); `call_id` is the model's id for the call, `key` the call's
    key, for a tool that takes one (see `IDEMPOTENCY_KEY`)."""

    call_id: str
    tool: str
    arguments: str
    key: str = ""


@attrs.frozen
class ServiceRequest:
    """An agent's step waits for the driver to ask tool service `service` (one of `actors`) this call."""

    service: str
    actors: tuple[str, ...]
    call: CallTool
    idempotent: bool


class ToolServiceBehaviour:
    """The behaviour of one actor of a tool service: runs the calls it is sent."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    def receive(self, request: Any) -> ToolOutcome:
        if not isinstance(request, CallTool):
            raise TypeError(f"a tool service does not understand {type(request).__name__}")
        tool = self.tools.get(request.tool)
        if tool is None:
            return ToolOutcome(error=f"this service has no tool {request.tool!r}; it has {sorted(self.tools)}")
        return execute(tool, request.arguments, request.key)


@attrs.frozen
class RemoteService:
    """A service of actors: the step pauses and the driver asks one of them."""

    service: str
    actors: tuple[str, ...]

    def call(self, tool: Tool, call: ToolCall, key: str) -> Generator[ServiceRequest, ToolOutcome, ToolOutcome]:
        outcome = yield ServiceRequest(
            self.service, self.actors, CallTool(call.call_id, tool.name, call.arguments, key), tool.idempotent
        )
        return outcome


@attrs.frozen(eq=False)
class LocalService:
    """A plain (`remote=False`) service: called in the calling process."""

    service: str
    behaviour: ToolServiceBehaviour

    def call(self, tool: Tool, call: ToolCall, key: str) -> Generator[ServiceRequest, ToolOutcome, ToolOutcome]:
        return self.behaviour.receive(CallTool(call.call_id, tool.name, call.arguments, key))
        yield  # a generator like RemoteService.call, that never pauses


class ToolService:
    """Tools served by `pool` actors of their own (`remote=True`), or in-process (`remote=False`).

    Put the service in agents' `function_list`: they get its tools. Each actor
    is supervised with `supervision`, like any component.
    """

    def __init__(
        self,
        name: str,
        *,
        tools: Sequence[Any],
        pool: int = 1,
        supervision: Supervision | dict[str, Any] | None = None,
        remote: bool = False,
        runtime: LiveRun | None = None,
        placement: str | None = None,
    ) -> None:
        """`placement` (Ray only, `remote=True`) is where the service's actors run; see `actorsim.init`.

        `runtime` is the run to start them on (default: the current run, see `actorsim.current_runtime`).
        """
        if placement is not None and not remote:
            raise ValueError("placement= is for tool services made with remote=True on the 'ray' transport")
        if not isinstance(pool, int) or isinstance(pool, bool) or pool < 1:
            raise ValueError(f"pool must be an int >= 1, not {pool!r}")
        self.name = name
        self.tools = resolve_tools(tools)
        served = [tool.name for tool in self.tools if tool.service is not None]
        if served:
            raise ValueError(f"tool service {name!r}: {served} are served by another service already")
        self.runtime: LiveRun | None = None
        self._actors: list[ActorRef] = []
        if remote:
            self.runtime = runtime or current_run()
            self.runtime.check_placement(placement)
            policy = supervision_from(supervision)
            names = tuple(name if pool == 1 else f"{name}/{index}" for index in range(pool))
            self._actors = [
                self.runtime.spawn(
                    functools.partial(ToolServiceBehaviour, self.tools), name=actor, supervision=policy,
                    placement=placement,
                )
                for actor in names
            ]
            self.link: RemoteService | LocalService = RemoteService(name, names)
        else:
            self.link = LocalService(name, ToolServiceBehaviour(self.tools))

    def served_tools(self) -> tuple[Tool, ...]:
        """The tools as an agent holds them: specs that say where to call."""
        return tuple(attrs.evolve(tool, function=None, service=self.link) for tool in self.tools)

    def stop(self) -> None:
        """Stop the actors that serve the tools."""
        if self.runtime is not None:
            for actor in self._actors:
                self.runtime.stop(actor)

    def __repr__(self) -> str:
        where = "in-process" if self.runtime is None else self.runtime.transport_name
        return f"<ToolService {self.name!r} {[tool.name for tool in self.tools]} on {where}>"
