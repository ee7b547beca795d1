"""A step's side of its model servers' limiters (`actorsim._runtime.limits`): held-back deliveries, paused calls."""

from __future__ import annotations

import collections
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import attrs

from actorsim._core.budget import NOTHING, CallUsed, SpendCheck, Spent
from actorsim._core.ref import ActorRef
from actorsim._protocol.agent import ResumeStep, Retrying
from actorsim._runtime.runtime import Runtime
from actorsim.llm import Permit, PermitRequest, Throttled
from actorsim.llm._gate import Lease
from actorsim.llm._limiter import ServerKey, ServerLimiter

NOTICES_A_SECOND = 3
"""Throttled calls of one server shown each second, at most: a swarm's hundreds make a few lines, not hundreds."""
notices = logging.getLogger("actorsim")
STEPS_PER_PERMIT = 8
"""A host lent k permits of a server gets up to this many times k of its steps in one batch (`Lease`): one batch
of many calls in turn, not a driver's round trip after each few. Fewer near a step's end, where the steps held
back are few: a permit passed on within its batch cannot go to another host's steps."""


class StepPermits:
    """A step's side of its model servers' limiters: which deliveries wait for a permit, and which paused calls.

    A step is delivered once its agent's server has room (`Runtime.limits`),
    and gives its permit back when its reply or failure comes: whatever
    happens to the agent's process, the step ends and the permit comes back.
    A step that would call a model is not delivered at all once the run's
    budget is spent (`Runtime.spending`): `on_blocked(name)` is told, and
    `blocked` says what was spent. A step goes with an allowance lent by
    `Runtime.spending`; a later model call past it asks first (`spend_check`),
    and once the budget is spent the step is withdrawn.

    A host's batch takes more of its steps than the permits it is lent: the
    others ride on them (`Lease`), and as a step ends, its permit passes to
    one of its batch still to end. Not where a run has a budget, whose check
    comes at delivery, nor to a server limited per minute, whose pace the
    driver keeps, nor while a server's unknown limit is sought (slow start).
    A host runs its batches side by side: a permit that comes back goes out
    at once, to whichever host holds the next step waiting.
    """

    def __init__(
        self, runtime: Runtime, calls_model: Callable[[str], bool], on_blocked: Callable[[str], None]
    ) -> None:
        self.runtime = runtime
        self.limits = runtime.limits
        self.spending = runtime.spending
        self._calls_model = calls_model
        self._on_blocked = on_blocked
        self.blocked: dict[str, str] = {}  # steps not delivered, for the budget: what was spent
        # Hosted agents: a throttled call waits on its host (`actorsim.llm._gate`), keeping its permit.
        self._hosted = runtime.hosts_agents
        self._host_of = runtime.host_of
        self._held_on: dict[int | None, dict[str, None]] = collections.defaultdict(dict)  # per host, steps held back
        self._waiting: collections.Counter[ServerKey] = collections.Counter()  # per server, its steps held back
        self._leases = itertools.count(1)
        self._riders: dict[Lease, dict[str, None]] = {}  # per batch's lease, its steps riding on it
        self._riding: dict[str, Lease] = {}  # the steps riding, and the lease they ride on
        self._holding: dict[str, Lease] = {}  # the steps holding a permit lent with a batch, and its lease
        self.arrivals: collections.deque[tuple[ActorRef, Any]] = collections.deque()
        self._held: dict[str, tuple[ActorRef, Any]] = {}  # deliveries waiting for a permit
        self._paused: dict[str, tuple[str, float, Throttled | None]] = {}  # throttled calls: reply id, since, why
        self._names: set[str] = set()
        self._last_notice: dict[tuple[str, str], float] = {}  # when each server's allowance was last shown
        self._shown: dict[str, tuple[float, int]] = {}  # per server: this second's start, notices shown in it
        self._throttles: dict[str, Throttled] = {}
        self._tokens: collections.Counter[str] = collections.Counter()  # per step, what its calls used so far
        self._checks: dict[str, tuple[str, SpendCheck]] = {}  # later calls waiting for the budget's lent share back

    def first_deliveries(self, calls: list[tuple[ActorRef, Any]]) -> list[tuple[ActorRef, Any]]:
        """The calls that may go now; the others are held back until `let_go` finds them a permit."""
        now = []
        for ref, request in calls:
            self._names.add(ref.name)
            if self._over_budget(ref.name):
                continue
            if self.limits.ask(ref.name):
                now.append((ref, request))
            else:
                self._hold(ref, request)
        now = self._with_riders(now)
        if self._held:
            self.runtime.log("llm.limit.waiting", flush=False, agents=len(self._held), delivered=len(now))
        return self._lent(now)

    def _with_riders(self, going: list[tuple[ActorRef, Any]]) -> list[tuple[ActorRef, Any]]:
        """The steps let go, and with each host's, up to `STEPS_PER_PERMIT` times as many of its steps held back,
        all with the `Lease` of the permits they go with."""
        if not self._hosted or self.spending.budget is not None:
            return going
        holders: dict[tuple[int | None, ServerLimiter], list[str]] = collections.defaultdict(list)
        for ref, _ in going:
            limiter = self.limits.server_of(ref.name)
            host = self._host_of(ref.name)
            if limiter is not None and host is not None and _paced_by_host(limiter):
                holders[host, limiter].append(ref.name)
        leases: dict[str, Lease] = {}
        for (host, limiter), names in holders.items():
            lease = Lease(limiter.key, len(names), next(self._leases))
            leases.update(dict.fromkeys(names, lease))
            self._holding.update(dict.fromkeys(names, lease))
            # Near the step's end, a permit takes only its fair share of the steps still held for its server: the
            # last steps spread over every permit, not queued behind a few.
            share = self._waiting[limiter.key] // max(1, limiter.allowed or 1)
            same_server = (name for name in self._held_on[host] if self.limits.server_of(name) is limiter)
            taken = list(itertools.islice(same_server, min(STEPS_PER_PERMIT - 1, share) * len(names)))
            if taken:
                self._riders[lease] = dict.fromkeys(taken)
            for name in taken:
                going.append(self._unhold(name))
                self.limits.ride(name)
                self._riding[name] = lease
                leases[name] = lease
            self.runtime.log("llm.limit.lent", flush=False, host=host, api_base=limiter.key[0], model=limiter.key[1],
                             permits=len(names), steps=len(names) + len(taken))
        return [(ref, attrs.evolve(request, lease=leases[ref.name]) if ref.name in leases else request)
                for ref, request in going]

    def _lent(self, calls: list[tuple[ActorRef, Any]]) -> list[tuple[ActorRef, Any]]:
        """The steps about to go, each with its allowance of the budget (`Spending.lend`)."""
        if self.spending.budget is None:
            return calls
        callers = [ref.name for ref, _ in calls if self._calls_model(ref.name)]
        lent = self.spending.lend(callers) if callers else None
        if lent is None:
            return calls
        # A replay asks at each call the recording stopped, whatever the run lends (`Intervention.budget_stops`).
        stops = self.runtime.interventions.budget_stops
        return [
            (ref, attrs.evolve(request, allowance=NOTHING if stops(request.reply_id) else lent[ref.name]))
            if ref.name in lent else (ref, request)
            for ref, request in calls
        ]

    def held_back(self) -> float | None:
        """When to look again for steps held back (see `Limits.next_due`); None when none are."""
        due = self._permit_due()
        if self._checks:  # a share of the budget comes back when a step answers: its items say so
            return math.inf if due is None else due
        return due

    def _permit_due(self) -> float | None:
        if not (self._held or self._paused):
            return None
        return self.limits.next_due()

    def let_go(self, resumed: collections.deque[tuple[str, Any]]) -> None:
        """Deliver the held-back steps and resume the paused calls whose permit has come."""
        self._check_again(resumed)
        if not (self._held or self._paused):
            return
        going = []
        for name in self.limits.grant_due(_MayGo(self)):
            if name in self._held:
                call = self._unhold(name)
                if self._over_budget(name):  # spent while it waited
                    self._cut(self.limits.release(name, succeeded=False))
                    continue
                going.append(call)
            else:
                reply_id, since, why = self._paused.pop(name)
                self.runtime.log(
                    "llm.call.throttled", flush=False, actor=name, reply_id=reply_id, waited_s=time.monotonic() - since,
                    **({"status": why.status, "retry_after_s": why.retry_after, "api_base": why.server} if why else {}),
                )
                resumed.append((name, ResumeStep(reply_id, Permit())))
        self.arrivals.extend(self._lent(self._with_riders(going)))

    def admitted(self, name: str) -> None:
        self.limits.admitted(name)

    def throttled(self, name: str, role: str, notice: Throttled) -> None:
        """The server refused `name`'s call: its permit comes back, and its server's limit may be cut.

        People are told as they are of any retry, but of a swarm's hundreds of
        throttled calls only the first `NOTICES_A_SECOND` each second.
        """
        self._throttles[name] = notice
        now = time.monotonic()
        second, shown = self._shown.get(notice.server, (now, 0))
        if now - second >= 1.0:
            second, shown = now, 0
        if shown < NOTICES_A_SECOND:
            notices.warning("%s", Retrying(role, notice))
        elif shown == NOTICES_A_SECOND:
            notices.warning("model server at %s: more of its calls are throttled; their notices are held back "
                            "for a second", notice.server)
        self._shown[notice.server] = (second, shown + 1)
        self._cut(self.limits.throttled(name, notice, in_place=self._hosted),
                  notice.retry_after if notice.pauses_server else None)

    def _cut(self, limiter: ServerLimiter | None, retry_after: float | None = None) -> None:
        """The server's allowance changed: logged, and shown once a second at most."""
        if limiter is None:
            return
        self.runtime.log(
            "llm.limit.cut", flush=False, api_base=limiter.key[0], model=limiter.key[1], allowed=limiter.allowed,
            ceiling=limiter.ceiling, in_flight=len(limiter.in_flight), retry_after_s=retry_after,
        )
        now = time.monotonic()
        if now - self._last_notice.get(limiter.key, -math.inf) >= 1.0:
            self._last_notice[limiter.key] = now
            resume = f"; its calls resume in {retry_after:g} s" if retry_after else ""
            notices.warning("model server at %s (%s): at most %d calls in flight now%s",
                            limiter.key[0], limiter.key[1], limiter.allowed or 0, resume)

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
            self._cut(self.limits.release(name, succeeded=False))

    def _over_budget(self, name: str) -> bool:
        """Whether the budget stops `name`'s step; logged once a step, with what was spent."""
        spent = self.spending.spent_for(name) if self._calls_model(name) else None
        if spent is None:
            return False
        self._spent(name, spent)
        self._on_blocked(name)
        return True

    def _spent(self, name: str, spent: str) -> None:
        if not self.blocked:
            self.runtime.log("budget.exhausted", spent=spent, spent_tokens=self.spending.tokens,
                             spent_cost=self.spending.cost, agent=name)
        self.blocked[name] = spent

    def used(self, name: str, used: CallUsed) -> None:
        """One of `name`'s model calls ended: the budget counts what it used now, its server's limiter when it
        was served."""
        self._tokens[name] += used.tokens
        self.spending.add(name, used.tokens, used.cost)
        if used.served is not None:
            self.limits.served(name, used.served)

    def spend_check(
        self, name: str, reply_id: str, check: SpendCheck, resumed: collections.deque[tuple[str, Any]]
    ) -> None:
        """`name`'s step used its allowance and would call its model again: it goes on with a new one, or,
        once the budget is spent, is withdrawn.

        While all that is not spent is lent to other steps, it waits for one
        of them to end. A replay answers as the recording did.
        """
        recorded = self.runtime.interventions.spend_check(reply_id, check.call)
        if recorded is not None:
            outcome: Any = Spent(recorded.value) if recorded.value is not None else NOTHING
        elif (spent := self.spending.spent_for(name)) is not None:
            outcome = Spent(spent)
        elif lent := self.spending.lend([name], unless_spare=True):
            outcome = lent[name]
        else:
            self._checks[name] = (reply_id, check)
            return
        if isinstance(outcome, Spent):
            self._spent(name, outcome.what)
            self.runtime.log("budget.call_refused", actor=name, reply_id=reply_id, call=check.call, spent=outcome.what)
        resumed.append((name, ResumeStep(reply_id, outcome)))

    def _check_again(self, resumed: collections.deque[tuple[str, Any]]) -> None:
        """The later calls waiting for a lent share: asked again, now that a step may have given its share back."""
        for name, (reply_id, check) in list(self._checks.items()):
            del self._checks[name]
            self.spend_check(name, reply_id, check, resumed)

    def replied(self, name: str) -> None:
        """`name`'s step is answered, or withdrawn: its permit comes back, with the tokens its calls used."""
        self.release(name)

    def release(self, name: str, succeeded: bool = True) -> None:
        """`name`'s step ended: its permit passes to a step riding in its batch, or comes back to its server."""
        self.spending.end(name)
        tokens = self._tokens.pop(name, 0)
        if (lease := self._riding.pop(name, None)) is not None:  # it ran on another's permit, none of its own
            self._ridden(lease, name)
        elif (lease := self._holding.pop(name, None)) is not None and (riders := self._riders.get(lease)):
            rider = next(iter(riders))  # the permit is the rider's now: the host started it as this step ended
            self._ridden(lease, rider)
            del self._riding[rider]
            self._holding[rider] = lease
            self._cut(self.limits.hand_over(name, rider, tokens, succeeded))
            return
        self._cut(self.limits.release(name, tokens, succeeded=succeeded))

    def _ridden(self, lease: Lease, name: str) -> None:
        riders = self._riders[lease]
        del riders[name]
        if not riders:
            del self._riders[lease]

    def _hold(self, ref: ActorRef, request: Any) -> None:
        self._held[ref.name] = (ref, request)
        self._held_on[self._host_of(ref.name)][ref.name] = None
        if (limiter := self.limits.server_of(ref.name)) is not None:
            self._waiting[limiter.key] += 1

    def _unhold(self, name: str) -> tuple[ActorRef, Any]:
        del self._held_on[self._host_of(name)][name]
        if (limiter := self.limits.server_of(name)) is not None:
            self._waiting[limiter.key] -= 1
        return self._held.pop(name)

    def may_go(self, name: str) -> bool:
        """Whether a permit may go to `name` now: a paused call, or a step held back."""
        return name in self._paused or name in self._held

    def end(self) -> None:
        """The step is over, however it ended: every permit and allowance it holds or waits for goes back."""
        for name in self._names:
            self._cut(self.limits.release(name, succeeded=False))
            self.spending.end(name)


def _paced_by_host(limiter: ServerLimiter) -> bool:
    """Whether a host may start its batch's calls to this server as permits pass on, without the driver: once
    the server's limit is given or learnt (in slow start, the permits double each round, and a batch's lease
    would hold them back), and not where calls a minute are limited, which only the driver counts."""
    return (limiter.ceiling is not None and limiter.limits.requests_per_minute is None
            and limiter.limits.tokens_per_minute is None)


class _MayGo:
    """The holders a permit may go to now, as `Limits.grant_due` asks: without building the set of them."""

    def __init__(self, permits: StepPermits) -> None:
        self._permits = permits

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._permits.may_go(name)
