"""Read-only views of a task center's Environment and Registry, for users and tests."""

from __future__ import annotations

from actorsim._core.envelope import Message
from actorsim._core.ref import ActorRef
from actorsim._protocol.environment import (
    DeadLetter,
    GetDeadLetters,
    GetHistory,
    GetPending,
    GetUserRequirements,
    PendingRoles,
)
from actorsim._protocol.registry import AgentInfo, FindAgent, ListAgents
from actorsim._runtime.runtime import Runtime


class EnvironmentView:
    """Reads the Environment's state. Every call asks the Environment actor and may raise
    `AskTimeoutError`; an unknown role raises `ValueError` naming the known ones."""

    def __init__(self, runtime: Runtime, ref: ActorRef) -> None:
        self._runtime = runtime
        self._ref = ref

    def history(self, role: str | None = None) -> list[Message]:
        """Every message in publication order, or only those `role` sent or received."""
        return list(self._runtime.ask(self._ref, GetHistory(role)))

    def pending_roles(self) -> list[str]:
        """The roles with messages waiting in their queue, in registration order."""
        return list(self._runtime.ask(self._ref, PendingRoles()))

    def pending(self, role: str) -> list[Message]:
        """The messages waiting in `role`'s queue, oldest first."""
        return list(self._runtime.ask(self._ref, GetPending(role)))

    def user_requirements(self) -> list[Message]:
        """The tasks sent from outside (`send_task_request` from the user), in order."""
        return list(self._runtime.ask(self._ref, GetUserRequirements()))

    def dead_letters(self) -> list[DeadLetter]:
        """Messages whose recipient failed for good, each with the error that ended it."""
        return list(self._runtime.ask(self._ref, GetDeadLetters()))


class RegistryView:
    """Reads the agent registry: who is in the system, with what role, kind and status."""

    def __init__(self, runtime: Runtime, ref: ActorRef) -> None:
        self._runtime = runtime
        self._ref = ref

    def agents(self) -> list[AgentInfo]:
        """Every registered agent, in registration order."""
        return list(self._runtime.ask(self._ref, ListAgents()))

    def find(self, role: str) -> AgentInfo:
        """The agent playing `role`; raises `ValueError` naming the known roles when none does."""
        info: AgentInfo = self._runtime.ask(self._ref, FindAgent(role))
        return info
