"""The agent registry: who is in the system, their role, kind and status (requests: `_protocol.registry`)."""

from __future__ import annotations

import functools
from typing import Any

import attrs

from actorsim._core.roles import check_known
from actorsim._protocol.registry import AgentInfo, FindAgent, ListAgents, Register, SetStatus


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
