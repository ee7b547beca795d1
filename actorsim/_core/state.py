"""A run's state at one point, as a replay stopped with `--until` shows it and `ReplayStopped` carries it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from actorsim._core.chat import ChatMessage
from actorsim._core.envelope import Message


@attrs.frozen
class RunState:
    """What a run holds at one point: each role's queue and memory, and the history."""

    pending: Mapping[str, Sequence[Message]]
    memories: Mapping[str, Sequence[ChatMessage]]
    history: Sequence[Message]
