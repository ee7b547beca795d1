"""The behaviour of one agent: a step in, chunks and one reply out (see `actorsim._protocol.agent`).

It runs in an actor of its own, or beside many others in a host actor
(`actorsim.transport._host`): either way one `AgentBehaviour` per agent.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import attrs

from actorsim._core.budget import Allowance, CallUsed, SpendCheck, Spent
from actorsim._core.envelope import Frame, Message
from actorsim._protocol.agent import (
    Chunk,
    Describe,
    GetMemory,
    GetMemoryState,
    Paused,
    RememberSent,
    Reply,
    RestoreMemory,
    ResumeStep,
    Retrying,
    RunStep,
    Withdrawn,
)
from actorsim._protocol.registry import AgentInfo
from actorsim._runlog import log_event, tap, traced
from actorsim._telemetry.spans import message_span, span_id, traceparent
from actorsim.agents import Agent, Post
from actorsim.llm import ChatMessage, CutShort, PermitRequest, RetryNotice
from actorsim.memory import MemoryState
from actorsim.tools import ServiceRequest

StepOut = Chunk | Frame | Retrying | CallUsed | Reply | Paused | Withdrawn
"""What a step's stream carries back to the driver."""


class AgentBehaviour:
    """Runs one `Agent` in an actor; built in the actor's own process by `build`."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._clock = 0
        self._paused: dict[str, _Going] = {}  # by reply id: steps waiting for a tool service, a permit, the budget

    @classmethod
    def build(cls, agent_class: type[Agent], options: Mapping[str, Any]) -> AgentBehaviour:
        return cls(agent_class(**options))

    @functools.singledispatchmethod
    def receive(self, request: Any) -> Any:
        raise TypeError(f"an agent does not understand {type(request).__name__}")

    @receive.register
    def _run_step(self, request: RunStep) -> Iterator[StepOut]:
        agent = self.agent
        received = request.received
        turns_before = agent.memory.turn_count
        fresh = tuple(m.message_id for m in received if not agent.memory.has_handled(m.message_id))
        self._clock = max(self._clock, request.clock, *(m.clock for m in received)) + 1
        log_event("message.delivered", role=agent.role, message_ids=[m.message_id for m in received],
                  reply_id=request.reply_id, step=request.step)
        # A subclass's `step` written before settings existed still works: they are passed only when given.
        settings = {"settings": request.settings} if request.settings is not None else {}
        texts = agent.step(received, task=request.task, user_response=request.user_response,
                           reply_id=request.reply_id, **settings)
        return self._drive(_Going(request, texts, turns_before, fresh, request.allowance), None)

    @receive.register
    def _resume(self, request: ResumeStep) -> Iterator[StepOut]:
        going = self._paused.pop(request.reply_id, None)
        if going is None:
            raise LookupError(f"agent {self.agent.role!r} has no step {request.reply_id} waiting for its driver")
        if isinstance(request.outcome, Spent):  # the budget stops its next model call: the step ends unanswered
            going.texts.close()
            log_event("step.withdrawn", role=self.agent.role, reply_id=request.reply_id, spent=request.outcome.what)
            return iter([Withdrawn(request.reply_id)])
        if isinstance(request.outcome, Allowance):  # the budget lets the call go, and lends the step more
            going.allowance, going.used_tokens, going.used_cost = request.outcome, 0, 0.0
            return self._drive(going, None)
        return self._drive(going, request.outcome)

    def _drive(self, going: _Going, answer: Any) -> Iterator[StepOut]:
        """Run the step on: chunks and tool frames out, until its reply, or a pause for the driver to answer."""
        agent = self.agent
        request = going.request
        message_id = request.reply_id
        while True:
            try:
                item = going.texts.send(answer)
            except StopIteration as done:
                reply: str | list[Post] = done.value
                break
            answer = None
            if isinstance(item, SpendCheck) and (
                going.allowance is None or going.allowance.covers(going.used_tokens, going.used_cost)
            ):
                continue  # no budget, or the step's allowance has room: the call goes
            if isinstance(item, ServiceRequest | PermitRequest | SpendCheck):
                self._paused[message_id] = going
                yield Paused(message_id, item)
                return
            if isinstance(item, CallUsed):
                going.used_tokens += item.tokens
                going.used_cost += item.cost
                yield item
                continue
            if isinstance(item, RetryNotice):
                yield Retrying(agent.role, item)
            elif isinstance(item, CutShort):
                yield Chunk(agent.role, "", message_id, finish_reason="length")
            else:
                yield item if isinstance(item, Frame) else Chunk(agent.role, item, message_id)
        received = request.received
        posts = None
        if not isinstance(reply, str):
            posts = tuple(reply)
            if not all(isinstance(post, Post) for post in posts):
                raise TypeError(f"agent {agent.role!r}: step must return its reply text or a list of Posts, "
                                f"not {reply!r}")
            known = {m.message_id for m in received}
            for post in posts:
                if post.parent_ids is not None and not known.issuperset(post.parent_ids):
                    raise ValueError(
                        f"agent {agent.role!r}: a post's parent_ids {sorted(set(post.parent_ids) - known)} "
                        "are not messages of its step"
                    )
        message = Message(
            content=reply if isinstance(reply, str) else "",
            sent_from=agent.role,
            send_to=() if agent.is_watcher else request.send_to,
            message_id=message_id,
            trace_id=received[0].trace_id if received else request.trace_id or message_id,
            parent_ids=[m.message_id for m in received],
            step=request.step,
            round=request.round,
            clock=self._clock,
        )
        if traced():  # live export: the reply carries its step's trace context; the step's span ends here
            message = attrs.evolve(message, traceparent=traceparent(message.trace_id, span_id("reply", message_id)))
            tap("message.replied", message=message.to_dict(), causes=[message_span(m) for m in received])
        remembered = MemoryState(agent.memory.turns_since(going.turns_before), going.fresh)
        yield Reply(message, publish=not agent.is_watcher, remembered=remembered, posts=posts)

    @receive.register
    def _remember_sent(self, request: RememberSent) -> MemoryState:
        turns_before = self.agent.memory.turn_count
        self.agent.remember_sent(request.message)
        return MemoryState(self.agent.memory.turns_since(turns_before), (request.message.message_id,))

    @receive.register
    def _describe(self, request: Describe) -> AgentInfo:
        agent = self.agent
        return AgentInfo(
            name=agent.name,
            role=agent.role,
            agent_class=f"{type(agent).__module__}.{type(agent).__qualname__}",
            human_input_mode=agent.human_input_mode,
            is_watcher=agent.is_watcher,
            description=agent.description,
            tools=tuple(tool.name for tool in agent.tools),
            group=agent.group,
            topics=agent.topics,
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


@attrs.define
class _Going:
    """A step on its way, kept while it waits for a tool service, a permit or the budget."""

    request: RunStep
    texts: Generator[Any, Any, str | list[Post]]
    turns_before: int
    fresh: tuple[str, ...]
    allowance: Allowance | None = None  # see `RunStep.allowance`: what its calls may use before one asks
    used_tokens: int = 0  # of it, so far
    used_cost: float = 0.0
