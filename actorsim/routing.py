"""Routing policies: where a message goes when `send_to` names a group, a topic or a rule instead of roles.

`send_to` (of `send_task_request`, of `step`, and an agent's own default for
its replies, `create_component(RolePlay, ..., send_to=...)`) takes a role, a
list of roles, `"all"`, one of the policies below, or any callable
`(message, registry) -> roles`. Groups and topics are declared with the
agents (`create_component(..., group="spiders", topics=["pages"])`, or
`add_agents(..., group=..., topics=...)`). Akka's routers (round-robin,
random, consistent hashing, smallest mailbox) and autogen-core's topics and
subscriptions are the models.

The policies are plain frozen values; the task center decides with them (see
`actorsim._engine.router`), keeps their state and logs every decision
(`message.routed`: the policy and the roles it chose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

import attrs

from actorsim._core.envelope import Message


def _name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{type(instance).__name__}: {attribute.name} must be a non-empty str, not {value!r}")


def _seed(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{type(instance).__name__}: seed must be an int or None, not {value!r}")


def _describe(function: object) -> str:
    return str(getattr(function, "__qualname__", None) or repr(function))


class Policy:
    """Base class of the routing policies: a frozen value that names a group or a topic.

    The group policies choose among the group's live agents (those whose
    supervisor has not given up on them), never the sender, except `Hash`,
    whose choice depends on the key alone.
    """


@attrs.frozen
class RoundRobin(Policy):
    """One agent of `group` after another, in the order they were added, skipping the sender and the failed.

    Each task center keeps one rotation per policy value, shared by every
    message routed with it. `start="seeded"` (the default) begins at an agent
    drawn from `seed` (or from the task center's routing seed, logged as
    `routing.seeded`, when `seed` is None), so that a swarm's runs do not all
    load the first agent; `start="first"` begins at the first.
    """

    group: str = attrs.field(validator=_name)
    start: str = attrs.field(default="seeded", validator=attrs.validators.in_(("seeded", "first")))
    seed: int | None = attrs.field(default=None, validator=_seed)


@attrs.frozen
class Random(Policy):
    """`k` agents of `group` drawn at random (all of them when fewer are live), from `seed`.

    With `seed=None` the draws come from the task center's routing seed
    (logged as `routing.seeded`, replayed by `actorsim replay`).
    """

    group: str = attrs.field(validator=_name)
    k: int = attrs.field(default=1)
    seed: int | None = attrs.field(default=None, validator=_seed)

    @k.validator
    def _check_k(self, attribute: attrs.Attribute[int], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Random: k must be an int >= 1, not {value!r}")


@attrs.frozen
class Topic(Policy):
    """Every agent subscribed to topic `name` (`topics=[...]`), but the sender."""

    name: str = attrs.field(validator=_name)


@attrs.frozen
class Hash(Policy):
    """The agent of `group` that `key(message)` maps to: the same key always reaches the same live agent.

    Rendezvous hashing over the live agents: when an agent fails, only its
    keys move; the others stay where they were. The key is hashed by its
    `str`, with a hash that is the same in every process and run.
    """

    group: str = attrs.field(validator=_name)
    key: Callable[[Message], object] = attrs.field(repr=_describe)

    @key.validator
    def _check_key(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not callable(value):
            raise TypeError(f"Hash: key must be a callable (message -> key), not {value!r}")


@attrs.frozen
class LeastPending(Policy):
    """The agent of `group` with the fewest messages waiting in its queue (the first of them on a tie)."""

    group: str = attrs.field(validator=_name)


RoutingFunction: TypeAlias = Callable[[Message, Any], "str | Iterable[str]"]
"""A user's policy: given the message and the task center's registry view (`actorsim.RegistryView`), the roles it
goes to. The view is typed `Any` here, below the task center that makes it: a function annotated with
`RegistryView` fits."""

SendTo: TypeAlias = "str | Sequence[str] | Policy | RoutingFunction"
"""What `send_to` accepts: a role, a list of roles, `"all"`, a policy, or a routing function."""


def describe(policy: Policy | RoutingFunction) -> str:
    """How the run log and errors name a policy: its repr, or a function's qualified name."""
    return repr(policy) if isinstance(policy, Policy) else _describe(policy)


def check_send_to(value: object, *, argument: str = "send_to") -> None:
    """Refuse a `send_to` of the wrong type, by name (the roles, groups and topics are checked where they are known)."""
    if isinstance(value, str | Policy) or callable(value):
        return
    if isinstance(value, Sequence) and all(isinstance(role, str) for role in value):
        return
    raise TypeError(
        f"{argument} must be a role, a list of roles, 'all', a routing policy or a callable "
        f"(message, registry) -> roles, not {value!r}"
    )


__all__ = [
    "Hash",
    "LeastPending",
    "Policy",
    "Random",
    "RoundRobin",
    "RoutingFunction",
    "SendTo",
    "Topic",
    "check_send_to",
    "describe",
]
