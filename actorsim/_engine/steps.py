"""The step engine: who responds, what they pull, their replies streamed at once and published in order.

`TaskCenter` checks the caller's arguments and hands a step to `Steps`,
which owns everything a step needs beyond them: the agents and their roles,
the driver's copy of each agent's memory (given back to it after a restart),
the trace, step counter and Lamport clock of the driver. Restarts happen in
the runtime's supervised stream; here a restart is only a `Redelivered`
item (shown text is kept, so frames are not shown twice) or, past the
budget, a `CallFailed` whose messages go to the dead letters.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import attrs

from actorsim._core.budget import CallUsed, SpendCheck
from actorsim._core.envelope import USER_REQUIREMENT, Frame, Message
from actorsim._core.ids import post_id
from actorsim._core.ref import ActorRef
from actorsim._core.state import RunState
from actorsim._engine.permits import StepPermits
from actorsim._engine.router import Router, is_routed
from actorsim._engine.tool_calls import answer
from actorsim._engine.views import RegistryView
from actorsim._errors import AgentFailedError, BudgetExceeded, PoisonMessageError, RoutingError
from actorsim._protocol.agent import (
    Chunk,
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
from actorsim._protocol.environment import (
    AddRoles,
    BuryDeadLetters,
    DeadLetter,
    GetHistory,
    GetPending,
    Publish,
    PublishAll,
    PublishBatch,
    QueueLengths,
    Release,
    TakePending,
)
from actorsim._protocol.registry import AgentInfo, Register, SetStatus
from actorsim._runtime.runtime import Runtime
from actorsim._runtime.stream import Redelivered
from actorsim._telemetry.spans import span_id, traceparent
from actorsim.llm import ChatMessage, GenerationSettings, PermitRequest, Throttled
from actorsim.memory import MemoryState
from actorsim.routing import SendTo
from actorsim.transport import CallFailed

notices = logging.getLogger("actorsim")
"""Where news for people waiting on a step goes (a model server being retried); see `actorsim.ui.show_notices`."""

Memory = tuple[list[ChatMessage], list[str]]
"""The driver's copy of an agent's memory: its turns and the ids of the messages it handled."""


class Steps:
    """Runs a task center's steps over its Environment, Registry and agents."""

    def __init__(self, runtime: Runtime, group: str, environment: ActorRef, registry: ActorRef) -> None:
        self.runtime = runtime
        self._group = group
        self._environment = environment
        self._registry = registry
        self.agents: dict[str, tuple[ActorRef, AgentInfo]] = {}
        self._role_of: dict[str, str] = {}  # actor name -> role
        # Each agent's memory as of its last finished step: given back to it after a restart, and after a
        # step of its that was dropped (see `_set_back`).
        self._memories: dict[str, Memory] = {}
        self._trace_id: str | None = None
        self._step = 0
        self._clock = 0  # Lamport clock of the driver: after every reply it has seen
        # Replies decided and not yet sent to the Environment: sent together when the step's stream
        # would wait, and before any other request to the Environment.
        self._outbox: list[Publish | PublishAll] = []
        self.router = Router(
            runtime, group, RegistryView(runtime, registry),
            members=lambda: [info for _, info in self.agents.values() if not info.is_watcher],
            is_live=lambda role: self.agents[role][1].status != "failed" and self.failure(role) is None,
            queue_lengths=lambda roles: self._ask_env(QueueLengths(roles)),
        )

    # -- members

    def add(self, members: Sequence[tuple[ActorRef, AgentInfo]], send_to: Sequence[SendTo] = ()) -> None:
        """Register started agents; their roles join the Environment in this order. `send_to`: each one's own
        default for its replies."""
        self._ask_env(AddRoles(
            tuple(info.role for _, info in members if not info.is_watcher),
            tuple(info.role for _, info in members if info.is_watcher),
        ))
        self.runtime.ask(self._registry, Register(tuple(info for _, info in members)))
        states = self.runtime.ask_many([(ref, GetMemoryState()) for ref, _ in members])
        for (ref, info), state in zip(members, states, strict=True):
            if isinstance(state, BaseException):
                raise state
            self.agents[info.role] = (ref, info)
            self._role_of[ref.name] = info.role
            self._keep_memory(ref, state)
        for (_, info), target in zip(members, send_to, strict=False):
            self.router.set_default(info.role, target)
        self.router.members_changed()
        self.runtime.join_group(self._group, [ref.name for ref, _ in members])

    def _keep_memory(self, ref: ActorRef, state: MemoryState) -> None:
        """Start the driver's copy of the agent's memory (it may come with one, from its storage)."""
        memory = self._memories[self._role_of[ref.name]] = (list(state.turns), list(state.handled))
        # The snapshot holds the copy, not this object: a plain task center is still freed when dropped.
        self.runtime.keep_snapshot(ref.name, "memory", lambda: _restore_request(memory))

    def queue_roles(self) -> list[str]:
        """The roles that have a queue: every role but the watchers."""
        return [role for role, (_, info) in self.agents.items() if not info.is_watcher]

    def failure(self, role: str) -> AgentFailedError | None:
        """Why `role`'s supervisor gave up on it, once it did."""
        error = self.runtime.failure(self.agents[role][0].name)
        return error if isinstance(error, AgentFailedError) else None

    # -- publishing

    def send(self, task: str, send_to: SendTo, send_from: str) -> Message:
        """Publish a task; a user requirement opens a new trace. A routed `send_to` is decided before it is stored."""
        self.router.check(send_to)
        recipients = self.router.fixed(send_to, send_from)
        self._clock += 1
        message_id = self.runtime.new_id()
        if send_from == USER_REQUIREMENT or self._trace_id is None:
            self._trace_id = message_id
        config = self.runtime.log_config
        message = Message(
            task, send_from, recipients, message_id=message_id, trace_id=self._trace_id, step=self._step,
            clock=self._clock,
            # Live export: the task's root span is its cause, for the spans of the steps it starts.
            traceparent=traceparent(self._trace_id, span_id("task", self._trace_id))
            if config is not None and config.otel is not None else None,
        )
        if is_routed(send_to):
            message = attrs.evolve(message, send_to=self.router.route(send_to, message))
        self._publish(message)
        self._flush()
        if send_from != USER_REQUIREMENT:  # the seed's single agent remembers starting a task
            self._remember(send_from, self.runtime.ask(self.agents[send_from][0], RememberSent(message)))
        return message

    def _publish(self, message: Message, answers: tuple[str, ...] = ()) -> None:
        self._to_environment(Publish(message, answers=answers))

    def _to_environment(self, request: Publish | PublishAll) -> None:
        """Store a reply with the next batch; at once where an intervention watches each message stored."""
        self._outbox.append(request)
        if self.runtime.interventions.watch_publishing:
            self._flush()

    def _flush(self) -> None:
        """Send the gathered replies in one request, then tell the interventions of each message stored."""
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        self.runtime.ask(self._environment, batch[0] if len(batch) == 1 else PublishBatch(tuple(batch)))
        for request in batch:
            for message in request.messages:
                self.runtime.interventions.published(message, self.state)

    def state(self) -> RunState:
        """Every role's queue and memory and the history, as they are now."""
        return RunState(
            pending={role: self._pending(role) for role in self.agents},
            memories={role: self.runtime.ask(ref, GetMemory()) for role, (ref, _) in self.agents.items()},
            history=self._ask_env(GetHistory()),
        )

    def _pending(self, role: str) -> tuple[Message, ...]:
        return () if self.agents[role][1].is_watcher else tuple(self._ask_env(GetPending(role)))

    # -- steps

    def run(
        self,
        task: str | None,
        rounds: int,
        send_to: SendTo | None,
        allowed: tuple[str, ...] | None,
        user_response: str | None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[Frame]:
        """`rounds` steps, one after another; arguments were checked by the caller.

        `settings` are generation settings for every responder's model in these steps.
        """
        for round_index in range(1, rounds + 1):
            yield from self._one_step(task, send_to, allowed, user_response, round_index, settings)

    def _take_messages(
        self, allowed: tuple[str, ...] | None, user_response: str | None
    ) -> dict[str, tuple[Message, ...]]:
        """This step's responders, in registration order, with the messages they pull."""
        if allowed is None:
            # A human with nothing to say yet keeps its messages until it speaks.
            silent = () if user_response is not None else tuple(
                role for role, (_, info) in self.agents.items() if info.human_input_mode == "ON"
            )
            taken: dict[str, tuple[Message, ...]] = self._ask_env(TakePending(passed_over=silent))
            return {role: taken[role] for role in self.agents if role in taken}
        readers = tuple(role for role in allowed if not self.agents[role][1].is_watcher)
        taken = self._ask_env(TakePending(readers)) if readers else {}
        history = self._ask_env(GetHistory()) if len(readers) < len(allowed) else ()
        return {role: taken.get(role, history) for role in allowed}

    def _one_step(
        self,
        task: str | None,
        send_to: SendTo | None,
        allowed: tuple[str, ...] | None,
        user_response: str | None,
        round_index: int,
        settings: GenerationSettings | None,
    ) -> Iterator[Frame]:
        received = self._take_messages(allowed, user_response)
        if not received:
            return
        self._step += 1
        responders = list(received)
        state = _StepState(received)
        for role in list(received):
            if (failure := self.failure(role)) is not None:
                state.failed.append(failure)
                self._give_up_on(role, received.pop(role), failure)
        # The driver names each reply before the step starts (a replay makes the same ids in the same order).
        reply_ids = {role: self.runtime.new_id() for role in received}
        self.runtime.log(
            "step.started", flush=False, step=self._step, round=round_index, responders=responders, reply_ids=reply_ids,
        )
        state.targets = {role: self.router.target(role, send_to) for role in received}
        state.requests = {
            role: self._request(
                role, messages, reply_ids[role], task, state.targets[role], user_response, round_index, settings
            )
            for role, messages in received.items()
        }
        state.order = list(state.requests)
        state.owed = {role for role in state.requests if not self.agents[role][1].is_watcher}
        try:
            yield from self._stream(state)
        except BaseException as error:
            if isinstance(error, GeneratorExit):
                # Left part-way (the caller stopped iterating): replies already made are published
                # out of turn rather than lost; what no one answered waits in its queue again.
                for role in state.order[state.published:]:
                    self._publish_reply(role, state)
            self._set_back([role for role in state.requests if role not in state.replies], state.answered)
            # Ctrl-C, or a replay stopping where it was asked to, ends the step by choice: not an error.
            deliberate = isinstance(error, KeyboardInterrupt) or getattr(error, "deliberate", False)
            self.runtime.log(
                "step.failed", step=self._step, error=repr(error), unanswered=sorted(state.owed), deliberate=deliberate
            )
            raise
        finally:
            self._flush()
            if state.owed:
                self._ask_env(Release(tuple(state.owed)))
        self.runtime.restart_deferred()
        self.runtime.log("step.finished", step=self._step)
        if state.failed:
            raise state.failed[0]
        if state.over_budget is not None:
            raise state.over_budget

    def _stream(self, state: _StepState) -> Iterator[Frame]:
        """The responders' frames as they come, each shown once however often its step is delivered."""
        text = dict.fromkeys(state.requests, "")
        def not_delivered(name: str) -> None:  # for the budget: its messages wait in its queue again
            state.replies[self._role_of[name]] = None
            self._publish_in_order(state)

        permits = StepPermits(
            self.runtime, calls_model=lambda name: not self.agents[self._role_of[name]][1].is_human,
            on_blocked=not_delivered,
        )
        calls = permits.first_deliveries([(self.agents[role][0], request) for role, request in state.requests.items()])
        resumed: collections.deque[tuple[str, ResumeStep]] = collections.deque()

        def on_idle() -> None:
            self._flush()
            permits.let_go(resumed)

        items = self.runtime.stream(
            calls, final=lambda item: isinstance(item, Reply | Withdrawn),
            context=lambda request: {"reply_id": request.reply_id},
            follow_ups=resumed, on_idle=on_idle, arrivals=permits.arrivals, held_back=permits.held_back,
        )
        try:
            yield from self._frames(state, items, text, permits, resumed)
        finally:
            permits.end()
        if permits.blocked:
            stopped = {self._role_of[name] for name in permits.blocked}
            state.over_budget = BudgetExceeded(
                next(iter(permits.blocked.values())), tuple(role for role in state.order if role in stopped)
            )

    def _frames(
        self,
        state: _StepState,
        items: Iterator[tuple[str, Any]],
        text: dict[str, str],
        permits: StepPermits,
        resumed: collections.deque[tuple[str, ResumeStep]],
    ) -> Iterator[Frame]:
        for name, item in items:
            role = self._role_of[name]
            if isinstance(item, Paused):
                if isinstance(item.request, PermitRequest):  # a throttled call waits for its server's limiter
                    permits.wait(name, item.reply_id, item.request, resumed)
                    continue
                if isinstance(item.request, SpendCheck):  # a later model call asks the budget
                    permits.spend_check(name, item.reply_id, item.request, resumed)
                    continue
                # The step waits for a tool service: asked here, in the driver, where its supervisor is.
                resumed.append((name, ResumeStep(item.reply_id, answer(self.runtime, item.request))))
            elif isinstance(item, Frame):  # a tool call or its result: shown as it comes
                permits.admitted(name)
                yield item
            elif isinstance(item, Retrying):
                if isinstance(item.notice, Throttled):
                    permits.throttled(name, role, item.notice)
                else:
                    notices.warning("%s", item)
            elif isinstance(item, Chunk):
                permits.admitted(name)
                if item.finish_reason is not None:  # the reply was cut short: said, and marked on a closing frame
                    notices.warning("%s: the reply was cut at its model's token limit (finish_reason %r)",
                                    item.role, item.finish_reason)
                    yield Frame(item.role, "", item.message_id, finish_reason=item.finish_reason)
                    continue
                # A step delivered again streams its reply again: show only what was not shown yet.
                so_far = text[role] = text[role] + item.text
                shown = state.shown.get(role, "")
                if len(so_far) > len(shown):
                    state.shown[role] = so_far
                    yield Frame(item.role, so_far[max(len(shown), len(so_far) - len(item.text)):], item.message_id)
            elif isinstance(item, CallUsed):
                permits.used(name, item)
            elif isinstance(item, Withdrawn):  # the budget stopped its next call: its messages wait again
                permits.replied(name)
                permits.let_go(resumed)
                state.answered.add(role)
                state.replies[role] = None
                self._set_back([role], state.answered)
                self._publish_in_order(state)
            elif isinstance(item, Reply):
                permits.replied(name)
                permits.let_go(resumed)  # its permit goes to a step held back, at once, not at the next lull
                state.answered.add(role)
                self._clock = max(self._clock, item.message.clock)
                self._remember(role, item.remembered)
                state.replies[role] = item
                self._publish_in_order(state)
            elif isinstance(item, Redelivered):
                permits.redelivered(name)
                text[role] = ""
                self.runtime.log(
                    "message.redelivered", role=role, reply_id=state.requests[role].reply_id,
                    message_ids=[m.message_id for m in state.received[role]], cause=repr(item.cause),
                )
            elif isinstance(item, CallFailed):
                permits.release(name, succeeded=False)
                failure = item.error
                if not isinstance(failure, AgentFailedError):
                    raise failure
                state.failed.append(failure)
                self._give_up_on(role, state.received[role], failure)
                state.owed.discard(role)
                state.replies[role] = None
                self._publish_in_order(state)

    def _remember(self, role: str, added: MemoryState) -> None:
        turns, handled = self._memories[role]
        turns.extend(added.turns)
        handled.extend(added.handled)

    def _publish_in_order(self, state: _StepState) -> None:
        """Publish in responder order, whatever order replies finish in: a run's history is reproducible."""
        while state.published < len(state.order) and state.order[state.published] in state.replies:
            self._publish_reply(state.order[state.published], state)
            state.published += 1

    def _publish_reply(self, role: str, state: _StepState) -> None:
        """Publish `role`'s reply, if it made one to publish, as the answer to what it received."""
        if (reply := state.replies.get(role)) is not None and reply.publish:
            answers = tuple(m.message_id for m in state.received[role])
            if reply.posts is not None:
                self._publish_posts(role, reply, state, answers)
                return
            message = reply.message
            if is_routed(target := state.targets[role]):
                try:
                    message = attrs.evolve(message, send_to=self.router.route(target, message))
                except RoutingError:
                    self._forget_unpublished(state)
                    raise
            self._publish(message, answers=answers)
            state.owed.discard(role)

    def _publish_posts(self, role: str, reply: Reply, state: _StepState, answers: tuple[str, ...]) -> None:
        """A reply of several posts: each routed by its own `send_to` (else the reply's), all stored in one request.

        The first post has the reply's id, the n-th (from 0) the reply's id and
        `.n`: a step delivered again makes the same ids, and a post already
        stored is not stored twice.
        """
        assert reply.posts is not None
        pattern = reply.message
        messages = []
        for index, post in enumerate(reply.posts):
            message_id = post_id(pattern.message_id, index)
            parents = pattern.parent_ids if post.parent_ids is None else post.parent_ids
            message = attrs.evolve(pattern, content=post.content, message_id=message_id, parent_ids=parents)
            target = post.send_to if post.send_to is not None else state.targets[role]
            try:
                self.router.check(target, argument=f"{role}'s post {index}: send_to")
                messages.append(attrs.evolve(message, send_to=self.router.route(target, message)))
            except ValueError:  # RoutingError included: an unknown role, group or topic, a policy that failed
                self._forget_unpublished(state)
                raise
        self._to_environment(PublishAll(role, tuple(messages), answers=answers))
        state.owed.discard(role)

    def _forget_unpublished(self, state: _StepState) -> None:
        """Replies that will not be published are forgotten: their agents' memories go back to before the step
        (see `_set_back`), their messages wait in their queues again."""
        for role in state.order[state.published:]:
            if (reply := state.replies.pop(role, None)) is not None:
                turns, handled = self._memories[role]
                del turns[len(turns) - len(reply.remembered.turns):]
                del handled[len(handled) - len(reply.remembered.handled):]

    def _set_back(self, roles: Iterable[str], idle: Collection[str]) -> None:
        """The agents' step is dropped: their memories are set back to the driver's copy, which holds no trace
        of it. The request is owed to each agent (`Runtime.owe`), which may still be running the step: it
        reaches the agent before anything else is asked of it, so every view, which asks the agent, reads
        the memory set back. A plain agent (`remote=False`) is read as an object, not asked: one done with
        the step (`idle`) is set back at once."""
        plain = self.runtime.transport_name == "inline"
        for role in roles:
            name = self.agents[role][0].name
            self.runtime.owe(name, _restore_request(self._memories[role]))
            if plain and role in idle:
                with contextlib.suppress(Exception):  # an agent that failed meanwhile: the error is its step's
                    self.runtime.settle(name)

    def _give_up_on(self, role: str, messages: Sequence[Message], error: AgentFailedError) -> None:
        """The agent is past its budget: its messages go to the dead letters, the Registry marks it failed.

        A poisoned step (`PoisonMessageError`) buries its messages only: the agent goes on.
        """
        ref, info = self.agents[role]
        if messages and not info.is_watcher:
            self._ask_env(BuryDeadLetters(tuple(DeadLetter(m, role, str(error)) for m in messages)))
        if info.status != "failed" and not isinstance(error, PoisonMessageError):
            self.runtime.ask(self._registry, SetStatus(role, "failed"))
            self.agents[role] = (ref, attrs.evolve(info, status="failed"))

    def _request(
        self,
        role: str,
        received: tuple[Message, ...],
        reply_id: str,
        task: str | None,
        send_to: SendTo,
        user_response: str | None,
        round_index: int,
        settings: GenerationSettings | None,
    ) -> RunStep:
        info = self.agents[role][1]
        if info.human_input_mode == "TERMINAL" and user_response is None:
            user_response = self.runtime.interventions.human_input(role)
            self.runtime.log("human.input", role=role, text=user_response)
        return RunStep(
            received=received,
            reply_id=reply_id,
            send_to=self.router.fixed(send_to, role),
            trace_id=self._trace_id,
            step=self._step,
            round=round_index,
            clock=self._clock,
            task=task,
            user_response=user_response if info.is_human else None,
            settings=settings,
        )

    def _ask_env(self, request: Any) -> Any:
        """Ask the Environment, after the replies gathered so far: it answers with them stored."""
        self._flush()
        return self.runtime.ask(self._environment, request)

    def stop(self) -> None:
        """Stop the agents, the Environment and the Registry."""
        for ref, _ in self.agents.values():
            self.runtime.stop(ref)
        self.runtime.stop(self._environment)
        self.runtime.stop(self._registry)


def _restore_request(memory: Memory) -> RestoreMemory:
    """The request that gives an agent back the driver's copy of its memory."""
    turns, handled = memory
    return RestoreMemory(MemoryState(tuple(turns), tuple(handled)))


@attrs.define
class _StepState:
    """One step on its way: who answers what, what came back, what is published and still owed."""

    received: dict[str, tuple[Message, ...]]
    requests: dict[str, RunStep] = attrs.Factory(dict)
    targets: dict[str, SendTo] = attrs.Factory(dict)  # where each reply goes: fixed roles or a routing policy
    order: list[str] = attrs.Factory(list)  # responders, in the order their replies are published
    owed: set[str] = attrs.Factory(set)
    replies: dict[str, Reply | None] = attrs.Factory(dict)  # None: its supervisor gave up
    published: int = 0
    shown: dict[str, str] = attrs.Factory(dict)  # what each reply has shown so far, across deliveries
    failed: list[AgentFailedError] = attrs.Factory(list)
    answered: set[str] = attrs.Factory(set)  # responders done with the step: their reply came
    over_budget: BudgetExceeded | None = None  # responders not delivered to: the run's budget is spent
