"""A step's side of its model servers' limiters (`actorsim._runtime.limits`): held-back deliveries, paused calls."""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any

from actorsim._core.ref import ActorRef
from actorsim._protocol.agent import ResumeStep
from actorsim._runtime.runtime import Runtime
from actorsim.llm import Permit, PermitRequest, Throttled

NOTICE_EVERY_S = 1.0
"""Notices of a throttling server come at most this often: a swarm's hundreds of throttled calls make one."""
notices = logging.getLogger("actorsim")


class StepPermits:
    """A step's side of its model servers' limiters: which deliveries wait for a permit, and which paused calls.

    A step is delivered once its agent's server has room (`Runtime.limits`),
    and gives its permit back when its reply or failure comes: whatever
    happens to the agent's process, the step ends and the permit comes back.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.limits = runtime.limits
        self.arrivals: collections.deque[tuple[ActorRef, Any]] = collections.deque()
        self._held: dict[str, tuple[ActorRef, Any]] = {}  # deliveries waiting for a permit
        self._paused: dict[str, tuple[str, float, Throttled | None]] = {}  # throttled calls: reply id, since, why
        self._names: set[str] = set()
        self._last_notice: dict[tuple[str, str], float] = {}
        self._throttles: dict[str, Throttled] = {}

    def first_deliveries(self, calls: list[tuple[ActorRef, Any]]) -> list[tuple[ActorRef, Any]]:
        """The calls that may go now; the others are held back until `let_go` finds them a permit."""
        now = []
        for ref, request in calls:
            self._names.add(ref.name)
            if self.limits.ask(ref.name):
                now.append((ref, request))
            else:
                self._held[ref.name] = (ref, request)
        if self._held:
            self.runtime.log("llm.limit.waiting", flush=False, agents=len(self._held), delivered=len(now))
        return now

    def held_back(self) -> float | None:
        return self.limits.next_due() if self._held or self._paused else None

    def let_go(self, resumed: collections.deque[tuple[str, Any]]) -> None:
        """Deliver the held-back steps and resume the paused calls whose permit has come."""
        if not (self._held or self._paused):
            return
        for name in self.limits.grant_due(self._held.keys() | self._paused.keys()):
            if name in self._held:
                self.arrivals.append(self._held.pop(name))
            else:
                reply_id, since, why = self._paused.pop(name)
                self.runtime.log(
                    "llm.call.throttled", flush=False, actor=name, reply_id=reply_id, waited_s=time.monotonic() - since,
                    **({"status": why.status, "retry_after_s": why.retry_after, "api_base": why.server} if why else {}),
                )
                resumed.append((name, ResumeStep(reply_id, Permit())))

    def admitted(self, name: str) -> None:
        self.limits.admitted(name)

    def throttled(self, name: str, notice: Throttled) -> None:
        """The server refused `name`'s call: its permit comes back, and its server's limit may be cut."""
        self._throttles[name] = notice
        limiter = self.limits.throttled(name, notice)
        if limiter is None:
            return
        self.runtime.log(
            "llm.limit.cut", flush=False, api_base=limiter.key[0], model=limiter.key[1], allowed=limiter.allowed,
            ceiling=limiter.ceiling, in_flight=len(limiter.in_flight), retry_after_s=notice.retry_after,
        )
        now = time.monotonic()
        if now - self._last_notice.get(limiter.key, -math.inf) >= NOTICE_EVERY_S:  # one notice, not one per agent
            self._last_notice[limiter.key] = now
            resume = f"; calls resume in {notice.retry_after:g} s" if notice.retry_after else ""
            notices.warning(
                "model server at %s (%s) %s: at most %d calls in flight now%s",
                limiter.key[0], limiter.key[1], notice.problem, limiter.allowed or 0, resume,
            )

    def wait(
        self, name: str, reply_id: str, request: PermitRequest, resumed: collections.deque[tuple[str, Any]]
    ) -> None:
        """A throttled call asks to go again: at once if its server has room, else once `let_go` grants it."""
        if self.limits.ask(name, request.wait_s):
            resumed.append((name, ResumeStep(reply_id, Permit())))
        else:
            self._paused[name] = (reply_id, time.monotonic(), self._throttles.pop(name, None))

    def redelivered(self, name: str) -> None:
        """A crashed step delivered again starts afresh: a call it had paused will not be resumed."""
        if self._paused.pop(name, None) is not None:
            self.limits.release(name, succeeded=False)

    def release(self, name: str, tokens: int = 0, succeeded: bool = True) -> None:
        self.limits.release(name, tokens, succeeded)

    def end(self) -> None:
        """The step is over, however it ended: every permit it holds or waits for goes back."""
        for name in self._names:
            self.limits.release(name, succeeded=False)
