"""Handles on agents running as actors: what `create_component(..., remote=True)` returns for an agent."""

from __future__ import annotations

import weakref

from actorsim._core.ref import ActorRef
from actorsim._core.roles import ALL
from actorsim._protocol.agent import Describe, GetMemory
from actorsim._protocol.registry import AgentInfo
from actorsim._runtime.runtime import Runtime
from actorsim.llm import ChatMessage
from actorsim.routing import SendTo


class AgentHandle:
    """An agent running as an actor; its methods block for the actor's answer."""

    def __init__(self, runtime: Runtime, ref: ActorRef, info: AgentInfo | None, send_to: SendTo = ALL) -> None:
        """`info` None: the agent describes itself when first asked, with every other agent not described yet."""
        self.runtime = runtime
        self.ref = ref
        self._info = info
        self._start_error: BaseException | None = None
        self.send_to = send_to  # where its replies go when a step does not say: kept in the driver, which routes
        if info is None:
            _undescribed.setdefault(runtime, []).append(self)

    @property
    def info(self) -> AgentInfo:
        """What the agent says of itself; raises what its constructor raised, for an agent that failed to start."""
        if self._info is None and self._start_error is None:
            _describe(self.runtime)
        if self._info is None:
            assert self._start_error is not None
            raise self._start_error
        return self._info

    @property
    def name(self) -> str:
        """The agent's actor name, unique in its run."""
        return self.info.name

    @property
    def role(self) -> str:
        """The role the agent plays in its task center."""
        return self.info.role

    def get_history(self) -> list[ChatMessage]:
        """The agent's memory: every prompt turn and reply it has had."""
        history: list[ChatMessage] = self.runtime.ask(self.ref, GetMemory())
        return history

    def stop(self) -> None:
        """Stop the agent's actor; later requests to it raise `ActorStoppedError`."""
        self.runtime.stop(self.ref)

    def __repr__(self) -> str:
        return f"<AgentHandle {self.ref.name!r} on {self.runtime.transport_name}>"


_undescribed: weakref.WeakKeyDictionary[Runtime, list[AgentHandle]] = weakref.WeakKeyDictionary()
"""Per run, hosted agents started and not asked to describe themselves yet: asked together, one request per host."""


def _describe(runtime: Runtime) -> None:
    handles = _undescribed.pop(runtime, [])
    for handle, answer in zip(handles, runtime.ask_many([(handle.ref, Describe()) for handle in handles]), strict=True):
        if isinstance(answer, BaseException):
            handle._start_error = answer
        else:
            handle._info = answer
