"""The agent registry: who is in the system, their role, kind and status."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import attrs

from actorsim._roles import check_known
from actorsim._supervision import Durable


def _to_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class AgentInfo:
    """What the Registry knows of an agent: its names, its class, whether a person speaks for it, its status,
    and the group and topics that routing policies address it by (see `actorsim.routing`)."""

    name: str
    role: str
    agent_class: str
    human_input_mode: str = "CLOSE"
    is_watcher: bool = False
    status: str = "ready"
    """"ready", or "failed" once its supervisor gave up on it."""
    description: str = ""
    tools: tuple[str, ...] = ()
    group: str | None = None
    topics: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)

    @property
    def is_human(self) -> bool:
        """Whether a person speaks for this agent."""
        return self.human_input_mode != "CLOSE"


@attrs.frozen
class Register(Durable):
    """Agents joining, in their order: one request for a batch, which a swarm's `add_agents` is."""

    infos: tuple[AgentInfo, ...]


@attrs.frozen
class ListAgents:
    pass


@attrs.frozen
class FindAgent:
    role: str


@attrs.frozen
class SetStatus(Durable):
    role: str
    status: str


class Registry:
    """One registry per task center; a role is registered once."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentInfo] = {}

    @functools.singledispatchmethod
    def receive(self, request: Any) -> Any:
        raise TypeError(f"the registry does not understand {type(request).__name__}")

    @receive.register
    def _register(self, request: Register) -> None:
        names, roles = {info.name for info in self._agents.values()}, set(self._agents)
        for info in request.infos:  # all checked before any is kept
            if info.role in roles or info.name in names:
                raise ValueError(f"an agent named {info.name!r} with role {info.role!r} is already registered")
            names.add(info.name)
            roles.add(info.role)
        self._agents.update((info.role, info) for info in request.infos)

    @receive.register
    def _list(self, request: ListAgents) -> tuple[AgentInfo, ...]:
        return tuple(self._agents.values())

    @receive.register
    def _find(self, request: FindAgent) -> AgentInfo:
        check_known([request.role], known=self._agents.keys(), argument="role")
        return self._agents[request.role]

    @receive.register
    def _set_status(self, request: SetStatus) -> None:
        check_known([request.role], known=self._agents.keys(), argument="role")
        self._agents[request.role] = attrs.evolve(self._agents[request.role], status=request.status)
