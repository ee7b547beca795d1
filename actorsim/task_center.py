"""The task center: drives a task through the Environment and the agents.

It lives in the driver and owns nothing that must survive: queues and history
belong to the Environment actor, memories to the agents.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import attrs

from actorsim._actors.agent_host import (
    AgentHost,
    Chunk,
    Describe,
    GetMemory,
    GetMemoryState,
    Reply,
    RestoreMemory,
    Retrying,
    RunStep,
)
from actorsim._actors.environment import (
    AddRoles,
    BuryDeadLetters,
    DeadLetter,
    Environment,
    GetDeadLetters,
    GetHistory,
    GetPending,
    GetUserRequirements,
    PendingRoles,
    Publish,
    Release,
    TakePending,
)
from actorsim._actors.registry import AgentInfo, FindAgent, ListAgents, Register, Registry, SetStatus
from actorsim._component import AgentHandle
from actorsim._envelope import USER_REQUIREMENT, Frame, Message
from actorsim._errors import AgentFailedError
from actorsim._ids import new_id
from actorsim._replay import ReplayDivergence, active_replay
from actorsim._roles import ALL, check_known, resolve_recipients, role_list
from actorsim._runtime import RunOptions, Runtime, current_runtime, new_run_id
from actorsim._supervision import Supervision, supervision_from
from actorsim.agents import Agent
from actorsim.llm import ChatMessage
from actorsim.memory import MemoryState
from actorsim.transport import ActorRef, CallFailed, load_transport

notices = logging.getLogger("actorsim")
"""Where news for people waiting on a step goes (a model server being retried); see `actorsim.ui.show_notices`."""


class EnvironmentView:
    """Reads the Environment's state, for users and tests."""

    def __init__(self, runtime: Runtime, ref: ActorRef) -> None:
        self._runtime = runtime
        self._ref = ref

    def history(self, role: str | None = None) -> list[Message]:
        """Every message in order, or those `role` sent or received."""
        return list(self._runtime.ask(self._ref, GetHistory(role)))

    def pending_roles(self) -> list[str]:
        return list(self._runtime.ask(self._ref, PendingRoles()))

    def pending(self, role: str) -> list[Message]:
        return list(self._runtime.ask(self._ref, GetPending(role)))

    def user_requirements(self) -> list[Message]:
        return list(self._runtime.ask(self._ref, GetUserRequirements()))

    def dead_letters(self) -> list[DeadLetter]:
        """Messages whose recipient failed for good, each with the error that ended it."""
        return list(self._runtime.ask(self._ref, GetDeadLetters()))


