"""What a run's model calls have spent, against its budget: kept by the driver, from each step's reply.

Every reply comes back to the driver with what its step's calls used
(`Reply.tokens`, `Reply.cost`), whatever process or node made them, so the
tally needs no messages of its own. A step that would call a model is
delivered only while nothing it is bound by is spent.
"""

from __future__ import annotations

import collections
import threading

import attrs

from actorsim._core.budget import Budget


@attrs.frozen
class ModelTraffic:
    """What a run's model calls are doing now and have spent: for a progress line (`Runtime.model_traffic`).

    `in_flight` counts the steps holding a permit of a server the run keeps a limiter for (every
    OpenAI-compatible one), `waiting` those held back for one; `tokens` and `cost` what finished steps spent.
    """

    in_flight: int
    waiting: int
    tokens: int
    cost: float

    def __str__(self) -> str:
        calls = "model call" if self.in_flight == 1 else "model calls"
        shown = f"{self.in_flight} {calls} in flight, {self.waiting} waiting · {self.tokens:,} tokens"
        return shown + (f" · ${self.cost:.4f}" if self.cost else "")


class Spending:
    """The run's tally of tokens and cost, overall and per agent; safe to use from several threads."""

    def __init__(self, budget: Budget | None) -> None:
        self.budget = budget
        self.tokens = 0
        self.cost = 0.0
        self.per_agent: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def add(self, agent: str, tokens: int, cost: float) -> None:
        with self._lock:
            self.tokens += tokens
            self.cost += cost
            self.per_agent[agent] += tokens

    def spent_for(self, agent: str) -> str | None:
        """What is spent that stops `agent`'s next model call ("tokens: 1,204 of 1,000"), or None if it may go."""
        budget = self.budget
        if budget is None:
            return None
        with self._lock:
            if budget.tokens is not None and self.tokens >= budget.tokens:
                return f"tokens: {self.tokens:,} of {budget.tokens:,}"
            if budget.cost is not None and self.cost >= budget.cost:
                return f"cost: {self.cost:.4f} of {budget.cost:g}"
            if budget.per_agent_tokens is not None and self.per_agent[agent] >= budget.per_agent_tokens:
                return f"{agent}'s tokens: {self.per_agent[agent]:,} of {budget.per_agent_tokens:,}"
        return None
