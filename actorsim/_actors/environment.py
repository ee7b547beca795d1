"""The message hub: one queue per role, the whole history, the user requirements (requests: `_protocol.environment`)."""

from __future__ import annotations

import functools
from collections import deque
from typing import Any

from actorsim._core.envelope import USER_REQUIREMENT, Message
from actorsim._core.roles import check_known
from actorsim._core.supervision import Frozen
from actorsim._protocol.environment import (
    AddRoles,
    BuryDeadLetters,
    DeadLetter,
    GetDeadLetters,
    GetHistory,
    GetPending,
    GetUserRequirements,
    PendingRoles,
    Publish,
    PublishAll,
    PublishBatch,
    QueueLengths,
    Release,
    ReplayJournal,
    Restore,
    Snapshot,
    TakePending,
)
from actorsim._runlog import log_event


class Environment:
    """Owns every queue and the history; roles are kept in registration order.

    A pulled message is owed, not forgotten, until the role's reply is
    acknowledged; a failed step releases it back to the queue. Restarted, the
    Environment is given its `Durable` requests again: what was taken and not
    yet answered is pending once more.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[Message]] = {}
        self._owed: dict[str, list[Message]] = {}
        self._watchers: list[str] = []
        self._history: list[Message] = []
        self._published: set[str] = set()
        self._requirements: list[Message] = []
        self._dead_letters: list[DeadLetter] = []

    @functools.singledispatchmethod
    def receive(self, request: Any) -> Any:
        raise TypeError(f"the environment does not understand {type(request).__name__}")

    @receive.register
    def _add_roles(self, request: AddRoles) -> None:
        for role in request.roles:
            if role in self._queues or role in self._watchers:
                raise ValueError(f"role {role!r} is already in the environment")
        for role in request.roles:
            self._queues[role] = deque()
            self._owed[role] = []
        self._watchers.extend(request.watchers)

    @receive.register
    def _replay(self, request: ReplayJournal) -> None:
        for one in request.requests:
            self.receive(one)

    @receive.register
    def _publish(self, request: Publish) -> None:
        self._check_publish(request)
        self._apply_publish(request)

    @receive.register
    def _publish_all(self, request: PublishAll) -> None:
        self._check_publish(request)
        self._apply_publish(request)

    @receive.register
    def _publish_batch(self, request: PublishBatch) -> None:
        for one in request.requests:
            self._check_publish(one)
        for one in request.requests:
            self._apply_publish(one)

    def _check_publish(self, request: Publish | PublishAll) -> None:
        if isinstance(request, Publish):
            self._check(request.message)
            return
        self._check_sender(request.sender)
        for message in request.messages:
            if message.sent_from != request.sender:
                raise ValueError(f"a reply of {request.sender!r} holds a message from {message.sent_from!r}")
            self._check(message)

    def _apply_publish(self, request: Publish | PublishAll) -> None:
        for message in request.messages:
            self._store(message)
        if request.answers:
            self._done_with(request.sender, set(request.answers))

    def _check(self, message: Message) -> None:
        if message.sent_from != USER_REQUIREMENT:
            self._check_sender(message.sent_from)
        check_known(message.send_to, known=self._queues.keys(), argument="send_to")

    def _check_sender(self, sender: str) -> None:
        if sender not in self._queues and sender not in self._watchers:
            check_known([sender], known=self.roles, argument="send_from")

    def _store(self, message: Message) -> None:
        """Keep `message` in the history and its recipients' queues, unless it is there already."""
        if message.message_id in self._published:
            log_event("message.duplicate", message_id=message.message_id, sent_from=message.sent_from)
        else:
            self._published.add(message.message_id)
            self._history.append(message)
            if message.sent_from == USER_REQUIREMENT:
                self._requirements.append(message)
            for role in message.send_to:
                self._queues[role].append(message)
            log_event("message.published", message=message.to_dict())

    def _done_with(self, role: str, message_ids: set[str]) -> None:
        """Acknowledged: gone from the role's owed list, and from its queue after a restart put them back."""
        owed = self._owed[role]
        owed[:] = [m for m in owed if m.message_id not in message_ids]
        queue = self._queues[role]
        if any(m.message_id in message_ids for m in queue):
            self._queues[role] = deque(m for m in queue if m.message_id not in message_ids)

    @receive.register
    def _bury(self, request: BuryDeadLetters) -> None:
        for letter in request.letters:
            self._done_with(letter.role, {letter.message.message_id})
            self._dead_letters.append(letter)
            log_event("message.dead_lettered", message_id=letter.message.message_id, role=letter.role,
                      error=letter.error)

    @receive.register
    def _get_dead_letters(self, request: GetDeadLetters) -> tuple[DeadLetter, ...]:
        return tuple(self._dead_letters)

    @receive.register
    def _take_pending(self, request: TakePending) -> dict[str, tuple[Message, ...]]:
        if request.roles is None:
            roles = [role for role, queue in self._queues.items() if queue and role not in request.passed_over]
        else:
            check_known(request.roles, known=self._queues.keys(), argument="roles")
            roles = list(request.roles)
        taken = {}
        for role in roles:
            queue = self._queues[role]
            taken[role] = tuple(queue)
            self._owed[role].extend(queue)
            queue.clear()
        if taken:
            # One event per take, not per role: a swarm's step pulls for hundreds of roles at once.
            log_event("message.pulled", taken={role: [m.message_id for m in got] for role, got in taken.items()})
        return taken

    @receive.register
    def _release(self, request: Release) -> None:
        for role in request.roles:
            self._queues[role].extendleft(reversed(self._owed[role]))
            self._owed[role].clear()

    @receive.register
    def _pending_roles(self, request: PendingRoles) -> tuple[str, ...]:
        return tuple(role for role, queue in self._queues.items() if queue)

    @receive.register
    def _get_pending(self, request: GetPending) -> tuple[Message, ...]:
        check_known([request.role], known=self._queues.keys(), argument="role")
        return tuple(self._queues[request.role])

    @receive.register
    def _queue_lengths(self, request: QueueLengths) -> dict[str, int]:
        check_known(request.roles, known=self._queues.keys(), argument="roles")
        return {role: len(self._queues[role]) for role in request.roles}

    @receive.register
    def _get_history(self, request: GetHistory) -> tuple[Message, ...]:
        if request.role is None:
            return tuple(self._history)
        check_known([request.role], known=self.roles, argument="role")
        return tuple(
            m for m in self._history if request.role == m.sent_from or request.role in m.send_to
        )

    @receive.register
    def _get_user_requirements(self, request: GetUserRequirements) -> tuple[Message, ...]:
        return tuple(self._requirements)

    @receive.register
    def _snapshot(self, request: Snapshot) -> Frozen:
        return Frozen(Restore(
            {role: (*self._owed[role], *queue) for role, queue in self._queues.items()},
            tuple(self._watchers), tuple(self._history), tuple(self._dead_letters),
        ))

    @receive.register
    def _thaw(self, request: Frozen) -> Any:
        return self.receive(request.thaw())

    @receive.register
    def _restore(self, request: Restore) -> None:
        self._queues = {role: deque(queue) for role, queue in request.queues.items()}
        self._owed = {role: [] for role in request.queues}
        self._watchers = list(request.watchers)
        self._history = list(request.history)
        self._published = {m.message_id for m in self._history}
        self._requirements = [m for m in self._history if m.sent_from == USER_REQUIREMENT]
        self._dead_letters = list(request.dead_letters)

    @property
    def roles(self) -> dict[str, None]:
        """Every role, watchers last: a dict, so that a look-up costs the same for ten roles or ten thousand."""
        return {**dict.fromkeys(self._queues), **dict.fromkeys(self._watchers)}
