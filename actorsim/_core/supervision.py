"""What a supervisor works from: the policy of a component, and which requests its state is rebuilt from.

Values only: the `Supervisor` that acts on them runs in the driver
(`actorsim._runtime.supervisor`). Components and behaviours name these
without importing the supervisor, or the transports it drives.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from actorsim._core.validators import non_negative, positive

STRATEGIES = ("one_for_one", "one_for_all")


class Durable:
    """A request that changes an actor's state: replayed, in order, into its restarted successor."""


class Frozen(Durable):
    """A durable request kept pickled, as an actor's snapshot of its whole state is.

    The driver keeps a long run's snapshot as bytes rather than as objects
    (less memory, nothing to unpickle when it arrives), and a restart sends
    those bytes on unchanged: the snapshot is pickled once, by the actor
    that made it, and read once, by its successor.
    """

    def __init__(self, request: Any) -> None:
        self.data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)

    def thaw(self) -> Any:
        """The request itself."""
        return pickle.loads(self.data)


@attrs.frozen
class Supervision:
    """How a component's crashes are handled, in the manner of an Erlang/OTP supervisor.

    At most `max_restarts` restarts within `within` seconds; one more crash and
    the supervisor gives up (`ComponentFailedError`, `AgentFailedError` for an
    agent). Before the n-th restart in a row it waits
    `min(backoff_max, backoff_initial * 2 ** (n - 1))` plus up to `backoff_jitter`
    seconds. `one_for_all` also restarts the crashed component's siblings (the
    other components of its task center) once the step in progress ends.

    `max_deliveries` bounds one step, whatever the time between its crashes
    (SQS's `maxReceiveCount`): a step delivered that many times that crashed
    each time is not delivered again. Its messages go to the dead letters,
    the step raises `PoisonMessageError`, and the agent, restarted, goes on
    with the next step. `max_restarts/within` bounds the agent, this its messages.
    """

    strategy: str = attrs.field(default="one_for_one", validator=attrs.validators.in_(STRATEGIES))
    max_restarts: int = attrs.field(default=3, validator=[attrs.validators.instance_of(int), non_negative])
    within: float = attrs.field(default=60.0, validator=positive)
    backoff_initial: float = attrs.field(default=0.05, validator=non_negative)
    backoff_max: float = attrs.field(default=5.0, validator=non_negative)
    backoff_jitter: float = attrs.field(default=0.05, validator=non_negative)
    max_deliveries: int = attrs.field(default=5, validator=[attrs.validators.instance_of(int), positive])

    def backoff(self, restart: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds to wait before restart number `restart` (from 1) of the current run of crashes."""
        exponential: float = self.backoff_initial * 2 ** (restart - 1)
        return min(self.backoff_max, exponential) + draw(0.0, self.backoff_jitter)


def supervision_from(value: Supervision | Mapping[str, Any] | None) -> Supervision:
    """A `Supervision` from what a user gave: None (the defaults), one, or a dict of its fields."""
    if value is None:
        return Supervision()
    if isinstance(value, Supervision):
        return value
    if isinstance(value, Mapping):
        return Supervision(**value)
    raise TypeError(f"supervision must be a Supervision or a dict of its fields, not {value!r}")
