"""Checking role arguments, the same way wherever a role is named."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

ALL = "all"


def role_list(value: str | Iterable[str], *, argument: str) -> tuple[str, ...]:
    """Accept one role or a list of roles, refusing anything else by name."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        roles = tuple(value)
        if all(isinstance(role, str) for role in roles):
            return roles
    raise TypeError(f"{argument} must be a role name or a list of role names, not {value!r}")


def check_known(roles: Iterable[str], *, known: Collection[str], argument: str) -> None:
    """Raise ValueError naming the first unknown role and the known ones.

    `known` is best a dict's keys or a set: a swarm checks every message against thousands of roles.
    """
    for role in roles:
        if role not in known:
            raise ValueError(
                f"{argument}: unknown role {role!r}; known roles: {', '.join(known) or '(none)'}"
            )


def resolve_recipients(
    value: str | Iterable[str], *, sender: str, roles: Sequence[str], argument: str,
    known: Collection[str] | None = None,
) -> tuple[str, ...]:
    """`"all"` means every role in `roles` but the sender; names are checked (against `known` when given:
    the same roles, quicker to look up)."""
    if value == ALL:
        return tuple(role for role in roles if role != sender)
    recipients = role_list(value, argument=argument)
    check_known(recipients, known=roles if known is None else known, argument=argument)
    return recipients
