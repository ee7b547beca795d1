"""What a model server allows, and how a model call tells its driver it was throttled.

The limits (`max_concurrency`, `requests_per_minute`, `tokens_per_minute` in
the `llm` dict) belong to a server (`api_base` + `model`), not to an agent:
the run's driver keeps one limiter per server for all its agents, whatever
process or node they run in (`actorsim._runtime.limits`). A call the server
throttles (429, 503) yields a `Throttled` notice and then a `PermitRequest`:
a driver answers it with a `Permit` once the server's limiter lets the call
go again; code that iterates without answering gets None, and the model
waits on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from actorsim._core.validators import int_at_least
from actorsim.llm._protocol import RetryNotice

LIMIT_NAMES = ("max_concurrency", "requests_per_minute", "tokens_per_minute")
THROTTLE_STATUS = frozenset({429, 503})
"""Answers that say the server is over its limit: the whole server's calls slow down, not just this one."""
UNAVAILABLE = 503
"""The server is down or overloaded, not full: its `Retry-After` is for every call of it."""


@attrs.frozen
class ServerLimits:
    """One model server's limits; None leaves one unlimited (a 429 still slows the server's calls down)."""

    max_concurrency: int | None = attrs.field(default=None, validator=int_at_least(1))
    requests_per_minute: int | None = attrs.field(default=None, validator=int_at_least(1))
    tokens_per_minute: int | None = attrs.field(default=None, validator=int_at_least(1))

    def given(self) -> dict[str, int]:
        """The limits that are set."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}


def limits_from(options: Mapping[str, Any]) -> ServerLimits:
    """The limits an `llm` dict sets (the other keys are the model's)."""
    return ServerLimits(**{name: options[name] for name in LIMIT_NAMES if name in options})


@attrs.frozen
class Throttled(RetryNotice):
    """The server answered that it is over its limit; `retry_after` is what it asked for (None: it did not say).

    `wait_s` is at least `retry_after`: the refused call waits that long. A
    driver cuts how many of the server's calls may be in flight
    (`actorsim._runtime.limits`), and holds every one of them back until
    `retry_after` when `pauses_server`: the server is down (503), its rate is
    spent (`x-ratelimit-remaining-*: 0`), or it refused this call before (a
    cut that makes no room: a rate, or a server that refuses everything).
    `window`, when the refused try was sent and refused (wall clock), lets it
    count what the server was serving then.
    """

    status: int = 429
    retry_after: float | None = None
    window: tuple[float, float] | None = None
    pauses_server: bool = False


@attrs.frozen
class PermitRequest:
    """A throttled call waits for its server's limiter: the step pauses until its driver answers with a `Permit`."""

    server: str
    wait_s: float  # the earliest the call may go again, from now


@attrs.frozen
class Permit:
    """The call may go: its driver's limiter has room for it, and the server's pause is over."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds_in(text: str | None) -> float | None:
    """A wait as servers write it: seconds ("2", "0.5"), or a duration ("1s", "6m0s", "20ms"); None if neither."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None  # an HTTP date, or something else: the caller's own backoff applies
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def rate_spent(headers: Mapping[str, str]) -> bool:
    """Whether the server says its rate is spent (`x-ratelimit-remaining-*: 0`): any call would be refused."""
    return any(headers.get(f"x-ratelimit-remaining-{kind}") == "0" for kind in ("requests", "tokens"))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """How long a throttled server asks to wait: `Retry-After`, else the reset of an exhausted `x-ratelimit-*`."""
    asked = seconds_in(headers.get("retry-after"))
    if asked is not None:
        return asked
    resets = [
        wait for kind in ("requests", "tokens")
        if headers.get(f"x-ratelimit-remaining-{kind}") == "0"
        and (wait := seconds_in(headers.get(f"x-ratelimit-reset-{kind}"))) is not None
    ]
    return max(resets) if resets else None
