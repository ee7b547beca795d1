"""Turn a `function_list` into tools, refusing what cannot be one with the tool's name."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from actorsim._errors import ToolSpecError
from actorsim.tools._registry import registered, registered_names
from actorsim.tools._spec import Tool, check_parameters, takes_key, tool_from_callable

_CALL_OPTIONS = ("timeout", "idempotent")


def resolve_tools(function_list: Sequence[Any]) -> tuple[Tool, ...]:
    """Every entry as a `Tool`: names, `{name: config}`, callables, tool objects, tool services."""
    if isinstance(function_list, str | Mapping) or not isinstance(function_list, Iterable):
        raise TypeError(f"function_list must be a list, not {type(function_list).__name__}")
    tools: list[Tool] = []
    for entry in function_list:
        tools.extend(_entry(entry))
    names = [tool.name for tool in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ToolSpecError(twice[0], "is in function_list more than once")
    return tuple(tools)


def _entry(entry: Any) -> list[Tool]:
    if isinstance(entry, Tool):
        return [attrs.evolve(entry, parameters=check_parameters(entry.name, entry.parameters))]
    if isinstance(entry, str):
        return [_by_name(entry, {})]
    if isinstance(entry, Mapping):
        tools = []
        for name, config in entry.items():
            if not isinstance(config, Mapping):
                raise ToolSpecError(str(name), f"its config must be a dict, not {type(config).__name__}")
            tools.append(_by_name(str(name), dict(config)))
        return tools
    served = getattr(entry, "served_tools", None)
    if callable(served):
        return list(served())
    if all(hasattr(entry, field) for field in ("name", "description", "parameters")):
        return [_from_object(entry, {})]
    if callable(entry):
        return [tool_from_callable(entry)]
    raise TypeError(
        f"function_list: {entry!r} is not a tool: give a registered name, {{name: config}}, "
        "a function, a tool object (name, description, parameters, call) or a ToolService"
    )


def _by_name(name: str, config: dict[str, Any]) -> Tool:
    found = registered(name)
    if found is None:
        raise ToolSpecError(name, f"no tool is registered by that name; registered: {registered_names()}")
    options = {key: config.pop(key) for key in _CALL_OPTIONS if key in config}
    if found.factory is not None:
        try:
            instance = found.factory(**config)
        except TypeError as error:
            raise ToolSpecError(name, f"its config {sorted(config)} does not fit: {error}") from error
        tool = _from_object(instance, {"timeout": found.timeout, "idempotent": found.idempotent}, name)
    else:
        if config:
            raise ToolSpecError(
                name, f"unknown config key(s) {sorted(config)}; a function tool takes {list(_CALL_OPTIONS)}"
            )
        assert found.tool is not None
        tool = found.tool
    return attrs.evolve(tool, **options) if options else tool


def _from_object(instance: Any, defaults: Mapping[str, Any], name: str | None = None) -> Tool:
    tool_name = str(name or instance.name)
    run = getattr(instance, "call", None)
    if not callable(run):
        if not callable(instance):
            raise ToolSpecError(tool_name, "a tool object needs a call(**arguments) method")
        run = instance
    try:
        keyed = takes_key(inspect.signature(run))
    except (TypeError, ValueError):  # a callable without a signature Python can read: it takes no key
        keyed = False
    return Tool(
        tool_name,
        str(instance.description),
        check_parameters(tool_name, instance.parameters),
        run,
        getattr(instance, "timeout", defaults.get("timeout")),
        bool(getattr(instance, "idempotent", defaults.get("idempotent", False))),
        keyed=keyed,
    )
