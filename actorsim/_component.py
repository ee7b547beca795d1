"""`create_component` and the handles it returns for agents run as actors."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from actorsim._actors.agent_host import AgentHost, Describe, GetMemory
from actorsim._actors.registry import AgentInfo
from actorsim._errors import AgentFailedError
from actorsim._replay import active_replay
from actorsim._runtime import Runtime, current_runtime
from actorsim._supervision import supervision_from
from actorsim.agents import Agent
from actorsim.llm import ChatMessage, check_llm
from actorsim.transport import ActorRef

T = TypeVar("T")


class AgentHandle:
    """An agent running as an actor; its methods block for the actor's answer."""

    def __init__(self, runtime: Runtime, ref: ActorRef, info: AgentInfo) -> None:
        self.runtime = runtime
        self.ref = ref
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def role(self) -> str:
        return self.info.role

    def get_history(self) -> list[ChatMessage]:
        """The agent's memory: every prompt turn and reply it has had."""
        history: list[ChatMessage] = self.runtime.ask(self.ref, GetMemory())
        return history

    def stop(self) -> None:
        self.runtime.stop(self.ref)

    def __repr__(self) -> str:
        return f"<AgentHandle {self.role!r} on {self.runtime.transport_name}>"


def create_component(
    cls: type[T], name: str, remote: bool = False, *, runtime: Runtime | None = None, **kwargs: Any
) -> Any:
    """Make a TaskCenter or an agent, as the seed's `create_component` does.

    With `remote=True` an agent runs as an actor on the current run (see
    `actorsim.init`) and a handle comes back; with `remote=False` it is the
    plain object. A TaskCenter always lives in the calling process; with
    `remote=True` its Environment and Registry are actors.
    """
    from actorsim.task_center import TaskCenter

    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, not {name!r}")
    if isinstance(cls, type) and issubclass(cls, TaskCenter):
        return cls(name=name, remote=remote, runtime=runtime, **kwargs)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"create_component makes a TaskCenter or an Agent subclass, not {cls!r}")
    if kwargs.get("llm") is not None:
        check_llm(kwargs["llm"])  # here, before any actor is spawned or any run is started
    replay = active_replay()
    if replay is not None and kwargs.get("llm") is not None:
        kwargs["llm"] = replay.model_for(kwargs.get("role") or name, kwargs["llm"])
    if not remote:
        return cls(name=name, **kwargs)
    runtime = runtime or current_runtime()
    ref = runtime.spawn(
        functools.partial(AgentHost.build, cls, {"name": name, **kwargs}),
        name=name,
        supervision=supervision_from(kwargs.get("supervision")),
        failure_type=AgentFailedError,
    )
    return AgentHandle(runtime, ref, runtime.ask(ref, Describe()))
