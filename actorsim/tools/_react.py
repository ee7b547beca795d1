"""The ReAct fallback for models without function calling, as the peer's RolePlay prompts them.

The tools are described in the system prompt; a reply that holds
`Action:` and `Action Input:` lines is a tool call, and its result comes
back as an `Observation:` turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from actorsim._core.chat import ToolCall
from actorsim.tools._spec import Tool

_ACTION = re.compile(r"Action:\s*([A-Za-z0-9_-]+)\s*\n\s*Action Input:\s*(\{.*\})", re.DOTALL)


def react_instructions(tools: Sequence[Tool]) -> str:
    lines = ["You can use these tools:"]
    for tool in tools:
        lines.append(f"{tool.name}: {tool.description} Parameters: {json.dumps(dict(tool.parameters))}")
    lines.append(
        "To use a tool, reply with exactly two lines and stop:\nAction: <tool name>\n"
        "Action Input: <the arguments as one JSON object>\n"
        "Its result comes back as \"Observation: ...\". When you can answer, reply normally."
    )
    return "\n".join(lines)


def parse_action(text: str, number: int) -> ToolCall | None:
    """The tool call a ReAct reply asks for, or None for an answer."""
    match = _ACTION.search(text)
    if match is None:
        return None
    return ToolCall(f"react-{number}", match.group(1), match.group(2).strip())


def observation(content: str) -> str:
    return f"Observation: {content}"