class RegistryView:
    """Reads the agent registry."""

    def __init__(self, runtime: Runtime, ref: ActorRef) -> None:
        self._runtime = runtime
        self._ref = ref

    def agents(self) -> list[AgentInfo]:
        return list(self._runtime.ask(self._ref, ListAgents()))

    def find(self, role: str) -> AgentInfo:
        info: AgentInfo = self._runtime.ask(self._ref, FindAgent(role))
        return info


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
    ) -> None:
        """`log_dir` is where a plain (`remote=False`) task center logs its run; a
        remote one logs to its runtime's (see `actorsim.init`). `supervision` is
        the policy of the Environment and the Registry (agents bring their own)."""
        policy = supervision_from(supervision)
        if remote:
            self.runtime = runtime or current_runtime()
        else:
            self.runtime = Runtime(load_transport("inline"), RunOptions(log_dir=log_dir), new_run_id())
            # A plain task center owns its run: end it (threads, log file) when the task center goes.
            weakref.finalize(self, self.runtime.shutdown)
        self.name = name
        self.remote = remote
        env_ref = self.runtime.spawn(Environment, name=f"{name}/environment", supervision=policy)
        registry_ref = self.runtime.spawn(Registry, name=f"{name}/registry", supervision=policy)
        self.runtime.supervisor.join_group(name, [env_ref.name, registry_ref.name])
        self._env_ref = env_ref
        self.environment = EnvironmentView(self.runtime, env_ref)
        self.registry = RegistryView(self.runtime, registry_ref)
        self._registry_ref = registry_ref
        self._agents: dict[str, tuple[ActorRef, AgentInfo]] = {}
        self._role_of: dict[str, str] = {}  # actor name -> role
        # Each agent's memory as of its last finished step, given back to it after a restart.
        self._memories: dict[str, tuple[list[ChatMessage], list[str]]] = {}
        # Agents that may have finished a step whose reply was never taken (the caller left it part-way):
        # their memory is set back to the driver's copy before they answer again.
        self._unsynced: set[str] = set()
        self._trace_id: str | None = None
        self._step = 0
        self._clock = 0  # Lamport clock of the driver: after every reply it has seen
        self._replay = active_replay()

    # -- setting up

    def add_agents(self, agents: Sequence[AgentHandle | Agent]) -> None:
        """Register agents; their roles join the Environment in this order.

        Everything is checked before anything starts, so a refused batch leaves
        no trace.
        """
        if isinstance(agents, AgentHandle | Agent) or not isinstance(agents, Iterable):
            raise TypeError("add_agents takes a list of agents")
        agents = list(agents)
        for agent in agents:
            self._check_mode(agent)
        roles = [agent.role for agent in agents]
        for role in roles:
            if role in self._agents or roles.count(role) > 1:
                raise ValueError(f"add_agents: role {role!r} is already taken")
        members = [self._start(agent) for agent in agents]
        self._ask_env(AddRoles(
            tuple(info.role for _, info in members if not info.is_watcher),
            tuple(info.role for _, info in members if info.is_watcher),
        ))
        for ref, info in members:
            self.runtime.ask(self._registry_ref, Register(info))
            self._agents[info.role] = (ref, info)
            self._role_of[ref.name] = info.role
            self._keep_memory(ref, info.role)
        self.runtime.supervisor.join_group(self.name, [ref.name for ref, _ in members])

    def _keep_memory(self, ref: ActorRef, role: str) -> None:
        """Start the driver's copy of the agent's memory (it may come with one, from its storage)."""
        state: MemoryState = self.runtime.ask(ref, GetMemoryState())
        memory = self._memories[role] = (list(state.turns), list(state.handled))
        # The snapshot holds the copy, not the task center: a plain one is still freed when dropped.
        self.runtime.supervisor.keep_snapshot(ref.name, "memory", lambda: _restore_request(memory))

    def _remember(self, role: str, added: MemoryState) -> None:
        turns, handled = self._memories[role]
        turns.extend(added.turns)
        handled.extend(added.handled)

    def _check_mode(self, agent: object) -> None:
        if isinstance(agent, AgentHandle):
            if not self.remote or agent.runtime is not self.runtime:
                raise TypeError(
                    f"agent {agent.role!r} runs on the {agent.runtime.transport_name!r} transport; "
                    "create the task center with remote=True on the same run"
                )
        elif isinstance(agent, Agent):
            if self.remote:
                raise TypeError(
                    f"agent {agent.role!r} was made with remote=False; the task center is remote: "
                    "create both the same way"
                )
        else:
            raise TypeError(f"add_agents: expected agents from create_component, got {agent!r}")

    def _start(self, agent: AgentHandle | Agent) -> tuple[ActorRef, AgentInfo]:
        """The agent's actor, started here for a plain agent."""
        if isinstance(agent, AgentHandle):
            return agent.ref, agent.info
        ref = self.runtime.spawn(
            functools.partial(AgentHost, agent),
            name=agent.name,
            supervision=agent.supervision,
            failure_type=AgentFailedError,
        )
        return ref, self.runtime.ask(ref, Describe())

    @property
    def roles(self) -> list[str]:
        """Roles in registration order."""
        return list(self._agents)

    def _queue_roles(self) -> list[str]:
        return [role for role, (_, info) in self._agents.items() if not info.is_watcher]

    def _ask_env(self, request: Any) -> Any:
        return self.runtime.ask(self._env_ref, request)

    # -- the task

    def send_task_request(
        self, task: str, send_to: str | Sequence[str] = ALL, send_from: str = USER_REQUIREMENT
    ) -> Message:
        """Record `task` in the Environment for `send_to`; a user requirement opens a new trace."""
        if not isinstance(task, str):
            raise TypeError(f"task must be a str, not {type(task).__name__}")
        if not isinstance(send_from, str):
            raise TypeError(f"send_from must be a role name, not {send_from!r}")
        if send_from != USER_REQUIREMENT:
            check_known([send_from], known=self.roles, argument="send_from")
        recipients = resolve_recipients(send_to, sender=send_from, roles=self._queue_roles(), argument="send_to")
        self._clock += 1
        if send_from == USER_REQUIREMENT or self._trace_id is None:
            message = Message(task, send_from, recipients, step=self._step, clock=self._clock)
            self._trace_id = message.trace_id
        else:
            message = Message(
                task, send_from, recipients, trace_id=self._trace_id, step=self._step, clock=self._clock
            )
        self._publish(message)
        return message

    def _publish(self, message: Message, answers: tuple[str, ...] = ()) -> None:
        self._ask_env(Publish(message, answers=answers))
        if self._replay is not None:
            recorded = self._replay.check(message)
            if recorded is not None and self._replay.until and recorded.message_id.startswith(self._replay.until):
                self._show_state(recorded)
                raise SystemExit(0)

    def _show_state(self, reached: Message) -> None:
        """What `actorsim replay --until` prints: queues, memories and history at that message."""
        from rich.console import Console
        from rich.pretty import Pretty

        console = Console()
        console.line()
        console.rule(f"replay stopped at {reached.message_id} ({reached.sent_from})")
        for role, (ref, info) in self._agents.items():
            pending = [] if info.is_watcher else self.environment.pending(role)
            console.print(f"[bold]{role}[/] pending: {[f'{m.sent_from}: {m.content}' for m in pending]}")
            memory = self.runtime.ask(ref, GetMemory())
            console.print(Pretty([f"{turn.role}: {turn.content}" for turn in memory]))
        console.print("[bold]history[/]")
        for message in self.environment.history():
            console.print(f"  {message.sent_from} -> {', '.join(message.send_to)}: {message.content}")

    def step(
        self,
        task: str | None = None,
        round: int = 1,
        send_to: str | Sequence[str] = ALL,
        allowed_roles: str | Sequence[str] | None = None,
        user_response: str | None = None,
    ) -> Iterator[Frame]:
        """Let this step's responders answer at once; yield their frames as they come.

        Responders are `allowed_roles`, else the roles with pending messages.
        Arguments are checked here, before any step runs.
        """
        if task is not None and not isinstance(task, str):
            raise TypeError(f"task must be a str or None, not {type(task).__name__}")
        if not isinstance(round, int) or isinstance(round, bool) or round < 1:
            raise TypeError(f"round must be an int >= 1, not {round!r}")
        if user_response is not None and not isinstance(user_response, str):
            raise TypeError(f"user_response must be a str or None, not {type(user_response).__name__}")
        if send_to != ALL:
            check_known(role_list(send_to, argument="send_to"), known=self._queue_roles(), argument="send_to")
        allowed = None
        if allowed_roles is not None:
            allowed = role_list(allowed_roles, argument="allowed_roles")
            check_known(allowed, known=self.roles, argument="allowed_roles")
            for role in allowed:
                if (failure := self._failure(role)) is not None:
                    raise failure
                info = self._agents[role][1]
                if info.human_input_mode == "ON" and user_response is None:
                    raise ValueError(f"allowed_roles: human agent {role!r} responds: pass user_response")
        return self._steps(task, round, send_to, allowed, user_response)

    def _steps(
        self,
        task: str | None,
        rounds: int,
        send_to: str | Sequence[str],
        allowed: tuple[str, ...] | None,
        user_response: str | None,
    ) -> Iterator[Frame]:
        for round_index in range(1, rounds + 1):
            yield from self._one_step(task, send_to, allowed, user_response, round_index)

    def _take_messages(
        self, allowed: tuple[str, ...] | None, user_response: str | None
    ) -> dict[str, tuple[Message, ...]]:
        """This step's responders, in registration order, with the messages they pull."""
        if allowed is None:
            # A human with nothing to say yet keeps its messages until it speaks.
            silent = () if user_response is not None else tuple(
                role for role, (_, info) in self._agents.items() if info.human_input_mode == "ON"
            )
            taken: dict[str, tuple[Message, ...]] = self._ask_env(TakePending(passed_over=silent))
            return {role: taken[role] for role in self._agents if role in taken}
        readers = tuple(role for role in allowed if not self._agents[role][1].is_watcher)
        taken = self._ask_env(TakePending(readers)) if readers else {}
        history = self._ask_env(GetHistory()) if len(readers) < len(allowed) else ()
        return {role: taken.get(role, history) for role in allowed}

    def _one_step(
        self,
        task: str | None,
        send_to: str | Sequence[str],
        allowed: tuple[str, ...] | None,
        user_response: str | None,
        round_index: int,
    ) -> Iterator[Frame]:
        received = self._take_messages(allowed, user_response)
        if not received:
            return
        self._step += 1
        self.runtime.log("step.started", flush=False, step=self._step, round=round_index, responders=list(received))
        state = _StepState(received)
        for role in list(received):
            if (failure := self._failure(role)) is not None:
                state.failed.append(failure)
                self._give_up_on(role, received.pop(role), failure)
        state.requests = {
            role: self._run_step(role, messages, task, send_to, user_response, round_index)
            for role, messages in received.items()
        }
        state.order = list(state.requests)
        state.owed = {role for role in state.requests if not self._agents[role][1].is_watcher}
        for role in self._unsynced.intersection(state.requests):
            self.runtime.ask(self._agents[role][0], _restore_request(self._memories[role]))
            self._unsynced.discard(role)
        try:
            deliveries = dict(state.requests)
            while deliveries:
                crashes = yield from self._deliver(deliveries, state)
                deliveries = self._recover(crashes, state)
        except BaseException as error:
            self._unsynced.update(role for role in state.requests if role not in state.replies)
            if isinstance(error, GeneratorExit):
                # Left part-way (the caller stopped iterating): replies already made are published
                # out of turn rather than lost; what no one answered waits in its queue again.
                for role in state.order[state.published:]:
                    self._publish_reply(role, state)
            if isinstance(error, ReplayDivergence) and self._replay is not None:
                self._replay.write_report(error)
            self.runtime.log("step.failed", step=self._step, error=repr(error), unanswered=sorted(state.owed))
            raise
        finally:
            if state.owed:
                self._ask_env(Release(tuple(state.owed)))
        self.runtime.supervisor.restart_deferred()
        self.runtime.log("step.finished", step=self._step)
        if state.failed:
            raise state.failed[0]

    def _deliver(
        self, deliveries: dict[str, RunStep], state: _StepState
    ) -> Generator[Frame, None, dict[str, tuple[ActorRef, BaseException]]]:
        """Stream the responders' replies; return the calls that crashed."""
        text = dict.fromkeys(deliveries, "")
        crashes: dict[str, tuple[ActorRef, BaseException]] = {}
        current = self.runtime.supervisor.current
        calls = [(current(self._agents[role][0].name), step) for role, step in deliveries.items()]
        for ref, item in self.runtime.transport.stream(calls, timeout=self.runtime.options.step_timeout):
            role = self._role_of[ref.name]
            if isinstance(item, Chunk):
                # A step delivered again streams its reply again: show only what was not shown yet.
                so_far = text[role] = text[role] + item.text
                shown = state.shown.get(role, "")
                if len(so_far) > len(shown):
                    state.shown[role] = so_far
                    yield Frame(item.role, so_far[max(len(shown), len(so_far) - len(item.text)):], item.message_id)
            elif isinstance(item, Reply):
                self._clock = max(self._clock, item.message.clock)
                self._remember(role, item.remembered)
                state.replies[role] = item
                self._publish_in_order(state)
            elif isinstance(item, Retrying):
                notices.warning("%s", item)
            elif isinstance(item, CallFailed):
                if isinstance(item.error, ReplayDivergence):
                    raise item.error  # the replay ends here: a restart would only diverge again
                crashes[role] = (ref, item.error)
        return crashes

    def _recover(self, crashes: dict[str, tuple[ActorRef, BaseException]], state: _StepState) -> dict[str, RunStep]:
        """Restart the agents that crashed; the steps to deliver to them again."""
        again = {}
        for role, (ref, error) in crashes.items():
            try:
                self.runtime.supervisor.crashed(ref, error)
            except AgentFailedError as given_up:
                state.failed.append(given_up)
                self._give_up_on(role, state.received[role], given_up)
                state.owed.discard(role)
                state.replies[role] = None
                self._publish_in_order(state)
                continue
            if role in state.replies:  # it died after its reply reached us: nothing is owed
                continue
            self.runtime.log(
                "message.redelivered", role=role, reply_id=state.requests[role].reply_id,
                message_ids=[m.message_id for m in state.received[role]], cause=repr(error),
            )
            again[role] = state.requests[role]
        return again

    def _publish_in_order(self, state: _StepState) -> None:
        """Publish in responder order, whatever order replies finish in: a run's history is reproducible."""
        while state.published < len(state.order) and state.order[state.published] in state.replies:
            self._publish_reply(state.order[state.published], state)
            state.published += 1

    def _publish_reply(self, role: str, state: _StepState) -> None:
        """Publish `role`'s reply, if it made one to publish, as the answer to what it received."""
        if (reply := state.replies.get(role)) is not None and reply.publish:
            self._publish(reply.message, answers=tuple(m.message_id for m in state.received[role]))
            state.owed.discard(role)

    def _failure(self, role: str) -> AgentFailedError | None:
        error = self.runtime.supervisor.failure(self._agents[role][0].name)
        return error if isinstance(error, AgentFailedError) else None

    def _give_up_on(self, role: str, messages: Sequence[Message], error: AgentFailedError) -> None:
        """The agent is past its budget: its messages go to the dead letters, the Registry marks it failed."""
        if messages and not self._agents[role][1].is_watcher:
            self._ask_env(BuryDeadLetters(tuple(DeadLetter(m, role, str(error)) for m in messages)))
        if self._agents[role][1].status != "failed":
            self.runtime.ask(self._registry_ref, SetStatus(role, "failed"))
            ref, info = self._agents[role]
            self._agents[role] = (ref, attrs.evolve(info, status="failed"))

    def _run_step(
        self,
        role: str,
        received: tuple[Message, ...],
        task: str | None,
        send_to: str | Sequence[str],
        user_response: str | None,
        round_index: int,
    ) -> RunStep:
        info = self._agents[role][1]
        if info.human_input_mode == "TERMINAL" and user_response is None:
            user_response = self._replay.human_input(role) if self._replay else input(f"<{role}>: ")
            self.runtime.log("human.input", role=role, text=user_response)
        return RunStep(
            received=received,
            reply_id=new_id(),
            send_to=resolve_recipients(send_to, sender=role, roles=self._queue_roles(), argument="send_to"),
            trace_id=self._trace_id,
            step=self._step,
            round=round_index,
            clock=self._clock,
            task=task,
            user_response=user_response if info.is_human else None,
        )

    def close(self) -> None:
        """Stop the Environment, the Registry and the agents of this task center."""
        if not self.remote:
            self.runtime.shutdown()
            return
        for ref, _ in self._agents.values():
            self.runtime.stop(ref)
        self.runtime.stop(self._env_ref)
        self.runtime.stop(self._registry_ref)


def _restore_request(memory: tuple[list[ChatMessage], list[str]]) -> RestoreMemory:
    """The request that gives an agent back the driver's copy of its memory."""
    turns, handled = memory
    return RestoreMemory(MemoryState(tuple(turns), tuple(handled)))


@attrs.define
class _StepState:
    """One step on its way: who answers what, what came back, what is published and still owed."""

    received: dict[str, tuple[Message, ...]]
    requests: dict[str, RunStep] = attrs.Factory(dict)
    order: list[str] = attrs.Factory(list)  # responders, in the order their replies are published
    owed: set[str] = attrs.Factory(set)
    replies: dict[str, Reply | None] = attrs.Factory(dict)  # None: its supervisor gave up
    published: int = 0
    shown: dict[str, str] = attrs.Factory(dict)  # what each reply has shown so far, across deliveries
    failed: list[AgentFailedError] = attrs.Factory(list)
