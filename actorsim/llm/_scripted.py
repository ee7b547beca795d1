"""An offline, deterministic model for demos, tests and benchmarks."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from actorsim._core.chat import ChatMessage, ToolCall
from actorsim._core.validators import non_negative
from actorsim.llm._price import Price
from actorsim.llm._protocol import ModelItem
from actorsim.llm._settings import GenerationSettings

_WORD_WITH_SPACE = re.compile(r"\S+\s*|\s+")
HEARD = "{heard}"
SPEAKER = "{speaker}"
_LINE = re.compile(r"(?P<speaker>[^:\n]+): (?P<words>.*)")
# A quotation with what introduces it, from the start of its sentence: «ada said “...”».
_QUOTATION = re.compile(r"(?:^|(?<=[.!?]))[^.!?“”]*“[^”]*”")
USER_REQUIREMENT = "user_requirement"  # the sender of the task (actorsim._core.envelope.USER_REQUIREMENT)

Scripted = str | Mapping[str, Any]


def _check_tool_turn(reply: Mapping[str, Any]) -> None:
    calls = reply.get("tool_calls")
    if set(reply) - {"content", "tool_calls"} or not isinstance(calls, list) or not calls:
        raise ValueError(f"a scripted tool turn is {{'tool_calls': [...], 'content': ...}}, not {dict(reply)!r}")
    for call in calls:
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise ValueError(f"a scripted tool call needs a 'name' and 'arguments': {call!r}")
        if not isinstance(call.get("arguments", {}), Mapping | str):
            raise ValueError(f"scripted tool call {call['name']!r}: arguments must be a dict or JSON text")


def _some_replies(instance: object, attribute: attrs.Attribute[Any], value: tuple[Scripted, ...]) -> None:
    if not value or not all(isinstance(reply, str | Mapping) for reply in value):
        raise ValueError("replies must be a non-empty list of strings (or tool turns)")
    for reply in value:
        if isinstance(reply, Mapping):
            _check_tool_turn(reply)


@attrs.frozen
class ScriptedConfig:
    """`replies` are used in order, cycling; each is streamed word by word.

    The n-th reply goes to a prompt that holds n - 1 earlier replies (assistant
    turns): the model keeps no state, so an agent restarted with its memory
    goes on where it was, as a real model would.

    A reply may be a tool turn, `{"tool_calls": [{"name": ..., "arguments":
    {...}}], "content": ""}`: the model calls those tools, and the next reply
    answers the prompt that holds their results.

    `reply_latency` is waited before the first chunk and `chunk_latency`
    before each later one, to behave like a real model. So that an offline
    agent visibly answers what it heard, `{speaker}` in a reply stands for the
    sender of the last message received ("the task" for the task) and `{heard}`
    for its words, without the quotations in them (“...” and what introduces
    them): a conversation quotes each speaker's own words, never a quote of a
    quote. `{speaker}` begins with a capital. After a tool call the last turn is
    its result, which `{heard}` quotes. Generation settings are taken, and
    recorded in the run log, so one `llm` dict serves offline and online; they
    change nothing here.
    """

    replies: tuple[Scripted, ...] = attrs.field(converter=tuple, validator=_some_replies)
    reply_latency: float = attrs.field(default=0.0, validator=non_negative)
    chunk_latency: float = attrs.field(default=0.0, validator=non_negative)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int | None = None


class ScriptedModel:
    """Streams the next scripted reply, whatever the prompt."""

    function_calling = True

    def __init__(self, config: ScriptedConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.settings = GenerationSettings(config.temperature, config.top_p, config.seed, config.max_tokens)
        self._sleep = sleep
        self.price: Price | None = None
        """What its tokens cost (`llm={"price": ...}`): a scripted model reports no usage, so none is counted."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[ModelItem]:
        """Stream the scripted reply for a prompt holding this many replies, word by word; then its tool calls."""
        earlier = sum(1 for message in messages if message.role == "assistant")
        reply = self.config.replies[earlier % len(self.config.replies)]
        text = reply if isinstance(reply, str) else str(reply.get("content", ""))
        if HEARD in text or SPEAKER in text:
            speaker, heard = last_heard(messages)
            text = text.replace(SPEAKER, speaker[:1].upper() + speaker[1:]).replace(HEARD, heard)
        for index, chunk in enumerate(_WORD_WITH_SPACE.findall(text)):
            latency = self.config.chunk_latency if index else self.config.reply_latency
            if latency:
                self._sleep(latency)
            yield chunk
        if isinstance(reply, Mapping):
            for number, call in enumerate(reply["tool_calls"]):
                arguments = call.get("arguments", {})
                text_arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
                yield ToolCall(f"call-{earlier}-{number}", call["name"], text_arguments)


def last_heard(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """Who spoke last in the prompt, and their own words: the last line of the last turn ("sender: text").

    After a tool call the last turn is the tool's result, quoted whole.
    """
    if messages and messages[-1].role == "tool":
        return "the tool", " ".join(messages[-1].content.split())
    lines = [line for line in messages[-1].content.splitlines() if line.strip()] if messages else []
    line = lines[-1].strip() if lines else ""
    said = _LINE.fullmatch(line)
    speaker, words = (said["speaker"], said["words"]) if said else ("someone", line)
    own = " ".join(_QUOTATION.sub("", words).split()) or words
    return ("the task" if speaker == USER_REQUIREMENT else speaker), own
