"""What the Registry is asked, and what it answers: `AgentInfo`, an agent as the Registry lists it."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from actorsim._core.supervision import Durable


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
