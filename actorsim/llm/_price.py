"""What a model's tokens cost (`llm={"price": {"input": ..., "output": ...}}`), per million, as providers list it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from actorsim._core.validators import non_negative


@attrs.frozen
class Price:
    """Per million tokens: `input` for the prompt's, `output` for the reply's."""

    input: float = attrs.field(validator=non_negative)
    output: float = attrs.field(validator=non_negative)

    def cost(self, usage: Mapping[str, Any] | None) -> float | None:
        """The cost of a call with this `usage` (the server's token counts), or None without counts."""
        if not usage or usage.get("prompt_tokens") is None or usage.get("completion_tokens") is None:
            return None
        return float(usage["prompt_tokens"] * self.input + usage["completion_tokens"] * self.output) / 1e6


def price_from(value: Any) -> Price | None:
    """The `price` of an `llm` dict: None, or a mapping with `input` and `output`."""
    if value is None or isinstance(value, Price):
        return value
    if (not isinstance(value, Mapping) or set(value) != {"input", "output"}
            or not all(isinstance(each, int | float) and not isinstance(each, bool) for each in value.values())):
        raise ValueError(f"llm config: price must be {{'input': x, 'output': y}} per million tokens, not {value!r}")
    return Price(value["input"], value["output"])
