"""An agent's own memory: what it received and said, and which messages it handled."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs
import orjson

from actorsim._core.chat import ChatMessage


@attrs.frozen
class MemoryState:
    """A memory's content, or what one step added to it.

    Replies carry what their step added to the driver, which keeps the sum:
    an agent restarted after a crash is given it back.
    """

    turns: tuple[ChatMessage, ...] = ()
    handled: tuple[str, ...] = ()


class Memory:
    """Chat history, kept as JSON at `path` when one is given.

    The ids of handled messages are kept with it, so that a message is never
    applied twice to the same memory.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._history: list[ChatMessage] = []
        self._handled: set[str] = set()
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            data = orjson.loads(path.read_bytes())
            self._history = [ChatMessage.from_dict(turn) for turn in data["history"]]
            self._handled = set(data["handled"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"memory file {path} is not an actorsim memory: {error}") from error

    def get_history(self) -> list[ChatMessage]:
        """Every turn, oldest first (a copy)."""
        return list(self._history)

    @property
    def turn_count(self) -> int:
        """How many turns the memory holds."""
        return len(self._history)

    def turns_since(self, count: int) -> tuple[ChatMessage, ...]:
        """The turns added after the first `count`."""
        return tuple(self._history[count:])

    def state(self) -> MemoryState:
        """Everything the memory holds, to be restored later with `restore`."""
        return MemoryState(tuple(self._history), tuple(sorted(self._handled)))

    def restore(self, state: MemoryState) -> None:
        """Become `state`, as the memory was after the last step its agent finished."""
        self._history = list(state.turns)
        self._handled = set(state.handled)
        if self.path is not None:
            self._save(self.path)

    def has_handled(self, message_id: str) -> bool:
        """Whether the message with this id was already answered."""
        return message_id in self._handled

    def update_history(self, turns: Iterable[ChatMessage], *, handled: Iterable[str] = ()) -> None:
        """Add `turns` and note the ids of the messages they answered; saved to `storage_path`, if any."""
        self._history.extend(turns)
        self._handled.update(handled)
        if self.path is not None:
            self._save(self.path)

    def _save(self, path: Path) -> None:
        """Write a whole new file and rename it, so a crash never leaves half a memory."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"history": [turn.to_dict() for turn in self._history], "handled": sorted(self._handled)}
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        partial.replace(path)


__all__ = ["Memory", "MemoryState"]
