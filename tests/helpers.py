"""Small builders shared by the tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actorsim import Frame

TASK = "what is the best solution to land on moon?"


def scripted(*replies: str, **options: Any) -> dict[str, Any]:
    """An offline model config that answers `replies` in turn."""
    return {"model_server": "scripted", "replies": list(replies), **options}


def texts_by_role(frames: Iterable[Frame]) -> dict[str, str]:
    """Join each role's frames back into its reply."""
    texts: dict[str, str] = {}
    for frame in frames:
        texts[frame.role] = texts.get(frame.role, "") + frame.content
    return texts


def prompt_text(agent: Any) -> str:
    """Everything an agent was ever prompted with, as one string."""
    return "\n".join(turn.content for turn in agent.get_history() if turn.role == "user")
