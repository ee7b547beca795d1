"""What a run's model calls have spent, against its budget: kept by the driver, from each call's usage as it ends.

What each model call used (`CallUsed`) comes back to the driver in its
step's stream as soon as the call ends, whatever process or node made it, so
the tally needs no messages of its own. A step that would call a model is
delivered, and its later calls start, only while nothing it is bound by is
spent.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Collection

import attrs

from actorsim._core.budget import Allowance, Budget


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
    """The run's tally of tokens and cost, overall and per agent, and the allowances lent to steps in flight.

    Safe to use from several threads. A step in flight holds an allowance
    (`lend`): its calls use it up as they are counted (`add`), and what it did
    not use comes back when the step ends (`end`). The run lends only what
    it has neither spent nor lent, so the calls of all steps together overshoot
    the budget by at most the call each step makes past its allowance.
    """

    def __init__(self, budget: Budget | None) -> None:
        self.budget = budget
        self.tokens = 0
        self.cost = 0.0
        self.per_agent: collections.Counter[str] = collections.Counter()
        self._lent: dict[str, list[float]] = {}  # per agent (a step at a time), its allowance's tokens and cost left
        self._lent_tokens = 0.0
        self._lent_cost = 0.0
        self._lock = threading.Lock()

    def add(self, agent: str, tokens: int, cost: float) -> None:
        with self._lock:
            self.tokens += tokens
            self.cost += cost
            self.per_agent[agent] += tokens
            if (left := self._lent.get(agent)) is not None:
                used_tokens, used_cost = min(tokens, left[0]), min(cost, left[1])
                left[0] -= used_tokens
                left[1] -= used_cost
                self._lent_tokens -= used_tokens
                self._lent_cost -= used_cost

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

    def lend(self, agents: Collection[str], *, unless_spare: bool = False) -> dict[str, Allowance] | None:
        """An allowance for each of `agents`' steps, about to go (None: no budget, no bound).

        Each gets a share of what is neither spent nor lent, split as if the
        steps in flight were twice as many: what is left to lend shrinks as
        the budget runs out, and is never all lent. `unless_spare`: an empty
        dict, lending nothing, if nothing is spare (all of it is lent).
        """
        budget = self.budget
        if budget is None:
            return None
        with self._lock:
            for agent in agents:
                self._end(agent)
            spare_tokens = budget.tokens - self.tokens - self._lent_tokens if budget.tokens is not None else None
            spare_cost = budget.cost - self.cost - self._lent_cost if budget.cost is not None else None
            if unless_spare and any(spare is not None and spare <= 0 for spare in (spare_tokens, spare_cost)):
                return {}
            shares = 2 * max(1, len(self._lent) + len(agents))
            tokens = max(0.0, spare_tokens) / shares if spare_tokens is not None else None
            cost = max(0.0, spare_cost) / shares if spare_cost is not None else None
            lent = {}
            for agent in agents:
                mine = tokens
                if budget.per_agent_tokens is not None:
                    own = max(0.0, budget.per_agent_tokens - self.per_agent[agent])
                    mine = own if mine is None else min(mine, own)
                lent[agent] = Allowance(mine, cost)
                self._lent[agent] = [mine or 0.0, cost or 0.0]
                self._lent_tokens += mine or 0.0
                self._lent_cost += cost or 0.0
            return lent

    def end(self, agent: str) -> None:
        """`agent`'s step ended: what its allowance has left is the run's to lend again."""
        with self._lock:
            self._end(agent)

    def _end(self, agent: str) -> None:
        if (left := self._lent.pop(agent, None)) is not None:
            self._lent_tokens -= left[0]
            self._lent_cost -= left[1]
