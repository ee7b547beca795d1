"""Terminal mode: frames streamed to the terminal as they come, each role in its own colour.

Output stays plain `<role>: text` lines when it is not a terminal (a pipe, CI),
so scripts and tests read it the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from actorsim._envelope import Frame
from actorsim.ui._room import HumanTurn, RoomEvent, Speaking

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
            if isinstance(event, Frame):
                if event.role != self._speaker:
                    self.console.print()
                    self.console.print(self.label(event.role), ": ", sep="", end="")
                    self._speaker = event.role
                self.console.print(Text(event.content), end="")
            elif isinstance(event, Speaking | HumanTurn) and (
                isinstance(event, HumanTurn) or event.role in self.humans
            ):
                self.your_turn(event.role)

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
