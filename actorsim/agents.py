"""Agents: plain classes that turn received messages into a reply.

They know nothing of actors. `create_component(RolePlay, ..., remote=True)`
runs one inside an actor; `remote=False` gives the object itself.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

import attrs

from actorsim._core.budget import CallUsed, SpendCheck
from actorsim._core.context import current_reply
from actorsim._core.envelope import Message, ToolFrame
from actorsim._core.roles import role_list
from actorsim._core.supervision import Supervision, supervision_from
from actorsim._core.validators import name_or_none
from actorsim._runlog import log_event, log_result
from actorsim.llm import (
    ChatMessage,
    ChatModel,
    CutShort,
    GenerationSettings,
    PermitRequest,
    RetryNotice,
    Throttled,
    ToolCall,
    build_chat_model,
    stream_events,
    takes_tools,
)
from actorsim.memory import Memory
from actorsim.routing import SendTo, check_send_to
from actorsim.runs import Usage
from actorsim.tools import ServiceRequest, ToolOutcome, ToolRunner, resolve_tools
from actorsim.tools._react import observation, parse_action, react_instructions

HUMAN_INPUT_MODES = ("CLOSE", "ON", "TERMINAL")
NO_SETTINGS = GenerationSettings()

StepItem = str | ToolFrame | ServiceRequest | RetryNotice | PermitRequest | SpendCheck | CutShort | CallUsed
"""What an agent's step streams: reply text, tool frames, news of retries, of replies cut short and of what each
model call used, and pauses for a tool service, its model server's limiter or the run's budget (answered by
`send`)."""


@attrs.frozen
class Post:
    """One message of a reply that sends several, each to its own `send_to`.

    An agent's `step` may return a list of posts instead of its reply text:
    a spider passes each link on to the spider that owns it and the page to a
    processor, in one step. `send_to` is a role, a list of roles, `"all"` or a
    routing policy (its key function must be importable: the post travels
    from the agent's process to the driver, which routes it); None sends the
    post where the reply would go. `parent_ids` names the messages of the
    step that caused it (None: all it received), so that a trace follows one
    page rather than the whole step's. The posts are published together, in
    order, as the answer to what the step received; an empty list answers it
    and sends nothing.
    """

    content: str = attrs.field(validator=attrs.validators.instance_of(str))
    send_to: SendTo | None = attrs.field(default=None)
    parent_ids: tuple[str, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    @send_to.validator
    def _check_send_to(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check_send_to(value, argument="Post.send_to")


class Agent:
    """An agent with a role, an instruction, a model, tools and its own memory.

    `human_input_mode="ON"` makes a human player whose replies come as
    `step(user_response=...)`; `"TERMINAL"` reads them from the driver's
    terminal. A watcher (`is_watcher=True`) reads the whole history and never
    publishes. Override `build_prompt` to change how messages become a prompt.
    `supervision` says how its crashes are handled (see `Supervision`).
    `function_list` gives its tools (see `actorsim.tools`); the model may call
    them for at most `max_tool_rounds` rounds per reply. `description` is
    what the Registry shows of it; `use_history=False` leaves its memory out of
    its prompts.
    `send_to` is where its replies go when a step does not say (a role, a
    list, `"all"`, or a routing policy: in a swarm each agent routes its own
    output); `group` and `topics` are how routing policies address it (see
    `actorsim.routing`). The task center keeps `send_to` in the driver.
    """

    def __init__(
        self,
        name: str = "assistant",
        *,
        role: str | None = None,
        llm: Mapping[str, Any] | ChatModel | None = None,
        instruction: str = "",
        description: str = "",
        function_list: Sequence[Any] = (),
        max_tool_rounds: int = 5,
        use_history: bool = True,
        human_input_mode: str = "CLOSE",
        is_watcher: bool = False,
        storage_path: str | os.PathLike[str] | None = None,
        supervision: Supervision | Mapping[str, Any] | None = None,
        send_to: SendTo = "all",
        group: str | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        if human_input_mode not in HUMAN_INPUT_MODES:
            raise ValueError(f"human_input_mode must be one of {HUMAN_INPUT_MODES}, not {human_input_mode!r}")
        for option, value in (("instruction", instruction), ("description", description)):
            if not isinstance(value, str):
                raise TypeError(f"{option} must be a str, not {type(value).__name__}")
        if not isinstance(use_history, bool):
            raise TypeError(f"use_history must be True or False, not {use_history!r}")
        if not isinstance(max_tool_rounds, int) or isinstance(max_tool_rounds, bool) or max_tool_rounds < 0:
            raise ValueError(f"max_tool_rounds must be an int >= 0, not {max_tool_rounds!r}")
        if llm is None and human_input_mode == "CLOSE":
            raise ValueError(f"agent {name!r} needs an llm config (or human_input_mode 'ON'/'TERMINAL')")
        if is_watcher and human_input_mode != "CLOSE":
            raise ValueError(f"agent {name!r}: a watcher cannot be a human player")
        check_send_to(send_to)
        name_or_none(group, argument="group")
        self.name = name
        self.role = role or name
        self.send_to = send_to
        self.group = group
        self.topics = role_list(topics, argument="topics")
        self.instruction = instruction
        self.description = description
        self.use_history = use_history
        self.max_tool_rounds = max_tool_rounds
        self.human_input_mode = human_input_mode
        self.is_watcher = is_watcher
        self.tools = resolve_tools(function_list)
        if self.tools and human_input_mode != "CLOSE":
            raise ValueError(f"agent {name!r}: a human player calls no tools; leave function_list empty")
        self.memory = Memory(storage_path)
        self.supervision = supervision_from(supervision)
        self.use_model(build_chat_model(llm) if llm is not None else None)
        self._logged_prompt: list[ChatMessage] = []  # the last prompt in the log, which the next one extends
        self.tokens_used = 0
        """Tokens its model calls used so far, as their servers counted them (0 where they did not)."""
        self.cost_used = 0.0
        """What they cost, where its `llm` has a price."""
        self._own_calls: tuple[str | None, int] = (None, 0)  # calls `use_tool` made for one reply: their ids
        self._model_calls: tuple[str | None, int] = (None, 0)  # model calls made for one reply: the budget asks

    def use_model(self, model: ChatModel | None) -> None:
        """Answer with `model` from now on (a replay gives every agent one that answers from its log).

        A model that takes `tools` and `settings` (the built-in backends do)
        is called with them; one without native function calling is prompted
        ReAct-style. A model with `tool_answers` answers the tool calls too.
        """
        self.llm = model
        self._extended = model is not None and takes_tools(model)
        self._native_tools = self._extended and bool(getattr(model, "function_calling", True))
        answers = getattr(model, "tool_answers", None)
        self._runner = ToolRunner(self.tools, self.role, answers) if self.tools else None

    @property
    def is_human(self) -> bool:
        """Whether a person speaks for this agent (`human_input_mode` "ON" or "TERMINAL")."""
        return self.human_input_mode != "CLOSE"

    def get_history(self) -> list[ChatMessage]:
        """The agent's memory: every prompt turn and reply it has had, oldest first."""
        return self.memory.get_history()

    def system_prompt(self) -> str:
        """The system turn that opens every prompt: the instruction and who the agent is. Override to change it."""
        prompt = f"{self.instruction}\nYou are {self.role}.".strip()
        if self.tools and not self._native_tools:
            prompt += "\n\n" + react_instructions(self.tools)
        return prompt

    def user_turn(self, received: Sequence[Message], task: str | None) -> str:
        """The user turn of a prompt: one line per message received ("sender: text"), then the task. Override to change
        it.
        """
        lines = [f"{message.sent_from}: {message.content}" for message in received]
        if task:
            lines.append(f"Task: {task}")
        return "\n".join(lines) or "It is your turn to speak."

    def build_prompt(self, received: Sequence[Message], task: str | None) -> list[ChatMessage]:
        """The whole prompt of a step: the system turn, the memory, then this step's user turn. Override to change it.
        """
        return [
            ChatMessage("system", self.system_prompt()),
            *(self.memory.get_history() if self.use_history else ()),
            ChatMessage("user", self.user_turn(received, task)),
        ]

    def run(self, user_input: str, history: Sequence[ChatMessage] = ()) -> Iterator[str]:
        """The seed's single-agent call: stream a reply to one input (tools included)."""
        prompt = [ChatMessage("system", self.system_prompt()), *history, ChatMessage("user", user_input)]
        for item in _answered_in_process(self._reply(prompt, None, None)):
            if isinstance(item, str) and not isinstance(item, ToolFrame):
                yield item

    def _model(self) -> ChatModel:
        if self.llm is None:
            raise ValueError(f"agent {self.role!r} is a human player and has no model")
        return self.llm

    def remember_sent(self, message: Message) -> None:
        """Remember a message sent in this agent's name (`send_task_request(send_from=role)`), as its own turn."""
        self.memory.update_history([ChatMessage("assistant", message.content)], handled=[message.message_id])

    def step(
        self,
        received: Sequence[Message],
        *,
        task: str | None = None,
        user_response: str | None = None,
        reply_id: str | None = None,
        settings: GenerationSettings | None = None,
    ) -> Generator[StepItem, Any, str | list[Post]]:
        """Stream a reply to what arrived; return the whole reply and remember it.

        A human's reply is `user_response` and nothing is streamed for it.
        A `RetryNotice` comes between the chunks when the model's server is
        tried again (the actor host sends it on to the driver, to be shown).
        Messages already handled (seen again, for a watcher) are left out.
        `reply_id`, the id the reply will have, links the model call to it in the log.
        `settings` are this step's generation settings, over the `llm` dict's.
        A subclass may override it and return a list of `Post`s instead of
        the reply text, to send several messages to different places.
        """
        fresh = [message for message in received if not self.memory.has_handled(message.message_id)]
        if self.is_human:
            if user_response is None:
                raise ValueError(f"human agent {self.role!r} responds in this step: pass user_response")
            turns = [ChatMessage("assistant", user_response)]
            prompt_turn = self.user_turn(fresh, task)
        else:
            prompt = self.build_prompt(fresh, task)
            turns = yield from self._reply(prompt, reply_id, settings)
            prompt_turn = prompt[-1].content
        self.memory.update_history(
            [ChatMessage("user", prompt_turn), *turns],
            handled=[message.message_id for message in fresh],
        )
        return turns[-1].content

    def _reply(
        self, prompt: Sequence[ChatMessage], reply_id: str | None, settings: GenerationSettings | None
    ) -> Generator[StepItem, Any, list[ChatMessage]]:
        """Call the model, and its tools while it asks for them; the turns this adds after the prompt."""
        added: list[ChatMessage] = []
        rounds = 0
        while True:
            offered = self._runner is not None and rounds < self.max_tool_rounds
            text, calls = yield from self._call_model([*prompt, *added], reply_id, settings, offered)
            if not calls or not offered:
                if calls:
                    log_event("tool.rounds_exhausted", role=self.role, reply_id=reply_id, rounds=rounds,
                              unanswered=[call.name for call in calls])
                added.append(ChatMessage("assistant", text))
                return added
            rounds += 1
            added.append(ChatMessage("assistant", text, calls if self._native_tools else ()))
            for call in calls:
                outcome = yield from self._run_tool(call, reply_id or "")
                if self._native_tools:
                    added.append(ChatMessage("tool", outcome.for_model(), tool_call_id=call.call_id))
                else:
                    added.append(ChatMessage("user", observation(outcome.for_model())))

    def use_tool(
        self, name: str, arguments: Mapping[str, Any], *, reply_id: str | None
    ) -> Generator[StepItem, Any, ToolOutcome]:
        """Call one of the agent's tools from its own code (`yield from` it in `step`), not at a model's request.

        The call is what a model's would be: logged (`tool.call.*`), shown as
        `ToolFrame`s, paused for a tool service, answered from the log by a
        replay. Calls are numbered within their reply (`reply_id`, as `step`
        was given it), so a step delivered again makes the same call ids.
        Returns the outcome; a tool's fault is its `error`, never an exception.
        """
        if self._runner is None or name not in self._runner.tools:
            known = sorted(self._runner.tools) if self._runner is not None else []
            raise ValueError(f"agent {self.role!r} has no tool {name!r}; its tools: {', '.join(known) or '(none)'}")
        made = self._own_calls[1] + 1 if self._own_calls[0] == reply_id else 1
        self._own_calls = (reply_id, made)
        call = ToolCall(f"{name}-{made}", name, json.dumps(dict(arguments), ensure_ascii=False))
        return (yield from self._run_tool(call, reply_id or ""))

    def _run_tool(self, call: ToolCall, reply_id: str) -> Generator[StepItem, Any, ToolOutcome]:
        assert self._runner is not None
        yield ToolFrame(self.role, "tool_call", call.name, call.call_id, call.arguments, reply_id)
        outcome = yield from self._runner.run(call, reply_id)
        yield ToolFrame(self.role, "tool_result", call.name, call.call_id, outcome.error or outcome.content,
                        reply_id, failed=outcome.error is not None)
        return outcome

    def _call_model(
        self, prompt: Sequence[ChatMessage], reply_id: str | None, settings: GenerationSettings | None, tools: bool
    ) -> Generator[StepItem, Any, tuple[str, list[ToolCall]]]:
        """Stream the model's reply (and notices of its retries), recording the call in the run log; its text and
        tool calls.

        A step's later calls (after its tools) first ask whether the run's
        budget lets them go: a step whose budget is spent ends there.
        """
        model = self._model()
        made = self._model_calls[1] + 1 if reply_id is not None and self._model_calls[0] == reply_id else 1
        self._model_calls = (reply_id, made)
        if made > 1:
            yield SpendCheck(made)
        name = getattr(getattr(model, "config", None), "model", type(model).__name__)
        extras: dict[str, Any] = {}
        logged: dict[str, Any] = {}
        if self._extended:
            extras["settings"] = settings
            if tools and self._native_tools:
                extras["tools"] = self._runner.specs() if self._runner is not None else None
        effective = (settings or NO_SETTINGS).over(getattr(model, "settings", NO_SETTINGS)).to_dict()
        if effective:
            logged["settings"] = effective
        if tools:
            logged["tools"] = sorted(self._runner.tools) if self._runner is not None else []
        # A prompt repeats the one before it and adds a turn or two: the log holds only what is
        # new, so a call costs the log the same on round 200 as on round 1. `read_run` rebuilds it.
        reused = _common_prefix(self._logged_prompt, prompt)
        self._logged_prompt = list(prompt)
        log_event(
            "llm.call.started",
            role=self.role,
            model=name,
            reply_id=reply_id,
            prompt_reused=reused,
            prompt_new=[turn.to_dict() for turn in prompt[reused:]],
            **logged,
        )
        started = time.perf_counter()
        parts: list[str] = []
        calls: list[ToolCall] = []
        # ReAct replies are held back until whole: an action is not reply text.
        react = tools and not self._native_tools
        # The model runs with `current_reply` set, for each piece alone: a step paused for a permit goes on
        # in another context (another request to the actor), where a variable set before the pause is not.
        calling_for = current_reply.set(reply_id)
        try:
            # Sent to, not only iterated: a throttled call's `PermitRequest` is answered by the driver.
            events: Any = stream_events(model, prompt, **extras)
        finally:
            current_reply.reset(calling_for)
        try:
            answer: Any = None
            while True:
                calling_for = current_reply.set(reply_id)
                try:
                    item = events.send(answer) if answer is not None else next(events)
                except StopIteration:
                    break
                finally:
                    current_reply.reset(calling_for)
                answer = None
                if isinstance(item, PermitRequest):
                    answer = yield item
                    continue
                if isinstance(item, RetryNotice):
                    throttled = {"status": item.status, "retry_after_s": item.retry_after} \
                        if isinstance(item, Throttled) else {}
                    log_event(
                        "llm.call.retry", role=self.role, model=name, reply_id=reply_id, api_base=item.server,
                        error=item.problem, attempt=item.attempt, max_attempts=item.max_attempts,
                        wait_s=item.wait_s, **throttled,
                    )
                    yield item
                    continue
                if isinstance(item, ToolCall):
                    calls.append(item)
                    continue
                parts.append(item)
                if not react:
                    yield item
        except Exception as error:
            log_event(
                "llm.call.failed",
                role=self.role,
                model=name,
                reply_id=reply_id,
                error=repr(error),
                latency_s=time.perf_counter() - started,
            )
            raise
        reply = "".join(parts)
        if react:
            action = parse_action(reply, len(self._logged_prompt))
            if action is not None:
                calls.append(action)
            elif reply:
                yield reply
        if calls:
            logged = {"tool_calls": [call.to_dict() for call in calls]}
        else:
            logged = {}
        finish_reason = getattr(model, "last_finish_reason", None)
        if finish_reason == "length":  # shown: a reply cut short reads like a finished one
            yield CutShort(name, effective.get("max_tokens"))
        usage = getattr(model, "last_usage", None)
        tokens = Usage.counted(usage).total_tokens
        self.tokens_used += tokens
        price = getattr(model, "price", None)
        # A replayed model has no price: it gives the recorded call's cost.
        cost = price.cost(usage) if price is not None else getattr(model, "last_cost", None)
        if cost is not None:  # `llm={"price": ...}` and a server that counted the tokens
            logged["cost"] = cost
            self.cost_used += cost
        log_result(
            "llm.call.finished",
            role=self.role,
            model=name,
            reply_id=reply_id,
            reply=reply,
            chunk_texts=parts,
            usage=usage,
            finish_reason=finish_reason,
            latency_s=time.perf_counter() - started,
            **logged,
        )
        served = getattr(model, "last_served", None)
        if usage or cost or served:  # counted by the budget and the server's limiter now, not when the step replies
            yield CallUsed(tokens, cost or 0.0, served)
        return reply, calls


def _answered_in_process(items: Generator[StepItem, Any, Any]) -> Iterator[StepItem]:
    """A step's items where no driver answers pauses: only in-process tools can be called."""
    try:
        item = next(items)
        while True:
            if isinstance(item, ServiceRequest):
                item = items.send(ToolOutcome(error=f"tool service {item.service!r} is only reached in a step"))
                continue
            if isinstance(item, PermitRequest | SpendCheck | CallUsed):  # no driver: no budget, the model waits
                item = next(items)
                continue
            yield item
            item = next(items)
    except StopIteration:
        return


def _common_prefix(before: Sequence[ChatMessage], now: Sequence[ChatMessage]) -> int:
    shortest = min(len(before), len(now))
    if list(before[:shortest]) == list(now[:shortest]):  # the usual case; list equality tries identity first
        return shortest
    reused = 0
    for old, new in zip(before, now, strict=False):
        if old != new:
            break
        reused += 1
    return reused


class RolePlay(Agent):
    """The seed's role-playing agent: an instruction describes who it plays."""


__all__ = ["Agent", "HUMAN_INPUT_MODES", "Post", "RolePlay", "current_reply"]
