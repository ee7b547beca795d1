"""What a tool is to an agent: a name, a description, a JSON schema, and how to run it.

Every form `function_list` takes (a registered name, `{name: config}`, a
callable, a tool object, a tool service) becomes a `Tool` here, in the
driver, so a bad entry is refused at `create_component`, naming the tool.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Protocol

import attrs

from actorsim._core.chat import ToolCall
from actorsim._errors import ToolSpecError

JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_PYTHON_TYPES: dict[Any, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean",
    list: "array", tuple: "array", dict: "object", type(None): "null",
}


IDEMPOTENCY_KEY = "idempotency_key"
"""A tool's parameter that is given the call's own key (`<reply id>/<call id>`), never by the model: the same
whenever the call is made again (a restarted agent, a resumed run), so that its side effect happens once."""


class ServiceLink(Protocol):
    """How a tool served by a `ToolService` is reached (see `actorsim.tools._service`)."""

    @property
    def service(self) -> str: ...

    def call(self, tool: Tool, call: ToolCall, key: str) -> Generator[Any, Any, Any]: ...


@attrs.frozen(eq=False)
class Tool:
    """One tool an agent may call.

    `timeout` bounds one call (None: no bound); an `idempotent` tool of a
    tool service is called again after the service died during a call.
    `service` is set for a tool served by a `ToolService`; else `function`
    runs in the agent's own process. A `keyed` tool's function is given the
    call's key as `idempotency_key` (see `IDEMPOTENCY_KEY`).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any] | None = None
    timeout: float | None = None
    idempotent: bool = False
    service: ServiceLink | None = None
    keyed: bool = False

    def spec(self) -> dict[str, Any]:
        """The function spec a chat-completions request's `tools` carries."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


def check_parameters(name: str, parameters: Any) -> dict[str, Any]:
    """`parameters` as a JSON-schema object, or `ToolSpecError` saying what is wrong.

    The peer's list form (`[{"name", "type", "description", "required"}]`) is taken too.
    """
    if isinstance(parameters, list):
        parameters = _from_peer_list(name, parameters)
    if not isinstance(parameters, Mapping):
        raise ToolSpecError(name, f"parameters must be a JSON-schema object (a dict), not {type(parameters).__name__}")
    if parameters.get("type") != "object":
        raise ToolSpecError(name, f"parameters must have \"type\": \"object\", not {parameters.get('type')!r}")
    properties = parameters.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ToolSpecError(name, "parameters' \"properties\" must be a dict of parameter schemas")
    for key, schema in properties.items():
        if not isinstance(schema, Mapping):
            raise ToolSpecError(name, f"parameter {key!r}: its schema must be a dict, not {schema!r}")
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if kinds is None:
            if not {"enum", "anyOf", "oneOf", "allOf", "$ref", "const"} & set(schema):
                raise ToolSpecError(name, f"parameter {key!r} has no \"type\"")
        elif not isinstance(kinds, list) or not kinds or not set(kinds) <= JSON_TYPES:
            raise ToolSpecError(
                name, f"parameter {key!r}: type {schema.get('type')!r} is not one of {sorted(JSON_TYPES)}"
            )
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
        raise ToolSpecError(name, "parameters' \"required\" must be a list of parameter names")
    unknown = [key for key in required if key not in properties]
    if unknown:
        raise ToolSpecError(name, f"required parameter(s) {unknown} are not in \"properties\"")
    return dict(parameters)


def _from_peer_list(name: str, entries: list[Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ToolSpecError(name, f"a parameter in list form needs a \"name\": {entry!r}")
        properties[entry["name"]] = {
            key: value for key, value in entry.items() if key not in ("name", "required")
        }
        if entry.get("required"):
            required.append(entry["name"])
    return {"type": "object", "properties": properties, "required": required}


def tool_from_callable(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Tool:
    """A tool whose schema comes from `function`'s type hints and docstring.

    The docstring's first paragraph describes the tool; `Args:` lines (or
    `:param x:` ones) describe parameters. Parameters without a default are required.
    """
    tool_name = str(name or getattr(function, "__name__", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise ToolSpecError(tool_name, "a tool name is 1-64 letters, digits, '_' or '-'")
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError) as error:
        raise ToolSpecError(tool_name, f"cannot read its signature: {error}") from error
    summary, described = _docstring(inspect.getdoc(function) or "")
    properties: dict[str, Any] = {}
    required = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name == IDEMPOTENCY_KEY:
            continue
        schema = _schema_of(tool_name, parameter.name, hints.get(parameter.name, str))
        if parameter.name in described:
            schema["description"] = described[parameter.name]
        properties[parameter.name] = schema
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    parameters = {"type": "object", "properties": properties, "required": required}
    return Tool(tool_name, description if description is not None else summary, parameters, function, timeout,
                idempotent, keyed=takes_key(signature))


def takes_key(signature: inspect.Signature) -> bool:
    """Whether a tool's function is to be given its call's key (a parameter named `idempotency_key`)."""
    return IDEMPOTENCY_KEY in signature.parameters


def _schema_of(tool: str, parameter: str, hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if hint in _PYTHON_TYPES:
        return {"type": _PYTHON_TYPES[hint]}
    if origin is typing.Literal:
        return {"enum": list(arguments)}
    if origin in (typing.Union, types.UnionType):
        kept = [argument for argument in arguments if argument is not type(None)]
        if len(kept) == 1:
            return _schema_of(tool, parameter, kept[0])
        return {"anyOf": [_schema_of(tool, parameter, argument) for argument in kept]}
    if origin in (list, tuple, Sequence) or origin is typing.get_origin(Sequence[int]):
        schema: dict[str, Any] = {"type": "array"}
        if arguments and arguments[0] is not Ellipsis:
            schema["items"] = _schema_of(tool, parameter, arguments[0])
        return schema
    if origin in (dict, Mapping):
        return {"type": "object"}
    raise ToolSpecError(tool, f"parameter {parameter!r}: no JSON-schema type for the hint {hint!r}")


def _docstring(text: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph, and each described parameter's text."""
    paragraphs = text.strip().split("\n\n")
    summary = " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
    described: dict[str, str] = {}
    for match in re.finditer(r"^\s*:param\s+(\w+):\s*(.+)$", text, re.MULTILINE):
        described[match.group(1)] = match.group(2).strip()
    args = re.search(r"^\s*(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", text, re.MULTILINE)
    if args:
        for match in re.finditer(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", args.group(1), re.MULTILINE):
            described[match.group(1)] = match.group(2).strip()
    if summary.startswith((":param", "Args:")):
        summary = ""
    return summary, described
