"""Terminal mode: frames streamed to the terminal as they come, each role in its own colour.

Output stays plain `<role>: text` lines when it is not a terminal (a pipe, CI),
so scripts and tests read it the same way.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from actorsim._envelope import Frame, ToolFrame
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
        return self._colours.setdefault(role, COLOURS[len(self._colours) % len(COLOURS)])

    def label(self, role: str) -> Text:
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

    def end(self, text: str) -> None:
        self._speaker = None
        self.console.print()
        self.console.print(text)


def sigterm_interrupts() -> None:
    """Make a polite `kill` end the run as Ctrl-C does (actors stopped, log closed).

    Called after `actorsim.init`: Ray installs its own SIGTERM handler there.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_interruptibly(body: Callable[[], None], view: TerminalView) -> int:
    """Run `body` (which opens and closes its run); Ctrl-C ends it cleanly with 130.

    The run's `with actorsim.init(...)` block has stopped every process and
    closed the log by the time the interrupt reaches here.
    """
    try:
        body()
    except KeyboardInterrupt:
        view.end("interrupted: the run is stopped and its log closed")
        return 130
    return 0


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
    import actorsim
    from actorsim import RolePlay, TaskCenter, create_component

    view = TerminalView(humans=[human] if human else [])

    def body() -> None:
        with actorsim.init(transport=transport, log_dir=log_dir) as runtime:
            sigterm_interrupts()
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
            where = f" (log: {runtime.log_config.directory})" if runtime.log_config else ""
            view.end(f"\n{len(room.history())} messages in run {runtime.run_id}{where}")

    return run_interruptibly(body, view)
