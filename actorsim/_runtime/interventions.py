"""Hooks into a run, so that tools such as replay plug in instead of being special cases.

An `Intervention` sees the points where a run meets the outside world: the
ids it makes, the model each agent gets, a human's typed input, each delivery
to an agent and each published message. A run holds a chain of them (first
answer wins); by default the chain only reads a terminal human's input.
autogen-core's `InterventionHandler` is the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from actorsim._core.envelope import Message
from actorsim._core.state import RunState
from actorsim.llm import ChatModel


@attrs.frozen
class RecordedInput:
    """A value the program read in a recorded run (see `actorsim.recorded`), given back instead of reading it."""

    value: Any


class Intervention:
    """Every hook does nothing; subclasses override the ones they need."""

    def run_started(self) -> dict[str, Any]:
        """Fields to add to the run's `run.started` event."""
        return {}

    def new_id(self) -> str | None:
        """The id of the next message the driver makes, or None for a fresh one."""
        return None

    def routing_seed(self, task_center: str) -> int | None:
        """The seed of `task_center`'s routing (random draws, round-robin starts), or None for a fresh one."""
        return None

    def choose_model(self, role: str, llm: Mapping[str, Any] | ChatModel) -> Mapping[str, Any] | ChatModel:
        """The model `role` gets instead of `llm` (a config or a built model)."""
        return llm

    def human_input(self, role: str) -> str | None:
        """What the terminal human `role` says now, or None to ask the next intervention."""
        return None

    def before_delivery(self, name: str, request: Any, attempt: int) -> BaseException | None:
        """An error to treat as the crash of this delivery (the `attempt`-th of `request`), instead of sending it."""
        return None

    def recorded_input(self, name: str, index: int) -> RecordedInput | None:
        """The value of the program's input `name` (its `index`-th read, from 0), or None to read it now."""
        return None

    def budget_stops(self, reply_id: str) -> bool:
        """Whether the budget stopped a model call of reply `reply_id` (in a recording): each of its calls then asks."""
        return False

    def spend_check(self, reply_id: str, call: int) -> RecordedInput | None:
        """Whether the budget stops model call `call` of reply `reply_id`: what was spent (a refusal) or None (it
        goes), as a `RecordedInput`; None to ask the run's tally."""
        return None

    def published(self, message: Message, state: Callable[[], RunState]) -> None:
        """`message` is stored; `state()` reads the run's state at this point. May raise to stop the run."""

    def run_failed(self, error: BaseException) -> None:
        """`error` ended the run (it escaped the `with actorsim.init()` block)."""


class TerminalInput(Intervention):
    """Reads a terminal human's reply from standard input, in the driver (`human_input_mode="TERMINAL"`)."""

    def human_input(self, role: str) -> str | None:
        return input(f"<{role}>: ")


class Interventions:
    """A run's chain of interventions, last of all the terminal reader."""

    def __init__(self, handlers: Sequence[Intervention] = ()) -> None:
        self.handlers = (*handlers, TerminalInput())
        # A handler that looks at each message stored (a replay stepping through a run) sees the run at that
        # message: replies are then stored one at a time, not in batches.
        self.watch_publishing = any(type(handler).published is not Intervention.published for handler in handlers)

    def run_started(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for handler in self.handlers:
            fields.update(handler.run_started())
        return fields

    def new_id(self) -> str | None:
        return next((made for handler in self.handlers if (made := handler.new_id()) is not None), None)

    def routing_seed(self, task_center: str) -> int | None:
        return next(
            (seed for handler in self.handlers if (seed := handler.routing_seed(task_center)) is not None), None
        )

    def choose_model(self, role: str, llm: Mapping[str, Any] | ChatModel) -> Mapping[str, Any] | ChatModel:
        for handler in self.handlers:
            llm = handler.choose_model(role, llm)
        return llm

    def human_input(self, role: str) -> str:
        for handler in self.handlers:
            if (text := handler.human_input(role)) is not None:
                return text
        raise AssertionError("TerminalInput always answers")

    def before_delivery(self, name: str, request: Any, attempt: int) -> BaseException | None:
        for handler in self.handlers:
            if (fault := handler.before_delivery(name, request, attempt)) is not None:
                return fault
        return None

    def recorded_input(self, name: str, index: int) -> RecordedInput | None:
        return next(
            (given for handler in self.handlers if (given := handler.recorded_input(name, index)) is not None), None
        )

    def budget_stops(self, reply_id: str) -> bool:
        return any(handler.budget_stops(reply_id) for handler in self.handlers)

    def spend_check(self, reply_id: str, call: int) -> RecordedInput | None:
        return next(
            (given for handler in self.handlers if (given := handler.spend_check(reply_id, call)) is not None), None
        )

    def published(self, message: Message, state: Callable[[], RunState]) -> None:
        for handler in self.handlers:
            handler.published(message, state)

    def run_failed(self, error: BaseException) -> None:
        for handler in self.handlers:
            handler.run_failed(error)


_installed: list[Intervention] = []


@contextlib.contextmanager
def installed(*handlers: Intervention) -> Iterator[None]:
    """Add `handlers` to every run started in this process meanwhile, `remote=False` task centers included.

    How `actorsim replay` runs a recorded program unchanged: the program
    calls `actorsim.init()` itself, and its run picks the replay up here.
    """
    _installed.extend(handlers)
    try:
        yield
    finally:
        for handler in handlers:
            _installed.remove(handler)


def installed_handlers() -> tuple[Intervention, ...]:
    return tuple(_installed)
