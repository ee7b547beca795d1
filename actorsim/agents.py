"""Agents: plain classes that turn received messages into a reply.

They know nothing of actors. `create_component(RolePlay, ..., remote=True)`
runs one inside an actor; `remote=False` gives the object itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

from actorsim._envelope import Message
from actorsim._runlog import log_event
from actorsim._supervision import Supervision, supervision_from
from actorsim.llm import ChatMessage, ChatModel, RetryNotice, build_chat_model, stream_events
from actorsim.memory import Memory

HUMAN_INPUT_MODES = ("CLOSE", "ON", "TERMINAL")


class Agent:
    """An agent with a role, an instruction, a model and its own memory.

    `human_input_mode="ON"` makes a human player whose replies come as
    `step(user_response=...)`; `"TERMINAL"` reads them from the driver's
    terminal. A watcher (`is_watcher=True`) reads the whole history and never
    publishes. Override `build_prompt` to change how messages become a prompt.
    `supervision` says how its crashes are handled (see `Supervision`).
    """

    def __init__(
        self,
        name: str = "assistant",
        *,
        role: str | None = None,
        llm: Mapping[str, Any] | ChatModel | None = None,
        instruction: str = "",
        function_list: Sequence[Any] = (),
        human_input_mode: str = "CLOSE",
        is_watcher: bool = False,
        storage_path: str | os.PathLike[str] | None = None,
        supervision: Supervision | Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        if human_input_mode not in HUMAN_INPUT_MODES:
            raise ValueError(f"human_input_mode must be one of {HUMAN_INPUT_MODES}, not {human_input_mode!r}")
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, not {type(instruction).__name__}")
        if list(function_list):
            raise ValueError("function_list: tool calling is not supported yet; pass an empty list")
        if llm is None and human_input_mode == "CLOSE":
            raise ValueError(f"agent {name!r} needs an llm config (or human_input_mode 'ON'/'TERMINAL')")
        if is_watcher and human_input_mode != "CLOSE":
            raise ValueError(f"agent {name!r}: a watcher cannot be a human player")
        self.name = name
        self.role = role or name
        self.instruction = instruction
        self.human_input_mode = human_input_mode
        self.is_watcher = is_watcher
        self.llm = build_chat_model(llm) if llm is not None else None
        self.memory = Memory(storage_path)
        self.supervision = supervision_from(supervision)
        self._logged_prompt: list[ChatMessage] = []  # the last prompt in the log, which the next one extends

    @property
    def is_human(self) -> bool:
        return self.human_input_mode != "CLOSE"

    def get_history(self) -> list[ChatMessage]:
        return self.memory.get_history()

    def system_prompt(self) -> str:
        return f"{self.instruction}\nYou are {self.role}.".strip()

    def user_turn(self, received: Sequence[Message], task: str | None) -> str:
        lines = [f"{message.sent_from}: {message.content}" for message in received]
        if task:
            lines.append(f"Task: {task}")
        return "\n".join(lines) or "It is your turn to speak."

    def build_prompt(self, received: Sequence[Message], task: str | None) -> list[ChatMessage]:
        return [
            ChatMessage("system", self.system_prompt()),
            *self.memory.get_history(),
            ChatMessage("user", self.user_turn(received, task)),
        ]

    def run(self, user_input: str, history: Sequence[ChatMessage] = ()) -> Iterator[str]:
        """The seed's single-agent call: stream a reply to one input."""
        model = self._model()
        return model.stream([ChatMessage("system", self.system_prompt()), *history, ChatMessage("user", user_input)])

    def _model(self) -> ChatModel:
        if self.llm is None:
            raise ValueError(f"agent {self.role!r} is a human player and has no model")
        return self.llm

    def step(
        self,
        received: Sequence[Message],
        *,
        task: str | None = None,
        user_response: str | None = None,
        reply_id: str | None = None,
    ) -> Generator[str | RetryNotice, None, str]:
        """Stream a reply to what arrived; return the whole reply and remember it.

        A human's reply is `user_response` and nothing is streamed for it.
        A `RetryNotice` comes between the chunks when the model's server is
        tried again (the actor host sends it on to the driver, to be shown).
        Messages already handled (seen again, for a watcher) are left out.
        `reply_id`, the id the reply will have, links the model call to it in the log.
        """
        fresh = [message for message in received if not self.memory.has_handled(message.message_id)]
        if self.is_human:
            if user_response is None:
                raise ValueError(f"human agent {self.role!r} responds in this step: pass user_response")
            reply = user_response
            prompt_turn = self.user_turn(fresh, task)
        else:
            prompt = self.build_prompt(fresh, task)
            reply = yield from self._call_model(prompt, reply_id)
            prompt_turn = prompt[-1].content
        self.memory.update_history(
            [ChatMessage("user", prompt_turn), ChatMessage("assistant", reply)],
            handled=[message.message_id for message in fresh],
        )
        return reply

    def _call_model(
        self, prompt: Sequence[ChatMessage], reply_id: str | None
    ) -> Generator[str | RetryNotice, None, str]:
        """Stream the model's reply, recording the call in the run log."""
        model = self._model()
        name = getattr(getattr(model, "config", None), "model", type(model).__name__)
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
        )
        started = time.perf_counter()
        parts = []
        try:
            for chunk in stream_events(model, prompt):
                if isinstance(chunk, RetryNotice):
                    log_event(
                        "llm.call.retry", role=self.role, model=name, reply_id=reply_id, api_base=chunk.server,
                        error=chunk.problem, attempt=chunk.attempt, max_attempts=chunk.max_attempts,
                        wait_s=chunk.wait_s,
                    )
                else:
                    parts.append(chunk)
                yield chunk
        except Exception as error:
            log_event(
                "llm.call.failed",
                role=self.role,
                model=name,
                error=repr(error),
                latency_s=time.perf_counter() - started,
            )
            raise
        reply = "".join(parts)
        log_event(
            "llm.call.finished",
            role=self.role,
            model=name,
            reply_id=reply_id,
            reply=reply,
            chunk_texts=parts,
            usage=getattr(model, "last_usage", None),
            latency_s=time.perf_counter() - started,
        )
        return reply


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
