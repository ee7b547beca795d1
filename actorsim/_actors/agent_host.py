"""Runs a user's agent as an actor: a step in, chunks and one reply out."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from actorsim._actors.registry import AgentInfo
from actorsim._envelope import Message
from actorsim._runlog import log_event
from actorsim.agents import Agent
from actorsim.llm import ChatMessage, RetryNotice
from actorsim.memory import MemoryState


@attrs.frozen
class RunStep:
    """Answer `received` with a reply whose id is `reply_id`; it goes to `send_to`, in trace `trace_id`.

    The driver names the reply, so that a step delivered again to a restarted
    agent makes the same message, and publishing it twice is recognised.
    """

    received: tuple[Message, ...]
    reply_id: str
    send_to: tuple[str, ...]
    trace_id: str | None
    step: int
    round: int
    clock: int
    task: str | None = None
    user_response: str | None = None


@attrs.frozen
class Chunk:
    role: str
    text: str
    message_id: str


@attrs.frozen
class Retrying:
    """The agent's model server is being tried again: streamed to the driver, which tells the user."""

    role: str
    notice: RetryNotice

    def __str__(self) -> str:
        return f"{self.role}: {self.notice}"


@attrs.frozen
class Reply:
    """The finished reply, and what the step added to the agent's memory; a watcher's is never published."""

    message: Message
    publish: bool
    remembered: MemoryState = MemoryState()


@attrs.frozen
class Describe:
    pass


@attrs.frozen
class GetMemory:
    pass


@attrs.frozen
class GetMemoryState:
    pass


@attrs.frozen
class RestoreMemory:
    """Sent by the supervisor to a restarted agent: its memory as of its last finished step."""

    state: MemoryState


class AgentHost:
    """Hosts one `Agent`; built in the actor's own process by `build`."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._clock = 0

    @classmethod
    def build(cls, agent_class: type[Agent], options: Mapping[str, Any]) -> AgentHost:
        return cls(agent_class(**options))

    @functools.singledispatchmethod
    def receive(self, request: Any) -> Any:
        raise TypeError(f"an agent does not understand {type(request).__name__}")

    @receive.register
    def _run_step(self, request: RunStep) -> Iterator[Chunk | Retrying | Reply]:
        agent = self.agent
        received = request.received
        message_id = request.reply_id
        turns_before = agent.memory.turn_count
        fresh = tuple(m.message_id for m in received if not agent.memory.has_handled(m.message_id))
        self._clock = max(self._clock, request.clock, *(m.clock for m in received)) + 1
        log_event("message.delivered", role=agent.role, message_ids=[m.message_id for m in received],
                  reply_id=message_id, step=request.step)
        texts = agent.step(received, task=request.task, user_response=request.user_response, reply_id=message_id)
        while True:
            try:
                text = next(texts)
            except StopIteration as done:
                reply: str = done.value
                break
            if isinstance(text, RetryNotice):
                yield Retrying(agent.role, text)
            else:
                yield Chunk(agent.role, text, message_id)
        message = Message(
            content=reply,
            sent_from=agent.role,
            send_to=() if agent.is_watcher else request.send_to,
            message_id=message_id,
            trace_id=received[0].trace_id if received else request.trace_id or message_id,
            parent_ids=[m.message_id for m in received],
            step=request.step,
            round=request.round,
            clock=self._clock,
        )
        remembered = MemoryState(agent.memory.turns_since(turns_before), fresh)
        yield Reply(message, publish=not agent.is_watcher, remembered=remembered)

    @receive.register
    def _describe(self, request: Describe) -> AgentInfo:
        agent = self.agent
        return AgentInfo(
            name=agent.name,
            role=agent.role,
            agent_class=f"{type(agent).__module__}.{type(agent).__qualname__}",
            human_input_mode=agent.human_input_mode,
            is_watcher=agent.is_watcher,
        )

    @receive.register
    def _get_memory(self, request: GetMemory) -> list[ChatMessage]:
        return self.agent.get_history()

    @receive.register
    def _get_memory_state(self, request: GetMemoryState) -> MemoryState:
        return self.agent.memory.state()

    @receive.register
    def _restore_memory(self, request: RestoreMemory) -> None:
        self.agent.memory.restore(request.state)
        log_event("agent.restored", role=self.agent.role, turns=len(request.state.turns))
