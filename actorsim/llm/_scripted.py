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
SPEAKER = "{speaker}"
_LINE = re.compile(r"(?P<speaker>[^:\n]+): (?P<words>.*)")
# A quotation with what introduces it, from the start of its sentence: «ada said “...”».
_QUOTATION = re.compile(r"(?:^|(?<=[.!?]))[^.!?“”]*“[^”]*”")
USER_REQUIREMENT = "user_requirement"  # the sender of the task (actorsim._envelope.USER_REQUIREMENT)


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
    before each later one, to behave like a real model. So that an offline
    agent visibly answers what it heard, `{speaker}` in a reply stands for the
    sender of the last message received ("the task" for the task) and `{heard}`
    for its words, without the quotations in them (“...” and what introduces
    them): a conversation quotes each speaker's own words, never a quote of a
    quote. `{speaker}` begins with a capital.
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
        earlier = sum(1 for message in messages if message.role == "assistant")
        reply = self.config.replies[earlier % len(self.config.replies)]
        if HEARD in reply or SPEAKER in reply:
            speaker, heard = last_heard(messages)
            reply = reply.replace(SPEAKER, speaker[:1].upper() + speaker[1:]).replace(HEARD, heard)
        for index, chunk in enumerate(_WORD_WITH_SPACE.findall(reply)):
            latency = self.config.chunk_latency if index else self.config.reply_latency
            if latency:
                self._sleep(latency)
            yield chunk


def last_heard(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """Who spoke last in the prompt, and their own words: the last line of the last turn ("sender: text")."""
    lines = [line for line in messages[-1].content.splitlines() if line.strip()] if messages else []
    line = lines[-1].strip() if lines else ""
    said = _LINE.fullmatch(line)
    speaker, words = (said["speaker"], said["words"]) if said else ("someone", line)
    own = " ".join(_QUOTATION.sub("", words).split()) or words
    return ("the task" if speaker == USER_REQUIREMENT else speaker), own
