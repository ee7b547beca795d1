"""The agents `add_agents` is given: checked for the task center's mode, described, started."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs

from actorsim._actors.agent import AgentBehaviour
from actorsim._core.ref import ActorRef
from actorsim._core.roles import role_list
from actorsim._core.validators import name_or_none
from actorsim._engine.handles import AgentHandle
from actorsim._errors import AgentFailedError
from actorsim._protocol.agent import Describe
from actorsim._protocol.registry import AgentInfo
from actorsim._runtime.runtime import Runtime
from actorsim.agents import Agent
from actorsim.llm import build_chat_model


def check_mode(agent: object, runtime: Runtime | None) -> None:
    """Refuse an agent made the other way: `runtime` is the remote task center's run, None for a plain one."""
    if isinstance(agent, AgentHandle):
        if runtime is None or agent.runtime is not runtime:
            raise TypeError(
                f"agent {agent.role!r} runs on the {agent.runtime.transport_name!r} transport; "
                "create the task center with remote=True on the same run"
            )
    elif isinstance(agent, Agent):
        if runtime is not None:
            raise TypeError(
                f"agent {agent.role!r} was made with remote=False; the task center is remote: "
                "create both the same way"
            )
    else:
        raise TypeError(f"add_agents: expected agents from create_component, got {agent!r}")


def start(runtime: Runtime, agent: AgentHandle | Agent) -> tuple[ActorRef, AgentInfo]:
    """The agent's actor, started here for a plain agent (with the model the run's interventions choose)."""
    if isinstance(agent, AgentHandle):
        return agent.ref, agent.info
    if agent.llm is not None:
        agent.use_model(build_chat_model(runtime.interventions.choose_model(agent.role, agent.llm)))
        runtime.limits.register(agent.name, agent.llm)
    ref = runtime.spawn(
        functools.partial(AgentBehaviour, agent), name=agent.name, supervision=agent.supervision,
        failure_type=AgentFailedError,
    )
    return ref, runtime.ask(ref, Describe())


def declared_info(agent: AgentHandle | Agent, group: str | None, topics: Sequence[str]) -> AgentInfo:
    """What the Registry will list for `agent`, with the batch's `group` and `topics` (of `add_agents`) added."""
    own = agent.info if isinstance(agent, AgentHandle) else AgentInfo(
        agent.name, agent.role, "", is_watcher=agent.is_watcher, group=agent.group, topics=agent.topics
    )
    name_or_none(group, argument="add_agents: group")
    extra = role_list(topics, argument="add_agents: topics")
    if group is not None and own.group not in (None, group):
        raise ValueError(f"add_agents: agent {agent.role!r} is in group {own.group!r} already, not {group!r}")
    return attrs.evolve(own, group=group or own.group, topics=tuple(dict.fromkeys([*own.topics, *extra])))
