"""The task center: the seed's API for driving a task through the Environment and the agents.

It lives in the driver and owns nothing that must survive: queues and history
belong to the Environment actor, memories to the agents. It checks the
caller's arguments and hands the work to the step engine (`actorsim._engine.steps`).
"""

from __future__ import annotations

import collections
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from actorsim._actors.environment import Environment
from actorsim._actors.registry import Registry
from actorsim._core.envelope import USER_REQUIREMENT, Frame, Message
from actorsim._core.options import RunOptions
from actorsim._core.roles import ALL, check_known, role_list
from actorsim._core.supervision import Supervision, supervision_from
from actorsim._engine.handles import AgentHandle
from actorsim._engine.members import check_mode, declared_info, start
from actorsim._engine.steps import Steps
from actorsim._engine.views import EnvironmentView, RegistryView
from actorsim._protocol.environment import ReplayJournal, Snapshot
from actorsim._runtime.current import current_runtime
from actorsim._runtime.interventions import Intervention
from actorsim._runtime.runtime import Runtime, new_run_id
from actorsim.agents import Agent
from actorsim.llm import GenerationSettings
from actorsim.routing import SendTo
from actorsim.transport import load_transport


class TaskCenter:
    """The seed's task center: `add_agents`, `send_task_request`, `step`."""

    def __init__(
        self,
        name: str = "task_center",
        *,
        remote: bool = False,
        runtime: Runtime | None = None,
        log_dir: str | os.PathLike[str] | None = "logs",
        supervision: Supervision | dict[str, Any] | None = None,
        interventions: Sequence[Intervention] = (),
        placement: str | None = None,
    ) -> None:
        """`log_dir` and `interventions` are for a plain (`remote=False`) task center's own run;
        a remote one uses its runtime's (see `actorsim.init`). `supervision` is the policy of the
        Environment and the Registry (agents bring their own); `placement` (Ray only) is where they run."""
        policy = supervision_from(supervision)
        if remote:
            self.runtime = runtime or current_runtime()
            self.runtime.check_placement(placement)
        elif placement is not None:
            raise ValueError("placement= is for task centers made with remote=True on the 'ray' transport")
        else:
            options = RunOptions(log_dir=log_dir)
            self.runtime = Runtime(load_transport("inline"), options, new_run_id(), interventions)
            # A plain task center owns its run: end it (threads, log file) when the task center goes.
            weakref.finalize(self, self.runtime.shutdown)
        self.name = name
        self.remote = remote
        env_ref = self.runtime.spawn(
            Environment, name=f"{name}/environment", supervision=policy, placement=placement
        )
        # The Environment's journal (every message) is compacted into snapshots: restarts stay fast.
        self.runtime.compact_with(env_ref.name, Snapshot())
        self.runtime.replay_with(env_ref.name, ReplayJournal)
        registry_ref = self.runtime.spawn(Registry, name=f"{name}/registry", supervision=policy, placement=placement)
        self.runtime.join_group(name, [env_ref.name, registry_ref.name])
        self.environment = EnvironmentView(self.runtime, env_ref)
        self.registry = RegistryView(self.runtime, registry_ref)
        self._steps = Steps(self.runtime, name, env_ref, registry_ref)

    def add_agents(
        self, agents: Sequence[AgentHandle | Agent], *, group: str | None = None, topics: Sequence[str] = ()
    ) -> None:
        """Register agents; their roles join the Environment in this order.

        `group` puts every agent of the batch in that group (one that declared
        another is refused), `topics` subscribes each to those topics too: the
        names routing policies address them by (see `actorsim.routing`).
        Everything is checked before anything starts, so a refused batch leaves
        no trace. Raises `TypeError` for an agent of the other mode (plain or
        remote) and `ValueError` for a role already taken, `RoutingError` for
        an agent's `send_to` that names a group or topic no agent declares.
        """
        if isinstance(agents, AgentHandle | Agent) or not isinstance(agents, Iterable):
            raise TypeError("add_agents takes a list of agents")
        agents = list(agents)
        for agent in agents:
            check_mode(agent, self.runtime if self.remote else None)
        roles = collections.Counter(agent.role for agent in agents)
        for role, times in roles.items():
            if role in self._steps.agents or times > 1:
                raise ValueError(f"add_agents: role {role!r} is already taken")
        declared = [declared_info(agent, group, topics) for agent in agents]
        self._steps.router.check_joining([(info, agent.send_to) for info, agent in zip(declared, agents, strict=True)])
        started = [start(self.runtime, agent) for agent in agents]
        members = [
            (ref, attrs.evolve(info, group=batch.group, topics=batch.topics))
            for (ref, info), batch in zip(started, declared, strict=True)
        ]
        self._steps.add(members, send_to=[agent.send_to for agent in agents])

    @property
    def roles(self) -> list[str]:
        """Roles in registration order."""
        return list(self._steps.agents)

    def send_task_request(self, task: str, send_to: SendTo = ALL, send_from: str = USER_REQUIREMENT) -> Message:
        """Record `task` in the Environment for `send_to`; a user requirement opens a new trace.

        `send_to` is a role, a list of roles, `"all"`, or a routing policy
        (see `actorsim.routing`), decided here and logged. Returns the stored
        message. Raises `TypeError` for a task that is not a str, `ValueError`
        naming an unknown role, `RoutingError` (a `ValueError`) naming the
        policy for an unknown group or topic, or a policy that chose unknown
        roles or raised; nothing is stored then.
        """
        if not isinstance(task, str):
            raise TypeError(f"task must be a str, not {type(task).__name__}")
        if not isinstance(send_from, str):
            raise TypeError(f"send_from must be a role name, not {send_from!r}")
        if send_from != USER_REQUIREMENT:
            check_known([send_from], known=self.roles, argument="send_from")
        return self._steps.send(task, send_to, send_from)

    def step(
        self,
        task: str | None = None,
        round: int = 1,
        send_to: SendTo | None = None,
        allowed_roles: str | Sequence[str] | None = None,
        user_response: str | None = None,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[Frame]:
        """Let this step's responders answer at once; yield their frames as they come.

        Responders are `allowed_roles`, else the roles with pending messages;
        replies go to `send_to` (as in `send_task_request`), else each to its
        agent's own `send_to` (`"all"` unless it says), and are published in
        responder order; a routing policy decides each reply as it is
        published. Arguments
        are checked here, before any step runs: `TypeError` for a wrong type,
        `ValueError` for an unknown role or a human responder without
        `user_response`. Iterating raises `AgentFailedError` when a responder's
        supervisor gave up on it, after the other responders have answered.
        Generation settings given here reach every responder's model, over its
        `llm` dict's, for these steps only.
        """
        given = GenerationSettings(temperature, top_p, seed, max_tokens)
        settings = given if given != GenerationSettings() else None
        if task is not None and not isinstance(task, str):
            raise TypeError(f"task must be a str or None, not {type(task).__name__}")
        if not isinstance(round, int) or isinstance(round, bool) or round < 1:
            raise TypeError(f"round must be an int >= 1, not {round!r}")
        if user_response is not None and not isinstance(user_response, str):
            raise TypeError(f"user_response must be a str or None, not {type(user_response).__name__}")
        if send_to is not None:
            self._steps.router.check(send_to)
        allowed = None
        if allowed_roles is not None:
            allowed = role_list(allowed_roles, argument="allowed_roles")
            check_known(allowed, known=self.roles, argument="allowed_roles")
            for role in allowed:
                if (failure := self._steps.failure(role)) is not None:
                    raise failure
                if self._steps.agents[role][1].human_input_mode == "ON" and user_response is None:
                    raise ValueError(f"allowed_roles: human agent {role!r} responds: pass user_response")
        return self._steps.run(task, round, send_to, allowed, user_response, settings)

    def close(self) -> None:
        """Stop the Environment, the Registry and the agents of this task center."""
        if not self.remote:
            self.runtime.shutdown()
            return
        self._steps.stop()


__all__ = ["EnvironmentView", "RegistryView", "TaskCenter"]
