"""Tools registered by name, as the seed's single agent finds them: `function_list=["weather"]`.

One table per process, filled by `@register_tool` as modules are imported.
Names are resolved in the driver (`create_component`), so actor processes
never need the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

import attrs

from actorsim.tools._spec import Tool, tool_from_callable

F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class Registered:
    """A registered function (`tool`) or tool class (`factory`, built with the entry's config)."""

    name: str
    tool: Tool | None = None
    factory: type | None = None
    timeout: float | None = None
    idempotent: bool = False


_registered: dict[str, Registered] = {}


@overload
def register_tool(target: F) -> F: ...
@overload
def register_tool(
    target: str | None = None, *, timeout: float | None = None, idempotent: bool = False
) -> Callable[[F], F]: ...


def register_tool(
    target: Any = None, *, timeout: float | None = None, idempotent: bool = False
) -> Any:
    """Register a tool function or tool class by name: `@register_tool` or `@register_tool("name", timeout=5)`.

    A tool class has `name`/`description`/`parameters` and a `call(**arguments)`
    method; it is built with the config of a `{name: config}` entry.
    Registering a name again replaces it (a module imported twice).
    """

    def register(subject: F) -> F:
        name = target if isinstance(target, str) else getattr(subject, "name", None) or subject.__name__
        if isinstance(subject, type):
            _registered[name] = Registered(name, factory=subject, timeout=timeout, idempotent=idempotent)
        else:
            tool = tool_from_callable(subject, name=name, timeout=timeout, idempotent=idempotent)
            _registered[name] = Registered(name, tool=tool, timeout=timeout, idempotent=idempotent)
        return subject

    if callable(target) and not isinstance(target, str):
        return register(target)
    return register


def registered(name: str) -> Registered | None:
    return _registered.get(name)


def registered_names() -> list[str]:
    return sorted(_registered)
