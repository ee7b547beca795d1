"""The supervised stream: streamed calls whose crashed actors are restarted and asked again while the others go on."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from actorsim._core.ref import ActorRef
from actorsim._errors import AskTimeoutError, ComponentFailedError
from actorsim._runtime.interventions import Interventions
from actorsim._runtime.supervisor import Supervisor
from actorsim.transport import CallFailed, Transport

_NO_ONE_IN_FLIGHT_S = 0.05
"""How often calls held back with none of their own in flight look again: a permit may come back from another
stream (another task center's step, on another thread)."""


@attrs.frozen
class Redelivered:
    """A streamed call's actor crashed and was restarted; its request is on its way again."""

    cause: BaseException


def supervised_stream(
    transport: Transport,
    supervisor: Supervisor,
    interventions: Interventions,
    calls: Sequence[tuple[ActorRef, Any]],
    *,
    timeout: float,
    final: Callable[[Any], bool],
    context: Callable[[Any], Mapping[str, Any]],
    follow_ups: collections.deque[tuple[str, Any]],
    on_idle: Callable[[], None],
    arrivals: collections.deque[tuple[ActorRef, Any]] | None = None,
    held_back: Callable[[], float | None] = lambda: None,
) -> Iterator[tuple[str, Any]]:
    """Stream `calls` as the transport does, under the supervisor: yields `(actor name, item)`.

    What `Runtime.stream` runs; see it for the arguments. `timeout` bounds the
    wait for the next item of any call. A restart waits out its backoff while
    the other calls stream, rather than in a sleep that would hold them up.
    """
    requests = {ref.name: request for ref, request in calls}
    arrivals = arrivals if arrivals is not None else collections.deque()
    attempts: collections.Counter[str] = collections.Counter()
    finished: set[str] = set()  # calls whose final item arrived
    crashed: collections.deque[tuple[str, ActorRef, BaseException]] = collections.deque()
    due: dict[str, tuple[float, BaseException]] = {}  # restarts waiting out their backoff
    with transport.open_calls() as open_calls:

        def deliver(name: str) -> None:
            attempts[name] += 1
            current = supervisor.current(name)
            fault = interventions.before_delivery(name, requests[name], attempts[name])
            if fault is not None:
                crashed.append((name, current, fault))
            else:
                open_calls.add(current, requests[name])

        def redeliver(name: str, cause: BaseException) -> Iterator[tuple[str, Any]]:
            # A step that crashed its agent on every delivery is not delivered again, however slowly it crashes.
            if attempts[name] >= supervisor.max_deliveries(name):
                finished.add(name)
                yield name, CallFailed(supervisor.poisoned(name, cause, attempts[name], **context(requests[name])))
            else:
                yield name, Redelivered(cause)
                deliver(name)

        for name in requests:
            deliver(name)
        last_item = time.monotonic()
        while open_calls.open or crashed or due or follow_ups or arrivals or held_back() is not None:
            while arrivals:  # calls held back (for a permit) and let go: delivered for the first time
                ref, request = arrivals.popleft()
                requests[ref.name] = request
                deliver(ref.name)
            while follow_ups:
                name, request = follow_ups.popleft()
                open_calls.add(supervisor.current(name), request)
            while crashed:
                name, ref, error = crashed.popleft()
                try:
                    delay = supervisor.note_crash(ref, error, **context(requests[name]))
                except ComponentFailedError as failure:
                    yield name, CallFailed(failure)
                    continue
                if delay is not None:
                    due[name] = (time.monotonic() + delay, error)
                elif name not in finished:  # already restarted (a sibling's restart): deliver again
                    yield from redeliver(name, error)
            for name, (deadline, error) in sorted(due.items(), key=lambda entry: entry[1][0]):
                if deadline > time.monotonic():
                    break
                del due[name]
                try:
                    supervisor.restart(name)
                except ComponentFailedError as failure:
                    yield name, CallFailed(failure)
                    continue
                if name not in finished:
                    yield from redeliver(name, error)
            if crashed:
                continue
            if not open_calls.ready:
                on_idle()
                if arrivals or follow_ups:
                    continue
            # Wake for the next restart due, and for held-back calls whose wait is over.
            wake = min((deadline for deadline, _ in due.values()), default=math.inf)
            if (held := held_back()) is not None:
                last_item = time.monotonic() if not open_calls.open else last_item  # waiting on a limit is no hang
                wake = min(wake, held if open_calls.open or held < math.inf else time.monotonic() + _NO_ONE_IN_FLIGHT_S)
            if not open_calls.open:
                if wake < math.inf:
                    time.sleep(max(0.0, wake - time.monotonic()))
                continue
            wait = min(timeout - (time.monotonic() - last_item), wake - time.monotonic())
            got = open_calls.next(max(0.0, wait))
            if got is None:
                if open_calls.open and time.monotonic() - last_item >= timeout:
                    raise AskTimeoutError(f"no item from {sorted(requests)} within {timeout} s")
                continue
            last_item = time.monotonic()
            ref, item = got
            if isinstance(item, CallFailed):
                crashed.append((ref.name, ref, item.error))
                continue
            if final(item):
                finished.add(ref.name)
            yield ref.name, item
