"""Routing decisions: where a message whose `send_to` is a policy goes, decided in the driver.

Why the driver, in the task center's step engine, and not the Environment:

- a policy may run the user's code (a routing function, `Hash`'s key): a
  lambda or a closure over driver objects, which Thespian cannot pickle into
  the Environment's process, and which should see the driver's objects;
- a decision comes before the message is stored, so a policy that raises or
  chooses unknown roles stops the message before the Environment has it;
- a reply is routed when it is published, and replies are published in
  responder order, so a stateful policy sees the same sequence of messages in
  every run, whatever order the replies finish in.

Why the state survives restarts: the rotations and random generators live
here, beside the step engine's step counter and clock. The driver is the root
of the run and is never restarted (a run whose driver dies ends with it), so
an Environment, Registry or agent that crashes and restarts leaves them as
they were; nothing needs journaling into a successor, and no decision costs
an extra round trip. What a restart could change is replayed anyway: the
Registry's statuses (who is live) come back from its journal.

Why a replay routes the same way: every stateful policy is seeded, by its own
`seed` or by the task center's routing seed, which is drawn once, logged
(`routing.seeded`) and chosen by the run's interventions: a `Replay` gives
back the recorded one. Decisions then follow from the seed and the sequence
of messages, which the replay reproduces (and checks: a replayed message
whose recipients differ is a divergence). Each decision is logged as
`message.routed` (the policy, the sender, the roles chosen).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NoReturn

import attrs

from actorsim._core.envelope import Message
from actorsim._core.roles import ALL, check_known, resolve_recipients, role_list
from actorsim._engine.views import RegistryView
from actorsim._errors import RoutingError
from actorsim._protocol.registry import AgentInfo
from actorsim._runtime.runtime import Runtime
from actorsim.routing import Hash, LeastPending, Policy, Random, RoundRobin, SendTo, Topic, check_send_to, describe

GroupPolicy = RoundRobin | Random | Hash | LeastPending


def is_routed(send_to: SendTo) -> bool:
    """Whether `send_to` is decided per message (a policy or a function) rather than fixed roles."""
    return isinstance(send_to, Policy) or (callable(send_to) and not isinstance(send_to, str))


@attrs.frozen
class _Index:
    """The members by role, group and topic: built when the membership changes, not for every message.

    A swarm routes every reply; scanning ten thousand members for each made a
    round of n messages cost n squared.
    """

    roles: tuple[str, ...]
    known: dict[str, None]  # the roles again, for look-ups that keep their order for error messages
    groups: dict[str, tuple[str, ...]]
    topics: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, members: Iterable[AgentInfo]) -> _Index:
        roles: list[str] = []
        groups: dict[str, list[str]] = {}
        topics: dict[str, list[str]] = {}
        for info in members:
            roles.append(info.role)
            if info.group:
                groups.setdefault(info.group, []).append(info.role)
            for topic in info.topics:
                topics.setdefault(topic, []).append(info.role)
        return cls(
            tuple(roles), dict.fromkeys(roles),
            {group: tuple(names) for group, names in groups.items()},
            {topic: tuple(names) for topic, names in topics.items()},
        )


class Router:
    """A task center's routing: checks `send_to` values, decides routed messages, keeps the policies' state."""

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        registry: RegistryView,
        *,
        members: Callable[[], Sequence[AgentInfo]],
        is_live: Callable[[str], bool],
        queue_lengths: Callable[[tuple[str, ...]], Mapping[str, int]],
    ) -> None:
        self._runtime = runtime
        self._name = name
        self._registry = registry
        self._members = members  # every agent with a queue (no watchers), in registration order
        self._is_live = is_live
        self._queue_lengths = queue_lengths
        self._defaults: dict[str, SendTo] = {}
        self._turns: dict[RoundRobin, int] = {}
        self._draws: dict[Random, random.Random] = {}
        self._seed: int | None = None
        self._index: _Index | None = None

    def members_changed(self) -> None:
        """Agents joined: the index is built again when next needed."""
        self._index = None

    def _members_index(self) -> _Index:
        if self._index is None:
            self._index = _Index.of(self._members())
        return self._index

    # -- agents' own defaults

    def set_default(self, role: str, send_to: SendTo) -> None:
        """Where `role`'s replies go when a step does not say."""
        self._defaults[role] = send_to

    def target(self, role: str, send_to: SendTo | None) -> SendTo:
        """The step's `send_to`, or else `role`'s own default."""
        return send_to if send_to is not None else self._defaults.get(role, ALL)

    # -- checks, before anything is stored

    def check(self, send_to: SendTo, *, argument: str = "send_to") -> None:
        """Refuse a `send_to` naming unknown roles, groups or topics."""
        self._check(send_to, argument, self._members_index())

    def check_joining(self, joining: Sequence[tuple[AgentInfo, SendTo]]) -> None:
        """Check the own `send_to` of agents about to join, against the members with them."""
        index = _Index.of([*self._members(), *(info for info, _ in joining if not info.is_watcher)])
        for info, send_to in joining:
            self._check(send_to, f"{info.role}'s send_to", index)

    def _check(self, send_to: SendTo, argument: str, index: _Index) -> None:
        check_send_to(send_to, argument=argument)
        if isinstance(send_to, Topic):
            if send_to.name not in index.topics:
                raise RoutingError(
                    f"{argument}: {describe(send_to)}: unknown topic {send_to.name!r}; "
                    f"known topics: {', '.join(index.topics) or '(none)'}"
                )
        elif isinstance(send_to, GroupPolicy):
            group = send_to.group
            if group not in index.groups:
                raise RoutingError(
                    f"{argument}: {describe(send_to)}: unknown group {group!r}; "
                    f"known groups: {', '.join(index.groups) or '(none)'}"
                )
        elif isinstance(send_to, str | Sequence) and send_to != ALL:
            check_known(role_list(send_to, argument=argument), known=index.known, argument=argument)

    def fixed(self, send_to: SendTo, sender: str) -> tuple[str, ...]:
        """The recipients of fixed roles (`"all"`, a role, a list); none yet for a routed `send_to`."""
        if is_routed(send_to):
            return ()
        index = self._members_index()
        return resolve_recipients(
            send_to, sender=sender, roles=index.roles, known=index.known, argument="send_to"  # type: ignore[arg-type]
        )

    # -- decisions

    def route(self, send_to: SendTo, message: Message) -> tuple[str, ...]:
        """The recipients of `message`; a policy's decision is logged. Raises `RoutingError` naming the policy."""
        if not is_routed(send_to):
            return self.fixed(send_to, message.sent_from)
        policy = send_to
        index = self._members_index()
        if isinstance(policy, Policy):
            self.check(policy)
            chosen = self._decide(policy, message, index)
        elif isinstance(policy, str | Sequence):
            raise AssertionError("fixed roles are not routed")
        else:
            chosen = self._call(policy, message, index.known)
        self._runtime.log(
            "message.routed", flush=False, task_center=self._name, message_id=message.message_id,
            sent_from=message.sent_from, policy=describe(policy), roles=list(chosen),
        )
        return chosen

    def _call(self, function: Callable[..., object], message: Message, known: dict[str, None]) -> tuple[str, ...]:
        name = describe(function)  # type: ignore[arg-type]
        try:
            answer = function(message, self._registry)
        except Exception as error:
            raise RoutingError(f"send_to policy {name} raised {type(error).__name__}: {error}") from error
        try:
            roles = role_list(answer, argument=f"send_to policy {name}")  # type: ignore[arg-type]
        except TypeError as error:
            raise RoutingError(f"send_to policy {name} returned {answer!r}, not roles") from error
        unknown = [role for role in roles if role not in known]
        if unknown:
            raise RoutingError(
                f"send_to policy {name} returned unknown roles {unknown}; known roles: {', '.join(known) or '(none)'}"
            )
        return roles

    def _decide(self, policy: Policy, message: Message, index: _Index) -> tuple[str, ...]:
        sender = message.sent_from
        if isinstance(policy, Topic):
            return tuple(role for role in index.topics[policy.name] if role != sender)
        assert isinstance(policy, GroupPolicy)
        group = index.groups[policy.group]

        def eligible(role: str) -> bool:
            return self._is_live(role) and (role != sender or isinstance(policy, Hash))

        if isinstance(policy, RoundRobin):  # looks at members from its turn on, not at the whole group
            turn = self._turns.get(policy)
            if turn is None:
                turn = 0 if policy.start == "first" else self._generator(policy).randrange(len(group))
            for offset in range(len(group)):
                if eligible(role := group[(turn + offset) % len(group)]):
                    self._turns[policy] = (turn + offset + 1) % len(group)
                    return (role,)
            self._no_live_agent(policy, group, sender)
        live = [role for role in group if eligible(role)]
        if not live:
            self._no_live_agent(policy, group, sender)
        if isinstance(policy, Random):
            generator = self._draws.get(policy)
            if generator is None:
                generator = self._draws[policy] = self._generator(policy)
            drawn = set(generator.sample(live, min(policy.k, len(live))))
            return tuple(role for role in live if role in drawn)
        if isinstance(policy, Hash):
            try:
                key = str(policy.key(message))
            except Exception as error:
                raise RoutingError(
                    f"send_to {describe(policy)}: its key raised {type(error).__name__}: {error}"
                ) from error
            return (max(live, key=lambda role: _weight(key, role)),)
        if isinstance(policy, LeastPending):
            lengths = self._queue_lengths(tuple(live))
            return (min(live, key=lambda role: lengths[role]),)  # min keeps the first of equals
        raise TypeError(f"send_to: unknown policy {policy!r}")

    @staticmethod
    def _no_live_agent(policy: GroupPolicy, group: Sequence[str], sender: str) -> NoReturn:
        raise RoutingError(
            f"send_to {describe(policy)}: no live agent of group {policy.group!r} to choose "
            f"(members: {', '.join(group)}; sender: {sender})"
        )

    def _generator(self, policy: RoundRobin | Random) -> random.Random:
        """A generator for `policy`, seeded by its own seed or the task center's, and by the policy itself."""
        seed = policy.seed if policy.seed is not None else self._routing_seed()
        return random.Random(f"{seed}/{policy!r}")

    def _routing_seed(self) -> int:
        """The task center's routing seed: drawn once (or chosen by an intervention: a replay's), and logged."""
        if self._seed is None:
            chosen = self._runtime.interventions.routing_seed(self._name)
            self._seed = chosen if chosen is not None else random.SystemRandom().getrandbits(32)
            self._runtime.log("routing.seeded", task_center=self._name, seed=self._seed)
        return self._seed


def _weight(key: str, role: str) -> bytes:
    """Rendezvous hashing: the agent with the highest weight for a key gets it; the same in every process."""
    return hashlib.blake2b(f"{key}\x00{role}".encode(), digest_size=8).digest()
