"""Assembling the `tool_calls` deltas of an OpenAI-compatible stream into whole calls.

The first fragment of a call has its `id` and `name`, later ones `index`
and pieces of `arguments`. Servers deviate, and each deviation seen is
taken: index 0 reused for parallel calls (a new `id` opens a new call),
`index` omitted (a fragment with an `id` opens a call, one without continues
the last), and the name split over fragments (joined; a fragment repeating
the whole name is not added twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from actorsim._core.chat import ToolCall


@attrs.define
class _Partial:
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallAssembler:
    """Takes `delta.tool_calls` fragments in stream order; `calls()` gives the whole calls."""

    def __init__(self) -> None:
        self._calls: list[_Partial] = []
        self._by_index: dict[Any, _Partial] = {}

    def add(self, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index")
        call_id = fragment.get("id") or ""
        function = fragment.get("function") or {}
        current = self._by_index.get(index) if index is not None else (self._calls[-1] if self._calls else None)
        if current is None or (call_id and current.call_id and call_id != current.call_id):
            current = _Partial()
            self._calls.append(current)
            if index is not None:
                self._by_index[index] = current
        if call_id:
            current.call_id = call_id
        name = function.get("name")
        if name and name != current.name:
            current.name += name
        if function.get("arguments"):
            current.arguments += function["arguments"]

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(partial.call_id or f"call-{number}", partial.name, partial.arguments or "{}")
            for number, partial in enumerate(self._calls)
        ]
