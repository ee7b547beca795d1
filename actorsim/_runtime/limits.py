"""One limiter per model server for the whole run, kept in the driver.

Every step of every agent is delivered by the driver, whatever process or
Ray node the agent runs in: a step whose agent calls a limited server is
delivered once its server's limiter has room, and holds that permit until
its reply (or failure) comes back. No call pays a round trip for its permit,
the limit holds across processes and nodes, and a permit held by a killed
host comes back when its step ends, as every step does. A step's calls are
made one after another, so a permit per step is a permit per call in flight.

A throttled call (429, 503) gives its permit back and waits for another
(`PermitRequest`): the server's allowance is cut to the calls it was still
serving, its `Retry-After` holds back all its calls, and the allowance rises
back by one for each allowance's worth of calls that succeed, up to where
the server last throttled (and past it, a step at a time, after a quiet
`PROBE_AFTER_S`).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Container, Mapping
from typing import Any

from actorsim.llm import ChatModel, ServerLimits, Throttled, served_by

ServerKey = tuple[str, str]
"""A model server as its limits know it: (`api_base`, `model`)."""

MINUTE_S = 60.0
EPISODE_S = 1.0
"""Throttles closer together than this are one episode: the server's answer to one burst."""
PROBE_AFTER_S = 30.0
"""After this long without a throttle, a learned ceiling below the configured one rises by one call."""


