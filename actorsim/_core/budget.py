"""What a run may spend on model calls: `actorsim.init(budget=Budget(...))`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
        raise ValueError(f"Budget: {attribute.name} must be a number > 0 or None, not {value!r}")


@attrs.frozen
class Budget:
    """Limits on a run's model calls, as their servers count them; None leaves one unlimited.

    `tokens` and `cost` (in the currency of the `llm` dicts' `price`) bound the
    whole run, `per_agent_tokens` each agent. Once one is spent no step that
    would call a model is delivered: the steps in flight finish and are
    published, and the step raises `BudgetExceeded`. A call's tokens count when
    its step's reply comes back, so the overshoot is at most what the steps in
    flight then spend.
    """

    tokens: int | None = attrs.field(default=None, validator=_positive_or_none)
    cost: float | None = attrs.field(default=None, validator=_positive_or_none)
    per_agent_tokens: int | None = attrs.field(default=None, validator=_positive_or_none)


def budget_from(value: Budget | Mapping[str, Any] | None) -> Budget | None:
    """A `Budget` from what a user gave: None (no budget), one, or a dict of its fields."""
    if value is None or isinstance(value, Budget):
        return value
    if isinstance(value, Mapping):
        return Budget(**value)
    raise TypeError(f"budget must be a Budget or a dict of its fields, not {value!r}")
