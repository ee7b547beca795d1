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
from collections.abc import Callable, Mapping, Sequence

from actorsim._actors.registry import AgentInfo
from actorsim._envelope import Message
from actorsim._errors import RoutingError
from actorsim._roles import ALL, check_known, resolve_recipients, role_list
from actorsim._runtime import Runtime
from actorsim._views import RegistryView
from actorsim.routing import Hash, LeastPending, Policy, Random, RoundRobin, SendTo, Topic, check_send_to, describe

GroupPolicy = RoundRobin | Random | Hash | LeastPending


def is_routed(send_to: SendTo) -> bool:
    """Whether `send_to` is decided per message (a policy or a function) rather than fixed roles."""
    return isinstance(send_to, Policy) or (callable(send_to) and not isinstance(send_to, str))


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

    # -- agents' own defaults

    def set_default(self, role: str, send_to: SendTo) -> None:
        """Where `role`'s replies go when a step does not say."""
        self._defaults[role] = send_to

    def target(self, role: str, send_to: SendTo | None) -> SendTo:
        """The step's `send_to`, or else `role`'s own default."""
        return send_to if send_to is not None else self._defaults.get(role, ALL)

    # -- checks, before anything is stored

    def check(
        self,
        send_to: SendTo,
        *,
        argument: str = "send_to",
        also: Sequence[AgentInfo] = (),
    ) -> None:
        """Refuse a `send_to` naming unknown roles, groups or topics; `also`: agents about to join."""
        check_send_to(send_to, argument=argument)
        members = [*self._members(), *(info for info in also if not info.is_watcher)]
        if isinstance(send_to, Topic):
            topics = _names(topic for info in members for topic in info.topics)
            if send_to.name not in topics:
                raise RoutingError(
                    f"{argument}: {describe(send_to)}: unknown topic {send_to.name!r}; "
                    f"known topics: {', '.join(topics) or '(none)'}"
                )
        elif isinstance(send_to, GroupPolicy):
            group = send_to.group
            groups = _names(info.group for info in members if info.group)
            if group not in groups:
                raise RoutingError(
                    f"{argument}: {describe(send_to)}: unknown group {group!r}; "
                    f"known groups: {', '.join(groups) or '(none)'}"
                )
        elif isinstance(send_to, str | Sequence) and send_to != ALL:
            check_known(role_list(send_to, argument=argument), known=[info.role for info in members], argument=argument)

    def fixed(self, send_to: SendTo, sender: str) -> tuple[str, ...]:
        """The recipients of fixed roles (`"all"`, a role, a list); none yet for a routed `send_to`."""
        if is_routed(send_to):
            return ()
        return resolve_recipients(
            send_to, sender=sender, roles=[info.role for info in self._members()], argument="send_to"  # type: ignore[arg-type]
        )

    # -- decisions

    def route(self, send_to: SendTo, message: Message) -> tuple[str, ...]:
        """The recipients of `message`; a policy's decision is logged. Raises `RoutingError` naming the policy."""
        if not is_routed(send_to):
            return self.fixed(send_to, message.sent_from)
        policy = send_to
        members = list(self._members())
        if isinstance(policy, Policy):
            self.check(policy)
            chosen = self._decide(policy, message, members)
        elif isinstance(policy, str | Sequence):
            raise AssertionError("fixed roles are not routed")
        else:
            chosen = self._call(policy, message, [info.role for info in members])
        self._runtime.log(
            "message.routed", flush=False, task_center=self._name, message_id=message.message_id,
            sent_from=message.sent_from, policy=describe(policy), roles=list(chosen),
        )
        return chosen

    def _call(self, function: Callable[..., object], message: Message, known: list[str]) -> tuple[str, ...]:
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

    def _decide(self, policy: Policy, message: Message, members: list[AgentInfo]) -> tuple[str, ...]:
        sender = message.sent_from
        if isinstance(policy, Topic):
            return tuple(info.role for info in members if policy.name in info.topics and info.role != sender)
        assert isinstance(policy, GroupPolicy)
        group = [info.role for info in members if info.group == policy.group]
        live = [role for role in group if self._is_live(role) and (role != sender or isinstance(policy, Hash))]
        if not live:
            raise RoutingError(
                f"send_to {describe(policy)}: no live agent of group {policy.group!r} to choose "
                f"(members: {', '.join(group)}; sender: {sender})"
            )
        if isinstance(policy, RoundRobin):
            turn = self._turns.get(policy)
            if turn is None:
                turn = 0 if policy.start == "first" else self._generator(policy).randrange(len(group))
            while group[turn % len(group)] not in live:
                turn += 1
            self._turns[policy] = (turn + 1) % len(group)
            return (group[turn % len(group)],)
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


def _names(values: object) -> list[str]:
    """Distinct names, in the order first seen."""
    return list(dict.fromkeys(values))  # type: ignore[call-overload]


def _weight(key: str, role: str) -> bytes:
    """Rendezvous hashing: the agent with the highest weight for a key gets it; the same in every process."""
    return hashlib.blake2b(f"{key}\x00{role}".encode(), digest_size=8).digest()
