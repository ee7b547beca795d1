"""actorsim: LLM agents as message-passing actors, on one process, one machine or a Ray cluster."""

import logging as _logging

from actorsim._component import create_component
from actorsim._core.budget import Budget
from actorsim._core.envelope import USER_REQUIREMENT, Frame, Message, ToolFrame
from actorsim._core.options import OtelExport
from actorsim._core.state import RunState
from actorsim._core.supervision import Supervision
from actorsim._engine.handles import AgentHandle
from actorsim._errors import (
    ActorDiedError,
    ActorsimError,
    ActorStoppedError,
    AgentFailedError,
    AskTimeoutError,
    BudgetExceeded,
    ClusterUnreachableError,
    ComponentFailedError,
    LLMError,
    PlacementError,
    PoisonMessageError,
    RemoteError,
    ReplayDivergence,
    ReplayStopped,
    RoutingError,
    RunLogError,
    TransportStartError,
    TransportUnavailableError,
)
from actorsim._init import init
from actorsim._protocol.environment import DeadLetter
from actorsim._protocol.registry import AgentInfo
from actorsim._recorded import recorded
from actorsim._replay import Replay
from actorsim._runtime.current import current_runtime, shutdown
from actorsim._runtime.interventions import Intervention
from actorsim._runtime.runtime import Runtime
from actorsim._version import __version__ as __version__
from actorsim.agents import Agent, Post, RolePlay
from actorsim.llm import ChatMessage, ChatModel, GenerationSettings, ToolCall
from actorsim.memory import Memory, MemoryState
from actorsim.routing import Hash, LeastPending, Policy, Random, RoundRobin, Topic
from actorsim.task_center import EnvironmentView, RegistryView, TaskCenter
from actorsim.tools import Tool, ToolService, register_tool
from actorsim.transport import TRANSPORTS

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
    "Budget",
    "BudgetExceeded",
    "ChatMessage",
    "ChatModel",
    "ClusterUnreachableError",
    "ComponentFailedError",
    "DeadLetter",
    "EnvironmentView",
    "Frame",
    "GenerationSettings",
    "Hash",
    "Intervention",
    "LLMError",
    "LeastPending",
    "Memory",
    "MemoryState",
    "Message",
    "OtelExport",
    "PlacementError",
    "PoisonMessageError",
    "Policy",
    "Post",
    "Random",
    "RegistryView",
    "RemoteError",
    "Replay",
    "ReplayDivergence",
    "ReplayStopped",
    "RolePlay",
    "RoundRobin",
    "RoutingError",
    "RunLogError",
    "RunState",
    "Runtime",
    "Supervision",
    "TRANSPORTS",
    "TaskCenter",
    "Tool",
    "ToolCall",
    "ToolFrame",
    "ToolService",
    "Topic",
    "TransportStartError",
    "TransportUnavailableError",
    "USER_REQUIREMENT",
    "create_component",
    "current_runtime",
    "init",
    "recorded",
    "register_tool",
    "shutdown",
]
