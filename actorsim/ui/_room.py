"""A chat room: agents take turns as a director decides, and a human joins in.

This part knows nothing of Gradio or the terminal, so the turn-taking is the
same whichever front end shows it, and is tested without a browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

from actorsim._core.envelope import USER_REQUIREMENT, Frame, Message
from actorsim._core.roles import ALL
from actorsim._protocol.registry import AgentInfo
from actorsim.runs import Causality, RunLogError, TraceNode, read_run
from actorsim.task_center import TaskCenter

Director = Callable[["ChatRoom"], str]
"""Chooses who speaks next in a room: a role of `room.roles`, the human's included."""


def round_robin(room: ChatRoom) -> str:
    """The role after the last speaker, in registration order; the first role to begin."""
    roles = room.roles
    history = room.history()
    last = history[-1].sent_from if history else None
    if last not in roles:
        return roles[0]
    return roles[(roles.index(last) + 1) % len(roles)]


@attrs.frozen
class WatcherDirector:
    """A watcher agent chooses: it reads the whole history and names the next speaker.

    The first role named in its reply wins; a reply naming nobody falls back to
    `fallback`, so a chatty model never stalls the room.
    """

    role: str
    fallback: Director = round_robin

    def __call__(self, room: ChatRoom) -> str:
        reply = "".join(frame.content for frame in room.task_center.step(allowed_roles=self.role))
        named = {
            match.start(): role
            for role in room.roles
            if (match := re.search(rf"(?<!\w){re.escape(role)}(?!\w)", reply, re.IGNORECASE))
        }
        return named[min(named)] if named else self.fallback(room)


@attrs.frozen
class Speaking:
    """`role` was chosen and its reply follows as frames."""

    role: str


@attrs.frozen
class HumanTurn:
    """The room waits for the human player (`ChatRoom.speak`)."""

    role: str


RoomEvent = Speaking | HumanTurn | Frame


@attrs.frozen
class Trace:
    """A message, what caused it (trees from the task down) and what it caused (trees from it down)."""

    message: Message
    causes: tuple[TraceNode, ...]
    effects: tuple[TraceNode, ...]


class ChatRoom:
    """One conversation: a task center, who speaks next, and the human player.

    `run()` lets the director's choices speak until it chooses the human (or
    `max_turns` replies have passed without the human, then the human is asked
    anyway); `speak(text)` is the human's reply.
    """

    def __init__(
        self,
        task_center: TaskCenter,
        *,
        director: Director = round_robin,
        human: str | None = None,
        max_turns: int = 6,
    ) -> None:
        self.task_center = task_center
        self.director = director
        self.max_turns = max_turns
        agents = task_center.registry.agents()
        humans = [info.role for info in agents if info.human_input_mode == "ON"]
        if human is not None and human not in humans:
            raise ValueError(f"human={human!r}: no agent with human_input_mode='ON' has that role; found {humans}")
        self.human = human if human is not None else (humans[0] if humans else None)
        self.roles = [info.role for info in agents if not info.is_watcher]
        self.speaking: str | None = None
        self.closed = False

    def agents(self) -> list[AgentInfo]:
        """The registry's view of the room's agents."""
        return self.task_center.registry.agents()

    def history(self) -> list[Message]:
        """Every message of the room's task center, in order."""
        return self.task_center.environment.history()

    def requirements(self) -> list[Message]:
        """The task, and any later user requirement, in order."""
        return self.task_center.environment.user_requirements()

    def open(self, task: str, send_to: str | Sequence[str] = ALL) -> Message:
        """Put the opening task to the room."""
        return self.task_center.send_task_request(task, send_to=send_to)

    def run(self, turns: int | None = None) -> Iterator[RoomEvent]:
        """Let the director's choices speak, streaming their frames, until the human's turn.

        At most `turns` (default `max_turns`) replies come before the human is asked.
        A `"TERMINAL"` human is a speaker like the others: its step reads the terminal.
        """
        for _ in range(self.max_turns if turns is None else turns):
            role = self.director(self)
            if role not in self.roles:
                raise ValueError(f"the director chose {role!r}, not one of the room's roles {self.roles}")
            if role == self.human:
                break
            self.speaking = role
            yield Speaking(role)
            try:
                yield from self.task_center.step(allowed_roles=role)
            finally:
                self.speaking = None
        if self.human is not None:
            self.speaking = self.human
            yield HumanTurn(self.human)

    def speak(self, text: str) -> Message:
        """Publish the human player's reply; the room goes on with `run()`."""
        if self.human is None:
            raise ValueError("this room has no human player")
        for _ in self.task_center.step(allowed_roles=self.human, user_response=text):
            pass
        self.speaking = None
        return self.history()[-1]

    def log_folder(self) -> Path | None:
        """Where the room's run is logged, or None without a run log."""
        config = self.task_center.runtime.log_config
        return None if config is None else config.directory

    def trace(self, message_id: str) -> Trace:
        """What caused a message and what it caused, from the run log (from the history without one)."""
        folder = self.log_folder()
        messages: list[Message] | None = None
        if folder is not None:
            try:
                messages = read_run(folder).messages
            except RunLogError:
                messages = None
        if messages is None or not any(m.message_id == message_id for m in messages):
            messages = self.history()
        graph = Causality(messages)
        message = graph.get(message_id)
        return Trace(message, tuple(graph.cause_tree(message)), tuple(graph.effect_tree(message)))

    def close(self) -> None:
        """Stop the room's actors; its run goes on for other rooms."""
        if not self.closed:
            self.closed = True
            self.task_center.close()


def describe(message: Message) -> str:
    """"sender → recipients", the task's sender named "the task"."""
    sender = "the task" if message.sent_from == USER_REQUIREMENT else message.sent_from
    return f"{sender} → {', '.join(message.send_to) or 'nobody'}"
