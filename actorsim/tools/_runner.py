"""Every tool call of an agent goes through `ToolRunner.run`: logged, timed, answered.

An answer source (`ToolAnswers`) may answer a call instead of running the
tool: a replay answers every call from the recorded `tool.call.finished`
event, so no side effect is repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Sequence
from typing import Any, Protocol

from actorsim._core.chat import ToolCall
from actorsim._runlog import log_event, log_result
from actorsim.tools._execute import ToolOutcome, execute
from actorsim.tools._service import ServiceRequest
from actorsim.tools._spec import Tool


class ToolAnswers(Protocol):
    """Answers a tool call without running the tool; None lets the tool run."""

    def answer(self, call: ToolCall, reply_id: str | None) -> ToolOutcome | None:
        """The outcome of `call`, made for reply `reply_id`, or None to run the tool."""


class ToolRunner:
    """Runs an agent's tools: here, or through the driver for a tool service."""

    def __init__(self, tools: Sequence[Tool], role: str, answers: ToolAnswers | None = None) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.role = role
        self.answers = answers

    def specs(self) -> list[dict[str, Any]]:
        """The tools as JSON-schema function specs, as the chat-completions API takes them."""
        return [tool.spec() for tool in self.tools.values()]

    def run(self, call: ToolCall, reply_id: str | None) -> Generator[ServiceRequest, ToolOutcome, ToolOutcome]:
        """The call's outcome; pauses with a `ServiceRequest` for a tool service's tool."""
        tool = self.tools.get(call.name)
        log_event("tool.call.started", role=self.role, call_id=call.call_id, tool=call.name,
                  arguments=readable_arguments(call.arguments), reply_id=reply_id,
                  service=tool.service.service if tool is not None and tool.service is not None else None)
        started = time.perf_counter()
        recorded = self.answers.answer(call, reply_id) if self.answers is not None else None
        if recorded is not None:
            outcome = recorded
        elif tool is None:
            outcome = ToolOutcome(error=f"there is no tool {call.name!r}; the tools are {sorted(self.tools)}")
        elif tool.service is not None:
            outcome = yield from tool.service.call(tool, call, call_key(reply_id, call))
        else:
            outcome = execute(tool, call.arguments, call_key(reply_id, call))
        latency = time.perf_counter() - started
        if outcome.error is None:
            log_result("tool.call.finished", role=self.role, call_id=call.call_id, tool=call.name,
                      result=outcome.content, reply_id=reply_id, latency_s=latency)
        else:
            log_result("tool.call.failed", role=self.role, call_id=call.call_id, tool=call.name,
                      error=outcome.error, reply_id=reply_id, latency_s=latency)
        return outcome


def call_key(reply_id: str | None, call: ToolCall) -> str:
    """A tool call's key: its reply's id and its own, the same whenever the call is made again."""
    return f"{reply_id or ''}/{call.call_id}"


def readable_arguments(arguments: str) -> Any:
    """The arguments as JSON where they parse (the log reads better), else the text the model wrote."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
