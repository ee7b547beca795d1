"""What a model server allows now: permits first come first served, and an allowance learned from its 429s.

One algorithm for two places: the run's driver keeps one of these per server
for every agent of the run (`actorsim._runtime.limits`), and a host keeps one
per server for the calls its threads make (`actorsim.llm._gate`). A throttled
call gives its permit back and waits for another: the server's allowance is
cut to the calls it was still serving, the refused call waits out its
`Retry-After` (every call of the server does when the server's answer is for
all of them: `Throttled.pauses_server`), and the allowance rises back by one
for each allowance's worth of calls that succeed (at once, once the calls the
server was serving when it refused are counted), up to the most the server was
seen to serve at once (and past it, a step at a time, after a quiet
`PROBE_AFTER_S`).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Container

from actorsim.llm._limits import ServerLimits

ServerKey = tuple[str, str]
"""A model server as its limits know it: (`api_base`, `model`)."""

MINUTE_S = 60.0
EPISODE_S = 1.0
"""Throttles closer together than this are one episode: the server's answer to one burst."""
PROBE_AFTER_S = 30.0
"""After this long without a throttle, a learned ceiling below the configured one rises by one call."""
SERVED_KEPT_S = 30.0
"""How long the times of a served call are kept, to count what the server was serving when it refused a call."""

Window = tuple[float, float]
"""When a try was sent and when its answer ended (the 429, or the reply's last byte), in wall-clock seconds: the
clock every process of a machine shares, and a cluster's nodes keep within milliseconds of each other."""


