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
    whole run, `per_agent_tokens` each agent. Once one is spent no new model
    call starts: a step that would call a model is not delivered, and a step
    that ran its tools and would call its model again is withdrawn (its
    messages wait in their queues, its agent's memory is as before the step).
    The calls in flight finish and are published, and the step raises
    `BudgetExceeded`. A call's tokens count as soon as it ends, so the
    overshoot is at most what the calls in flight then spend.
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


@attrs.frozen
class CallUsed:
    """What one model call used, as its server counted: sent on to the driver as soon as the call ends.

    The budget then counts it before its step replies, and counts it even if
    the step crashes afterwards and is delivered again. `served`: when the
    call's answered try was sent and ended (wall clock), for its server's
    limiter (`actorsim.llm._limiter`).
    """

    tokens: int
    cost: float = 0.0
    served: tuple[float, float] | None = None


@attrs.frozen
class Allowance:
    """What a step's model calls may use before its next call asks the driver (None: no bound in that measure).

    A step is delivered with a share of the budget the run has not yet
    spent or given to other steps, so that in the usual case its calls after
    its tools go without a round trip to the driver.
    """

    tokens: float | None = None
    cost: float | None = None

    def covers(self, tokens: float, cost: float) -> bool:
        """Whether a call may start after the step's calls used `tokens` and `cost` of it."""
        return (self.tokens is None or tokens < self.tokens) and (self.cost is None or cost < self.cost)


NOTHING = Allowance(0, 0)
"""No call goes without asking."""


@attrs.frozen
class SpendCheck:
    """A step's model call after its first (its tools answered) asks its driver whether the budget lets it go.

    Only a step past its `Allowance` asks; `call` numbers the step's model
    calls from 1, so that a replay answers each as recorded.
    """

    call: int


@attrs.frozen
class Spent:
    """The driver's answer to a `SpendCheck` once the budget is spent: the step is withdrawn, `what` says why.

    (While the budget lasts, the answer is the step's next `Allowance`.)
    """

    what: str