class ServerLimiter:
    """The permits of one server: who holds one, who waits, and what the server allows now."""

    def __init__(self, key: ServerKey, limits: ServerLimits, clock: Callable[[], float]) -> None:
        self.key = key
        self.limits = limits
        self._clock = clock
        self.allowed: int | None = limits.max_concurrency
        """Calls that may be in flight now: the configured limit, or less after a throttle (None: no bound)."""
        self.ceiling: int | None = limits.max_concurrency
        self.in_flight: set[str] = set()
        self.waiting: dict[str, float] = {}  # holder -> when it may go at the earliest, first come first served
        self.paused_until = 0.0
        self._starts: collections.deque[float] = collections.deque()
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self._token_total = 0
        self._successes = 0
        self._last_throttle = -math.inf
        self._admitted: set[str] = set()
        self._left = math.inf  # the fewest calls left in flight at a throttle, this throttling episode
        self.most_in_flight = 0

    def update(self, limits: ServerLimits) -> None:
        self.limits = limits
        if limits.max_concurrency is not None:
            self.allowed = min(self.allowed or limits.max_concurrency, limits.max_concurrency)
            self.ceiling = min(self.ceiling or limits.max_concurrency, limits.max_concurrency)

    def ask(self, holder: str, wait_s: float = 0.0) -> bool:
        """A permit for `holder` now (True), or a place in the queue, to be granted by `grant_due`."""
        now = self._clock()
        if wait_s <= 0 and not self.waiting and self._room(now):
            self._grant(holder, now)
            return True
        self.waiting[holder] = now + wait_s
        return False

    def grant_due(self, among: Container[str]) -> list[str]:
        """Grant the waiting holders `among` these, first come first served, as far as there is room; those granted."""
        now = self._clock()
        granted = []
        for holder, not_before in list(self.waiting.items()):
            if not self._room(now):
                break
            if not_before <= now and holder in among:
                del self.waiting[holder]
                self._grant(holder, now)
                granted.append(holder)
        return granted

    def release(self, holder: str, tokens: int = 0, succeeded: bool = True) -> None:
        """`holder`'s step ended (its permit comes back) after its calls used `tokens`."""
        now = self._clock()
        self.waiting.pop(holder, None)
        self._admitted.discard(holder)
        if holder in self.in_flight:
            self.in_flight.discard(holder)
            if succeeded:
                self._succeeded(now)
        if tokens:
            self._tokens.append((now, tokens))
            self._token_total += tokens

    def admitted(self, holder: str) -> None:
        """`holder`'s call is streaming: the server took it."""
        if holder in self.in_flight:
            self._admitted.add(holder)

    def throttled(self, holder: str, retry_after: float | None, in_place: bool = False) -> bool:
        """The server refused `holder`'s call for being over its limit; True when its allowance changed.

        The server serves at least the calls streaming now (the allowance) and
        at most those left in flight (the fewest seen at any throttle of one
        episode: the ceiling the allowance rises back to).
        """
        now = self._clock()
        if not in_place:  # a call that waits where it is (on a host) keeps its permit
            self.in_flight.discard(holder)
        self._admitted.discard(holder)
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)
        fresh = now - self._last_throttle > EPISODE_S
        self._last_throttle = now
        if fresh:
            self._left = math.inf
        self._left = min(self._left, max(1, len(self.in_flight)))
        allowed = max(1, len(self._admitted & self.in_flight))
        ceiling = max(allowed, int(self._left))
        if self.limits.max_concurrency is not None:
            allowed, ceiling = min(allowed, self.limits.max_concurrency), min(ceiling, self.limits.max_concurrency)
        changed = (allowed, ceiling) != (self.allowed, self.ceiling)
        self.allowed, self.ceiling = allowed, ceiling
        self._successes = 0
        return changed

    def next_due(self) -> float | None:
        """When a waiting holder may be granted without any permit coming back; inf if only a release can;
        None when no one waits."""
        if not self.waiting:
            return None
        now = self._clock()
        if self.allowed is not None and len(self.in_flight) >= self.allowed:
            return math.inf
        due = max(now, self.paused_until, min(self.waiting.values()))
        self._forget_old(now)
        if self.limits.requests_per_minute is not None and len(self._starts) >= self.limits.requests_per_minute:
            due = max(due, self._starts[0] + MINUTE_S)
        if self.limits.tokens_per_minute is not None and self._token_total >= self.limits.tokens_per_minute:
            due = max(due, self._tokens[0][0] + MINUTE_S)
        return due

    def _room(self, now: float) -> bool:
        if now < self.paused_until:
            return False
        if self.allowed is not None and len(self.in_flight) >= self.allowed:
            return False
        self._forget_old(now)
        if self.limits.requests_per_minute is not None and len(self._starts) >= self.limits.requests_per_minute:
            return False
        return self.limits.tokens_per_minute is None or self._token_total < self.limits.tokens_per_minute

    def _grant(self, holder: str, now: float) -> None:
        self.in_flight.add(holder)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        if self.limits.requests_per_minute is not None:
            self._starts.append(now)

    def _succeeded(self, now: float) -> None:
        """Additive increase: one more call in flight per allowance's worth of successes, up to the ceiling."""
        if self.allowed is None:
            return
        if self.allowed >= (self.ceiling or math.inf):
            most = self.limits.max_concurrency or math.inf
            if now - self._last_throttle < PROBE_AFTER_S or self.allowed >= most:
                return
            self.ceiling = self.allowed + 1  # quiet long enough: probe one step past where it last throttled
        self._successes += 1
        if self._successes >= self.allowed:
            self.allowed += 1
            self._successes = 0

    def _forget_old(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= MINUTE_S:
            self._starts.popleft()
        while self._tokens and now - self._tokens[0][0] >= MINUTE_S:
            self._token_total -= self._tokens.popleft()[1]


class Limits:
    """The run's limiters, by server, and which server each agent calls; safe to use from several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._servers: dict[ServerKey, ServerLimiter] = {}
        self._declared: dict[ServerKey, dict[str, tuple[str, int]]] = {}  # limit name -> (agent, value)
        self._server_of: dict[str, ServerLimiter] = {}

    def register(self, agent: str, llm: Mapping[str, Any] | ChatModel) -> None:
        """`agent` calls the server `llm` names: its limits join the server's, or clash with them (ValueError)."""
        served = served_by(llm)
        if served is None:
            return
        key, limits = served
        with self._lock:
            declared = self._declared.setdefault(key, {})
            for name, value in limits.given().items():
                first = declared.get(name)
                if first is not None and first[1] != value and first[0] != agent:
                    raise ValueError(
                        f"agent {agent!r} sets {name}={value} for model {key[1]!r} at {key[0]}, "
                        f"but agent {first[0]!r} set {name}={first[1]}: one server has one limit; give both the same"
                    )
            for name, value in limits.given().items():
                declared.setdefault(name, (agent, value))
            merged = ServerLimits(**{name: value for name, (_, value) in declared.items()})
            limiter = self._servers.get(key)
            if limiter is None:
                limiter = self._servers[key] = ServerLimiter(key, merged, self._clock)
            else:
                limiter.update(merged)
            self._server_of[agent] = limiter

    def server_of(self, agent: str) -> ServerLimiter | None:
        return self._server_of.get(agent)

    def servers(self) -> list[ServerLimiter]:
        with self._lock:
            return list(self._servers.values())

    def ask(self, agent: str, wait_s: float = 0.0) -> bool:
        """A permit for `agent`'s step now (True; also for an agent of no server), or a place in its queue."""
        limiter = self._server_of.get(agent)
        if limiter is None:
            return True
        with self._lock:
            return limiter.ask(agent, wait_s)

    def release(self, agent: str, tokens: int = 0, succeeded: bool = True) -> None:
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                limiter.release(agent, tokens, succeeded)

    def throttled(self, agent: str, notice: Throttled, in_place: bool = False) -> ServerLimiter | None:
        """`agent`'s call was throttled: its server's limiter, if its allowance changed."""
        limiter = self._server_of.get(agent)
        if limiter is None:
            return None
        with self._lock:
            return limiter if limiter.throttled(agent, notice.retry_after, in_place) else None

    def admitted(self, agent: str) -> None:
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                limiter.admitted(agent)

    def grant_due(self, among: Container[str]) -> list[str]:
        """Agents `among` these whose wait is over, across all servers, now holding a permit."""
        with self._lock:
            return [agent for limiter in self._servers.values() for agent in limiter.grant_due(among)]

    def next_due(self) -> float | None:
        """The earliest time a waiting agent may go (inf: only when a permit comes back); None if none waits."""
        with self._lock:
            times = [due for limiter in self._servers.values() if (due := limiter.next_due()) is not None]
        return min(times, default=None)

    def waiting(self) -> int:
        with self._lock:
            return sum(len(limiter.waiting) for limiter in self._servers.values())
