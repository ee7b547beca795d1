"""Chat models: one protocol, backends chosen by the seed's `llm` dict.

``{"model_server": "scripted", "replies": [...]}`` is offline and
deterministic; ``"openai"`` talks to any OpenAI-compatible server;
``"dashscope"`` takes the seed's config and goes through DashScope's
OpenAI-compatible endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from actorsim._core.chat import ChatMessage, ToolCall
from actorsim.llm._limits import LIMIT_NAMES, Permit, PermitRequest, ServerLimits, Throttled, limits_from
from actorsim.llm._openai import OpenAIChatModel, OpenAIConfig
from actorsim.llm._price import Price, price_from
from actorsim.llm._protocol import ChatModel, CutShort, ModelItem, RetryNotice, stream_events, takes_tools
from actorsim.llm._scripted import ScriptedConfig, ScriptedModel
from actorsim.llm._settings import SETTING_NAMES, GenerationSettings

DASHSCOPE_API_BASE = "https://dashscope.aliyuncs.com/compatible-mode/v1"
MODEL_SERVERS = ("scripted", "openai", "dashscope")


def _config(config_class: type[Any], server: str, options: Mapping[str, Any]) -> Any:
    """Build an attrs config, naming the bad key rather than failing deep inside."""
    known = {field.name for field in attrs.fields(config_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"llm config for model_server {server!r}: unknown key(s) {unknown}; known: {sorted(known)}"
        )
    try:
        return config_class(**options)
    except TypeError as error:
        raise ValueError(f"llm config for model_server {server!r}: {error}") from error


def _parse(llm: Mapping[str, Any]) -> tuple[str, Any]:
    """The model server an `llm` dict names and its checked config; nothing is built or connected."""
    if not isinstance(llm, Mapping):
        raise TypeError(f"llm must be a dict config or a ChatModel, not {type(llm).__name__}")
    options = dict(llm)
    server = options.pop("model_server", None)
    price_from(options.pop("price", None))  # any server's calls may cost: checked here, kept by the model
    limited = {name: options.pop(name) for name in LIMIT_NAMES if name in options}
    limits_from(limited)  # checked here; the run's driver enforces them (see `served_by`)
    if server == "scripted":
        if limited:
            raise ValueError(f"llm config: {sorted(limited)} limit a model server; model_server 'scripted' has none")
        return server, _config(ScriptedConfig, server, options)
    if server == "openai":
        options.setdefault("api_key", os.environ.get("OPENAI_API_KEY"))
        return server, _config(OpenAIConfig, server, options)
    if server == "dashscope":
        options.setdefault("api_base", DASHSCOPE_API_BASE)
        options["api_key"] = options.get("api_key") or os.environ.get("DASHSCOPE_API_KEY")
        if not options["api_key"]:
            raise ValueError("llm config for model_server 'dashscope' needs api_key or DASHSCOPE_API_KEY")
        return server, _config(OpenAIConfig, server, options)
    # A misspelt model_server key is named, as any other misspelt key is.
    known = {field.name for config in (ScriptedConfig, OpenAIConfig) for field in attrs.fields(config)}
    unknown = sorted(set(options) - known)
    where = f"unknown key(s) {unknown}; " if unknown else ""
    if server is None:
        raise ValueError(f"llm config: {where}model_server is missing (one of {list(MODEL_SERVERS)})")
    raise ValueError(f"llm config: {where}model_server must be one of {list(MODEL_SERVERS)}, got {server!r}")


def check_llm(llm: Mapping[str, Any] | ChatModel) -> None:
    """Raise what `build_chat_model` would, without building the model: checked in the caller,
    before an agent's actor is spawned."""
    if not isinstance(llm, ChatModel):
        _parse(llm)


def build_chat_model(llm: Mapping[str, Any] | ChatModel) -> ChatModel:
    """Make the model an `llm` config describes; a ready `ChatModel` passes through."""
    if isinstance(llm, ChatModel):
        return llm
    server, config = _parse(llm)
    model: ScriptedModel | OpenAIChatModel = ScriptedModel(config) if server == "scripted" else OpenAIChatModel(config)
    model.price = price_from(llm.get("price"))
    if isinstance(model, OpenAIChatModel):
        model.limits = limits_from(llm)
    return model


def served_by(llm: Mapping[str, Any] | ChatModel) -> tuple[tuple[str, str], ServerLimits] | None:
    """The server (`api_base`, `model`) an agent's calls go to, and its limits; None for a model with no server.

    What the run's driver keys its limiter by: every agent of one server shares it.
    """
    if isinstance(llm, OpenAIChatModel):
        return llm.config.server_key, llm.limits
    if isinstance(llm, ChatModel):
        return None
    server, config = _parse(llm)
    if not isinstance(config, OpenAIConfig):
        return None
    return config.server_key, limits_from(llm)


__all__ = [
    "ChatMessage",
    "ChatModel",
    "CutShort",
    "GenerationSettings",
    "LIMIT_NAMES",
    "MODEL_SERVERS",
    "ModelItem",
    "OpenAIChatModel",
    "OpenAIConfig",
    "Permit",
    "PermitRequest",
    "Price",
    "RetryNotice",
    "SETTING_NAMES",
    "ScriptedConfig",
    "ScriptedModel",
    "ServerLimits",
    "Throttled",
    "ToolCall",
    "build_chat_model",
    "check_llm",
    "limits_from",
    "served_by",
    "stream_events",
    "takes_tools",
]
