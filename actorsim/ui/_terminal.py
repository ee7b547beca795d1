"""Terminal mode: frames streamed to the terminal as they come, each role in its own colour.

Output stays plain `<role>: text` lines when it is not a terminal (a pipe, CI),
so scripts and tests read it the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from actorsim._component import create_component
from actorsim._core.envelope import Frame, ToolFrame
from actorsim._core.wording import plural
from actorsim._init import init
from actorsim.agents import RolePlay
from actorsim.task_center import TaskCenter
from actorsim.ui._room import ChatRoom, HumanTurn, RoomEvent, Speaking

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")


class TerminalView:
    """Prints a run's frames as one growing line per reply, labelled and coloured by role."""

    def __init__(self, console: Console | None = None, humans: Iterable[str] = ()) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.humans = set(humans)
        self._colours: dict[str, str] = {}
        self._speaker: str | None = None

    def colour(self, role: str) -> str:
        """The rich colour a role's label is shown in; each role keeps its own."""
        return self._colours.setdefault(role, COLOURS[len(self._colours) % len(COLOURS)])

    def label(self, role: str) -> Text:
        """`<role>:` in the role's colour."""
        return Text(f"<{role}>", style=f"bold {self.colour(role)}")

    def show(self, events: Iterable[RoomEvent | Frame]) -> None:
        """Print each frame as it arrives; announce a human's turn before its prompt."""
        for event in events:
            if isinstance(event, ToolFrame):
                self.tool(event)
            elif isinstance(event, Frame):
                if event.role != self._speaker:
                    self.console.print()
                    self.console.print(self.label(event.role), ": ", sep="", end="")
                    self._speaker = event.role
                self.console.print(Text(event.content), end="")
            elif isinstance(event, Speaking | HumanTurn) and (
                isinstance(event, HumanTurn) or event.role in self.humans
            ):
                self.your_turn(event.role)

    def tool(self, frame: ToolFrame) -> None:
        """A tool call or result on a dim line of its own, under the role's label; the reply goes on after it."""
        shown = str(frame).split(" ", 1)[1]  # without the "<role>" the label shows
        self.console.print()
        self.console.print(self.label(frame.role), Text(f" {shown}", style="dim"), sep="", end="")
        self._speaker = None

    def your_turn(self, role: str) -> None:
        """The line before a human's prompt: whose turn it is and how to stop."""
        self._speaker = None
        self.console.print()
        self.console.print(
            Text("your turn as ", style="dim"), self.label(role),
            Text(" (Enter sends; Ctrl-C ends the run)", style="dim"), sep="",
        )

    def notice(self, text: str) -> None:
        """A dim line of news (a model server being retried), on a line of its own."""
        if self._speaker is not None:
            self.console.print()
            self._speaker = None
        self.console.print(Text(text, style="dim"))

    def end(self, text: str) -> None:
        """Finish the line in progress and print `text`."""
        self._speaker = None
        self.console.print()
        self.console.print(text)


class _ViewHandler(logging.Handler):
    def __init__(self, view: TerminalView) -> None:
        super().__init__()
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        self.view.notice(self.format(record))


def show_notices(view: TerminalView | None = None) -> logging.Handler:
    """Show actorsim's notices to the person waiting: in `view`, else on stderr.

    The notices (such as "joe_biden: model server at URL answered 503; retry 2
    of 5 in 1.3 s") go to the `actorsim` logger of the driver, from every
    transport: they travel back with the step's stream. The library itself
    shows nothing; an application calls this (or configures `logging`).
    Returns the handler, for `logging.getLogger("actorsim").removeHandler`.
    """
    handler = _ViewHandler(view) if view is not None else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("actorsim").addHandler(handler)
    return handler


def sigterm_interrupts() -> None:
    """Make a polite `kill` end the run as Ctrl-C does (actors stopped, log closed).

    Called after `actorsim.init`: Ray installs its own SIGTERM handler there.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def chat(
    *,
    transport: str,
    roles: Sequence[str],
    human: str | None,
    task: str,
    turns: int,
    llm: Callable[[str], Mapping[str, Any]],
    log_dir: str | os.PathLike[str] | None,
) -> int:
    """`actorsim chat`: a room of `roles` taking turns (round robin), `human` typing at its turn."""
    view = TerminalView(humans=[human] if human else [])
    show_notices(view)
    log: list[Path] = []  # where the run logs, once it has started

    try:
        with init(transport=transport, log_dir=log_dir) as runtime:
            sigterm_interrupts()
            if runtime.log_config is not None:
                log.append(runtime.log_config.directory)
            task_center = create_component(TaskCenter, name="chat", remote=True)
            agents = [
                create_component(RolePlay, name=role, remote=True, llm=dict(llm(role)), instruction=f"You are {role}.")
                for role in roles
            ]
            if human:
                agents.append(create_component(RolePlay, name=human, remote=True, human_input_mode="TERMINAL"))
            task_center.add_agents(agents)
            room = ChatRoom(task_center)
            view.console.print(Text(f"run {runtime.run_id} on {transport}: {', '.join(room.roles)}", style="dim"))
            room.open(task)
            view.show(room.run(turns=turns))
            where = f" (log: {log[0]})" if log else ""
            view.end(f"\n{plural(len(room.history()), 'message')} in run {runtime.run_id}{where}")
    except KeyboardInterrupt:
        # The `with` block has stopped every process and closed the log by now.
        view.end(f"interrupted: the run is stopped; its log: {log[0]}" if log else "interrupted: the run is stopped")
        return 130
    return 0