class ServerLimiter:
    """The permits of one server: who holds one, who waits, and what the server allows now."""

    def __init__(
        self, key: ServerKey, limits: ServerLimits, clock: Callable[[], float], slow_start: int | None = None,
        *, rises_back: bool = True,
    ) -> None:
        """`slow_start`: with no `max_concurrency` given, the calls let go at first (None: all), one more for each
        that succeeds (twice as many each round) until the server throttles, as TCP's slow start.

        `rises_back=False`: a throttle's cut is where the allowance stays (but for a quiet `PROBE_AFTER_S`), for
        a limiter that sees a share of the server's calls only: each of several rising back to what it saw
        its share serve may add up to more than the server takes."""
        self.key = key
        self.limits = limits
        self._clock = clock
        self._slow_start = slow_start
        self._rises_back = rises_back
        self.allowed: int | None = limits.max_concurrency or slow_start
        """Calls that may be in flight now: the configured limit, or less after a throttle (None: no bound)."""
        self.ceiling: int | None = limits.max_concurrency
        self.in_flight: set[str] = set()
        self.waiting: dict[str, float] = {}  # holder -> when it may go at the earliest, first come first served
        self.riding: set[str] = set()  # delivered with a batch lent permits, to run on one of them (`hand_over`)
        self.paused_until = 0.0
        self._starts: collections.deque[float] = collections.deque()
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self._token_total = 0
        self._successes = 0
        self._last_throttle = -math.inf
        self._episode_began = -math.inf
        self._admitted: set[str] = set()
        self._episode: set[str] = set()  # the calls in flight when this throttling episode began
        self._episode_refused: set[str] = set()  # those of them the server refused since
        self._seen = 0  # the most calls seen streaming at once
        self.most_in_flight = 0
        self._served: collections.deque[Window] = collections.deque()  # calls the server answered, as heard
        self._refusals: list[Window] = []  # refusals whose count of what the server was serving is still open
        self._counts: list[int] = []  # for each, the calls heard so far to have been at the server then
        self._unheard: set[str] = set()  # the steps whose calls may still add to that count
        self._measured: int | None = None  # the most calls it was counted serving when it refused one

    def update(self, limits: ServerLimits) -> None:
        self.limits = limits
        if limits.max_concurrency is not None:
            # Slow start (no ceiling yet) is for a server whose limit is not known: a limit given replaces it.
            learnt = self.allowed if self.ceiling is not None else None
            self.allowed = min(learnt or limits.max_concurrency, limits.max_concurrency)
            self.ceiling = min(self.ceiling or limits.max_concurrency, limits.max_concurrency)

    def ask(self, holder: str, wait_s: float = 0.0) -> bool:
        """A permit for `holder` now (True), or a place in the queue, to be granted by `grant_due`."""
        now = self._clock()
        # First come, first served among those that may go now: a refused call waiting out its own Retry-After
        # does not hold back a new one.
        if wait_s <= 0 and self._room(now) and not any(not_before <= now for not_before in self.waiting.values()):
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

    def release(self, holder: str, tokens: int = 0, succeeded: bool = True) -> bool:
        """`holder`'s step ended (its permit comes back) after its calls used `tokens`; True when the allowance
        changed, the server's refusals counted (`_count_refusals`)."""
        now = self._clock()
        self.waiting.pop(holder, None)
        self.riding.discard(holder)
        self._admitted.discard(holder)
        if holder in self.in_flight:
            self.in_flight.discard(holder)
            if succeeded:
                self._succeeded(now)
        if tokens:
            self._tokens.append((now, tokens))
            self._token_total += tokens
        self._unheard.discard(holder)
        return bool(self._refusals) and not self._unheard and self._count_refusals()

    def hand_over(self, holder: str, to: str, tokens: int = 0, succeeded: bool = True) -> bool:
        """`holder`'s step ended and `to`, a step delivered with it, takes its permit, before any holder waiting
        and whatever the allowance is now: its host goes on with the permits its batch was lent (`Lease`)."""
        changed = self.release(holder, tokens, succeeded)
        self.riding.discard(to)
        self._grant(to, self._clock())
        return changed

    def ride(self, holder: str) -> None:
        """`holder` no longer waits for a permit of its own: it goes with a batch, to take one of the batch's."""
        self.waiting.pop(holder, None)
        self.riding.add(holder)

    @property
    def idle(self) -> bool:
        """No holder in flight or waiting."""
        return not self.in_flight and not self.waiting

    @property
    def streaming(self) -> int:
        """Calls in flight that the server took (a call leaves `_admitted` when it leaves `in_flight`)."""
        return len(self._admitted)

    def served(self, window: Window) -> None:
        """A call was answered: sent and ended at these times (`Window`), for `_count_refusals`."""
        self._served.append(window)
        for n, refusal in enumerate(self._refusals):
            self._counts[n] += _was_serving(window, refusal)
        while self._served and self._served[0][1] < window[1] - SERVED_KEPT_S:
            self._served.popleft()

    def _counted_so_far(self) -> float:
        """While refusals are still counted, the calls heard so far to have been at the server then: it served
        as many at once, at least (no refusal counted: no bound)."""
        return max(self._counts, default=math.inf)

    def _count_refusals(self) -> bool:
        """Every call that may have been at the server when it refused the calls of `_refusals` is heard of:
        the fewest it may then have served is its limit (a bound on it, as the clocks go), unless a throttle
        taught less, and the allowance rises to it at once.

        The ceiling an episode gives (`throttled`) is the calls in flight less
        those refused; a burst whose calls do not all reach the server at once
        makes that one or two too many, and each try past the server's limit
        costs a refusal and its `Retry-After`. Each refusal's count is a bound
        from above too: a call that ended at the server just before the refused
        try came is heard to end after it was sent. The server was full at each
        refusal, so the smallest count is the closest bound; the largest (as
        counted before) was one or two too high in a burst of dozens of
        refusals, and the calls past it were refused after the first second.
        """
        # A refusal when it was heard to serve nothing was not for being full (a pause, a rate): no bound.
        limit = min((count for count in self._counts if count >= 1), default=None)
        self._refusals.clear()
        self._counts.clear()
        if limit is None or self.ceiling is None:
            return False
        self._measured = min(limit, self._measured or limit)
        ceiling = min(self.ceiling, limit)
        # Found to serve that many when full: the allowance goes there at once. The cut at the throttle counted
        # the calls heard streaming, which the driver hears of hosted calls late (on Thespian it cut to 1 while
        # 10 were at the server), and rising back a call per allowance's worth of successes took 1.6 s of a
        # 12 s step. A share's own limiter keeps its cut (`rises_back`).
        allowed = ceiling if self._rises_back else min(self.allowed or ceiling, ceiling)
        changed = (allowed, ceiling) != (self.allowed, self.ceiling)
        self.allowed, self.ceiling = allowed, ceiling
        return changed

    def unlearn(self) -> None:
        """Forget what the server's throttles taught (not a pause it asked for): its allowance is as at first."""
        self.allowed = self.limits.max_concurrency or self._slow_start
        self.ceiling = self.limits.max_concurrency
        self._successes = 0
        self._episode.clear()
        self._episode_refused.clear()
        self._seen = 0
        self._refusals.clear()
        self._counts.clear()
        self._unheard.clear()
        self._measured = None

    def admitted(self, holder: str) -> None:
        """`holder`'s call is streaming: the server took it, and as many as stream now at once, it takes."""
        if holder in self.in_flight:
            self._admitted.add(holder)
            self._seen = max(self._seen, self.streaming)
            streaming = min(self.streaming, self._measured or self.streaming, *self._counts)
            if self.allowed is not None and self.ceiling is not None and streaming > self.allowed:
                self.allowed = streaming  # after a cut made before these calls were known to stream
                self.ceiling = max(self.ceiling, streaming)

    def throttled(
        self, holder: str, retry_after: float | None, in_place: bool = False, window: Window | None = None, *,
        pauses_server: bool = False,
    ) -> bool:
        """The server refused `holder`'s call for being over its limit; True when its allowance changed.

        The server serves at least the calls streaming now (the allowance), and
        the ceiling the allowance rises back to is the most seen streaming at
        once, but no more than the calls in flight when the episode of
        throttles began less those it refused: a call that ended meanwhile was
        served, however late its end is heard. An episode is the refusals of
        the calls that were in flight when it began, each heard within
        `EPISODE_S` of the one before. Past the ceiling, only a quiet
        `PROBE_AFTER_S` lets it rise: a server found full is not tried again
        and again.

        A call throttled on a host (`in_place`) keeps its permit. The driver
        hears that a hosted call streams only as its host's batch sends the
        call's items on, late and in bunches on a busy machine, so what it saw
        streaming says little: the ceiling is then the episode's count alone
        (the allowance is still cut to the calls streaming, and each host's
        gate cuts its own share at once).
        Nor does it know which of a batch's steps run on the permits lent to it
        (`Lease`): an episode of hosted calls is the refusals heard within
        `EPISODE_S` of its first, one call's twice ending it.

        With the refused try's `window`, once every step that was in flight
        has ended, the calls the server was then serving are counted from
        their own times: a ceiling above that count comes down to it.

        `retry_after` holds back every call of the server only when the
        server's answer is for all of them (`pauses_server`, see `Throttled`);
        else the refused call waits it out alone (its `ask` or gate's `enter`
        with the wait) and the cut holds back the rest: a burst's overflow,
        refused by a server that is full, does not idle the server.
        """
        now = self._clock()
        if in_place:  # the permits are its batch's, whichever of its steps the driver names as holding them
            fresh = now - self._episode_began > EPISODE_S or holder in self._episode_refused
        else:  # a refusal of a call sent after the episode began, or refused in it already: the server full again
            fresh = (now - self._last_throttle > EPISODE_S or holder not in self._episode
                     or holder in self._episode_refused)
        self._last_throttle = now
        if fresh:
            self._episode = set(self.in_flight) if in_place else self.in_flight | {holder}
            self._episode_began = now
            self._episode_refused = set()
        if holder in self._episode or in_place:
            self._episode_refused.add(holder)
        left = max(1, len(self._episode) - len(self._episode_refused))  # what it served when it began to refuse
        if not in_place:  # a call that waits where it is (on a host) keeps its permit
            self.in_flight.discard(holder)
        self._admitted.discard(holder)
        if retry_after and pauses_server:
            self.paused_until = max(self.paused_until, now + retry_after)
        allowed = max(1, self.streaming)
        ceiling = max(allowed, left if in_place else min(left, self._seen)) if self._rises_back else allowed
        for bound in (self.limits.max_concurrency, self._measured):
            if bound is not None:
                allowed, ceiling = min(allowed, bound), min(ceiling, bound)
        changed = (allowed, ceiling) != (self.allowed, self.ceiling)
        self.allowed, self.ceiling = allowed, ceiling
        self._successes = 0
        if window is not None:
            self._refusals.append(window)
            self._counts.append(sum(_was_serving(call, window) for call in self._served))
            self._unheard |= (self.in_flight | self.riding) - self._episode_refused
        self._unheard.discard(holder)  # refused: what else its step had the server serve is heard of already
        if self._refusals and not self._unheard:
            changed = self._count_refusals() or changed
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
        if self.ceiling is None:  # slow start: nothing throttled yet, and no limit given
            self.allowed += 1
            return
        if self.allowed >= self._counted_so_far():
            return  # while its refusals are counted, no more than the server was heard to serve then
        if self.allowed >= self.ceiling:
            most = self.limits.max_concurrency or math.inf
            if now - self._last_throttle < PROBE_AFTER_S or self.allowed >= most:
                return
            self.ceiling = self.allowed + 1  # quiet long enough: probe one step past where it last throttled
            self._measured = None
        self._successes += 1
        if self._successes >= self.allowed:
            self.allowed += 1
            self._successes = 0

    def _forget_old(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= MINUTE_S:
            self._starts.popleft()
        while self._tokens and now - self._tokens[0][0] >= MINUTE_S:
            self._token_total -= self._tokens.popleft()[1]


def _was_serving(call: Window, refusal: Window) -> bool:
    """Whether the server may have been serving `call` when it refused: sent before the refusal came back, and
    ended after the refused try was sent."""
    sent, ended = call
    asked, refused = refusal
    return sent <= refused and ended >= asked
