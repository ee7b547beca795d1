"""Running one tool call: arguments parsed, a timeout kept, the result made text; faults become errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import attrs

from actorsim.tools._spec import IDEMPOTENCY_KEY, Tool


@attrs.frozen
class ToolOutcome:
    """What a tool call gave: its result as text, or the error the model is told instead."""

    content: str = ""
    error: str | None = None

    def for_model(self) -> str:
        """What the model is told: the result, or the error."""
        return self.content if self.error is None else f"error: {self.error}"


def parse_arguments(text: str) -> dict[str, Any]:
    """The call's arguments; `ValueError` when the model wrote something other than a JSON object."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"the arguments are not valid JSON ({error.msg}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"the arguments must be a JSON object, not {text[:200]!r}")
    return value


def execute(tool: Tool, arguments: str, key: str = "") -> ToolOutcome:
    """Run `tool` here, a keyed tool given the call's `key`; whatever goes wrong is an error outcome, never an
    exception."""
    assert tool.function is not None, f"tool {tool.name!r} is served elsewhere"
    try:
        parsed = parse_arguments(arguments)
        if tool.keyed:
            parsed[IDEMPOTENCY_KEY] = key  # over anything the model wrote there: the key is not the model's
        result = _within(tool.timeout, tool.name, lambda: tool.function(**parsed))  # type: ignore[misc]
    except Exception as error:  # noqa: BLE001 - a tool's fault is the model's to hear about
        return ToolOutcome(error=f"{type(error).__name__}: {error}")
    return as_text(result)


def as_text(result: Any) -> ToolOutcome:
    """A result as the model reads it: text as is, anything else as JSON."""
    if isinstance(result, str):
        return ToolOutcome(result)
    try:
        return ToolOutcome(json.dumps(result, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as error:
        return ToolOutcome(error=f"the result ({type(result).__name__}) does not serialise to JSON: {error}")


def _within(timeout: float | None, name: str, run: Callable[[], Any]) -> Any:
    """`run()`, given at most `timeout` seconds. A call past it is left to finish on its own
    thread (a thread cannot be stopped); the model hears of the timeout at once."""
    if timeout is None:
        return run()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run()
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error

    thread = threading.Thread(target=target, name=f"actorsim-tool:{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"tool {name!r} took longer than its timeout of {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["result"]
