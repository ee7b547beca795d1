"""actorsim: LLM agents as message-passing actors, on one process, one machine or a Ray cluster."""

import logging as _logging

from actorsim._actors.environment import DeadLetter
from actorsim._actors.registry import AgentInfo
from actorsim._component import AgentHandle, create_component
from actorsim._envelope import USER_REQUIREMENT, Frame, Message
from actorsim._errors import (
    ActorDiedError,
    ActorsimError,
    ActorStoppedError,
    AgentFailedError,
    AskTimeoutError,
    ComponentFailedError,
    LLMError,
    RemoteError,
    TransportUnavailableError,
)
from actorsim._runtime import Runtime, current_runtime, init, shutdown
from actorsim._supervision import Supervision
from actorsim.agents import Agent, RolePlay
from actorsim.llm import ChatMessage, ChatModel
from actorsim.memory import Memory, MemoryState
from actorsim.task_center import EnvironmentView, RegistryView, TaskCenter
from actorsim.transport import TRANSPORTS

__version__ = "0.1.0"

# A library shows nothing unless the application asks (`actorsim.ui.show_notices`, or its own logging setup).
_logging.getLogger("actorsim").addHandler(_logging.NullHandler())

__all__ = [
    "ActorDiedError",
    "ActorStoppedError",
    "ActorsimError",
    "Agent",
    "AgentFailedError",
    "AgentHandle",
    "AgentInfo",
    "AskTimeoutError",
    "ChatMessage",
    "ChatModel",
    "ComponentFailedError",
    "DeadLetter",
    "EnvironmentView",
    "Frame",
    "LLMError",
    "Memory",
    "MemoryState",
    "Message",
    "RegistryView",
    "RemoteError",
    "RolePlay",
    "Runtime",
    "Supervision",
    "TRANSPORTS",
    "TaskCenter",
    "TransportUnavailableError",
    "USER_REQUIREMENT",
    "create_component",
    "current_runtime",
    "init",
    "shutdown",
]
