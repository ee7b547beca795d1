"""One limiter per model server for the whole run, kept in the driver.

Every step of every agent is delivered by the driver, whatever process or
Ray node the agent runs in: a step whose agent calls a limited server is
delivered once its server's limiter has room, and holds that permit until
its reply (or failure) comes back. No call pays a round trip for its permit,
the limit holds across processes and nodes, and a permit held by a killed
host comes back when its step ends, as every step does. A step's calls are
made one after another, so a permit per step is a permit per call in flight.
Hosts are lent permits for a batch of more steps than that (`Lease`): as
one ends, its permit passes to a step of its batch still to end
(`hand_over`), which its host starts without waiting for the driver.

A throttled call (429, 503) gives its permit back and waits for another
(`PermitRequest`); how the server's allowance falls and rises again is
`actorsim.llm._limiter.ServerLimiter`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Container, Mapping
from typing import Any

from actorsim.llm import ChatModel, ServerLimits, Throttled, served_by
from actorsim.llm._limiter import ServerKey, ServerLimiter, Window


class Limits:
    """The run's limiters, by server, and which server each agent calls; safe to use from several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, slow_start: int | None = None) -> None:
        """`slow_start`: how many calls a server whose limit is not given takes at first (`ServerLimiter`)."""
        self._clock = clock
        self._slow_start = slow_start
        self._lock = threading.RLock()
        self._servers: dict[ServerKey, ServerLimiter] = {}
        self._declared: dict[ServerKey, dict[str, tuple[str, int]]] = {}  # limit name -> (agent, value)
        self._callers: dict[ServerKey, set[str]] = {}
        self._server_of: dict[str, ServerLimiter] = {}

    def register(self, agent: str, llm: Mapping[str, Any] | ChatModel) -> None:
        """`agent` calls the server `llm` names: its limits join the server's, or clash with them (ValueError)."""
        served = served_by(llm)
        if served is None:
            return
        key, limits = served
        with self._lock:
            if (before := self._server_of.get(agent)) is not None and before.key != key:
                self.forget(agent)
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
                limiter = self._servers[key] = ServerLimiter(key, merged, self._clock, self._slow_start)
            else:
                limiter.update(merged)
            self._server_of[agent] = limiter
            self._callers.setdefault(key, set()).add(agent)

    def forget(self, agent: str) -> None:
        """`agent` is stopped: a permit it holds or waits for is let go, and a server no agent calls any more
        goes with its limits and what its throttles taught, so that agents added later may give others."""
        with self._lock:
            limiter = self._server_of.pop(agent, None)
            if limiter is None:
                return
            limiter.release(agent, succeeded=False)  # its process is stopped, and its call with it
            callers = self._callers.get(limiter.key, set())
            callers.discard(agent)
            if not callers:
                self._callers.pop(limiter.key, None)
                self._declared.pop(limiter.key, None)
                self._servers.pop(limiter.key, None)

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

    def release(self, agent: str, tokens: int = 0, succeeded: bool = True) -> ServerLimiter | None:
        """`agent`'s step ended: its server's limiter, if its allowance changed (`ServerLimiter.release`)."""
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                return limiter if limiter.release(agent, tokens, succeeded) else None
        return None

    def hand_over(self, agent: str, to: str, tokens: int = 0, succeeded: bool = True) -> ServerLimiter | None:
        """`agent`'s step ended: its permit goes to `to`'s, which calls the same server (`ServerLimiter.hand_over`);
        its server's limiter, if its allowance changed."""
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                return limiter if limiter.hand_over(agent, to, tokens, succeeded) else None
        return None

    def served(self, agent: str, window: Window) -> None:
        """One of `agent`'s calls was answered, sent and ended at these times (`ServerLimiter.served`)."""
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                limiter.served(window)

    def ride(self, agent: str) -> None:
        """`agent`'s step goes with a batch lent permits, to take one of them (`ServerLimiter.ride`)."""
        if (limiter := self._server_of.get(agent)) is not None:
            with self._lock:
                limiter.ride(agent)

    def throttled(self, agent: str, notice: Throttled, in_place: bool = False) -> ServerLimiter | None:
        """`agent`'s call was throttled: its server's limiter, if its allowance changed."""
        limiter = self._server_of.get(agent)
        if limiter is None:
            return None
        with self._lock:
            changed = limiter.throttled(
                agent, notice.retry_after, in_place, notice.window, pauses_server=notice.pauses_server
            )
            return limiter if changed else None

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
        """Steps not yet holding a permit: held back, or gone to their host to take one of its batch's."""
        with self._lock:
            return sum(len(limiter.waiting) + len(limiter.riding) for limiter in self._servers.values())
