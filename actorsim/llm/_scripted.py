"""An offline, deterministic model for demos, tests and benchmarks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence

import attrs

from actorsim._validators import non_negative
from actorsim.llm._protocol import ChatMessage

_WORD_WITH_SPACE = re.compile(r"\S+\s*|\s+")
HEARD = "{heard}"


def _some_replies(instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    if not value or not all(isinstance(reply, str) for reply in value):
        raise ValueError("replies must be a non-empty list of strings")


@attrs.frozen
class ScriptedConfig:
    """`replies` are used in order, cycling; each is streamed word by word.

    The n-th reply goes to a prompt that holds n - 1 earlier replies (assistant
    turns): the model keeps no state, so an agent restarted with its memory
    goes on where it was, as a real model would.

    `reply_latency` is waited before the first chunk and `chunk_latency`
    before each later one, to behave like a real model. `{heard}` in a reply
    stands for the last line of the prompt's last turn (usually the last message
    received, as "sender: text"), so an offline agent visibly answers what it heard.
    """

    replies: tuple[str, ...] = attrs.field(converter=tuple, validator=_some_replies)
    reply_latency: float = attrs.field(default=0.0, validator=non_negative)
    chunk_latency: float = attrs.field(default=0.0, validator=non_negative)


class ScriptedModel:
    """Streams the next scripted reply, whatever the prompt."""

    def __init__(self, config: ScriptedConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Stream the scripted reply for a prompt holding this many replies, word by word."""
        earlier = sum(1 for message in messages if message.role == "assistant")
        reply = self.config.replies[earlier % len(self.config.replies)]
        if HEARD in reply:
            lines = [line for line in messages[-1].content.splitlines() if line.strip()] if messages else []
            heard = lines[-1] if lines else ""
            reply = reply.replace(HEARD, heard)
        for index, chunk in enumerate(_WORD_WITH_SPACE.findall(reply)):
            latency = self.config.chunk_latency if index else self.config.reply_latency
            if latency:
                self._sleep(latency)
            yield chunk
