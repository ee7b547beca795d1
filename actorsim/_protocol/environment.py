"""What the Environment is asked, and what it answers.

`Durable` requests change its state and are journaled by the supervisor, to
be replayed into a restarted Environment; the others only read.
"""

from __future__ import annotations

from typing import Any

import attrs

from actorsim._core.envelope import Message
from actorsim._core.supervision import Durable


@attrs.frozen
class AddRoles(Durable):
    roles: tuple[str, ...]
    watchers: tuple[str, ...] = ()


@attrs.frozen
class Publish(Durable):
    """Store `message`; the sender's owed messages it answers (`answers`) are done with.

    One request for both, so that a reply costs one round trip. A message
    already published (same id: a reply made again after a restart) is not
    stored twice.
    """

    message: Message
    answers: tuple[str, ...] = ()

    @property
    def sender(self) -> str:
        return self.message.sent_from

    @property
    def messages(self) -> tuple[Message, ...]:
        """As `PublishAll`'s: the two are stored alike."""
        return (self.message,)


@attrs.frozen
class PublishAll(Durable):
    """Store `messages` in order (a reply of several posts, maybe none); `sender`'s owed `answers` are done with.

    One request, so that the posts of one reply and its acknowledgement are
    stored together or not at all. Messages already published are skipped.
    """

    sender: str
    messages: tuple[Message, ...]
    answers: tuple[str, ...] = ()


@attrs.frozen
class PublishBatch(Durable):
    """Several replies' `Publish` and `PublishAll` requests, stored in order in one round trip.

    A step's replies come back in bursts (a host sends what its agents made
    together); one request per burst instead of per reply. Every request is
    checked before any is stored: the batch is stored whole or not at all.
    """

    requests: tuple[Publish | PublishAll, ...]


@attrs.frozen
class DeadLetter:
    """A message its recipient could not handle, and why."""

    message: Message
    role: str
    error: str


@attrs.frozen
class BuryDeadLetters(Durable):
    """`role` gave up on these messages: they leave its queue for the dead-letter list."""

    letters: tuple[DeadLetter, ...]


@attrs.frozen
class GetDeadLetters:
    pass


@attrs.frozen
class TakePending:
    """Move queued messages to their role's owed list and return them, by role.

    `roles=None` takes every role with pending messages but those `passed_over`.
    """

    roles: tuple[str, ...] | None = None
    passed_over: tuple[str, ...] = ()


@attrs.frozen
class Release:
    """A step failed: put the roles' owed messages back at the head of their queues."""

    roles: tuple[str, ...]


@attrs.frozen
class PendingRoles:
    pass


@attrs.frozen
class GetPending:
    role: str


@attrs.frozen
class QueueLengths:
    """How many messages wait in each of `roles`' queues (for `LeastPending`)."""

    roles: tuple[str, ...]


@attrs.frozen
class GetHistory:
    """The whole history, or only what `role` could see (sent by or to it)."""

    role: str | None = None


@attrs.frozen
class GetUserRequirements:
    pass


@attrs.frozen
class Snapshot:
    """Ask for a `Restore` of the Environment's whole state (`Frozen`), to stand in for its journal."""


@attrs.frozen
class ReplayJournal:
    """A restarted Environment's journal, applied in order: one round trip, where there were as many as requests."""

    requests: tuple[Any, ...]


@attrs.frozen
class Restore(Durable):
    """The Environment's whole state; what was taken and not yet answered is pending again once restored."""

    queues: dict[str, tuple[Message, ...]]
    watchers: tuple[str, ...]
    history: tuple[Message, ...]
    dead_letters: tuple[DeadLetter, ...]
