"""`create_component` and the handles it returns for agents run as actors."""

from __future__ import annotations

import functools
import weakref
from typing import Any, TypeVar

from actorsim._actors.agent_host import AgentHost, Describe, GetMemory
from actorsim._actors.registry import AgentInfo
from actorsim._errors import AgentFailedError
from actorsim._options import check_options
from actorsim._roles import ALL
from actorsim._runtime import Runtime, current_runtime
from actorsim._supervision import supervision_from
from actorsim.agents import Agent
from actorsim.llm import ChatMessage, check_llm
from actorsim.routing import SendTo, check_send_to
from actorsim.tools import ToolService, resolve_tools
from actorsim.transport import ActorRef

T = TypeVar("T")


class AgentHandle:
    """An agent running as an actor; its methods block for the actor's answer."""

    def __init__(self, runtime: Runtime, ref: ActorRef, info: AgentInfo | None, send_to: SendTo = ALL) -> None:
        """`info` None: the agent describes itself when first asked, with every other agent not described yet."""
        self.runtime = runtime
        self.ref = ref
        self._info = info
        self._start_error: BaseException | None = None
        self.send_to = send_to  # where its replies go when a step does not say: kept in the driver, which routes
        if info is None:
            _undescribed.setdefault(runtime, []).append(self)

    @property
    def info(self) -> AgentInfo:
        """What the agent says of itself; raises what its constructor raised, for an agent that failed to start."""
        if self._info is None and self._start_error is None:
            _describe(self.runtime)
        if self._info is None:
            assert self._start_error is not None
            raise self._start_error
        return self._info

    @property
    def name(self) -> str:
        """The agent's actor name, unique in its run."""
        return self.info.name

    @property
    def role(self) -> str:
        """The role the agent plays in its task center."""
        return self.info.role

    def get_history(self) -> list[ChatMessage]:
        """The agent's memory: every prompt turn and reply it has had."""
        history: list[ChatMessage] = self.runtime.ask(self.ref, GetMemory())
        return history

    def stop(self) -> None:
        """Stop the agent's actor; later requests to it raise `ActorStoppedError`."""
        self.runtime.stop(self.ref)

    def __repr__(self) -> str:
        return f"<AgentHandle {self.ref.name!r} on {self.runtime.transport_name}>"


_undescribed: weakref.WeakKeyDictionary[Runtime, list[AgentHandle]] = weakref.WeakKeyDictionary()
"""Per run, hosted agents started and not asked to describe themselves yet: asked together, one request per host."""


def _describe(runtime: Runtime) -> None:
    handles = _undescribed.pop(runtime, [])
    for handle, answer in zip(handles, runtime.ask_many([(handle.ref, Describe()) for handle in handles]), strict=True):
        if isinstance(answer, BaseException):
            handle._start_error = answer
        else:
            handle._info = answer


def create_component(
    cls: type[T], name: str, remote: bool = False, *, runtime: Runtime | None = None, **kwargs: Any
) -> Any:
    """Make a TaskCenter, an agent or a tool service, as the seed's `create_component` does.

    With `remote=True` an agent runs as an actor on the current run (see
    `actorsim.init`) and a handle comes back; with `remote=False` it is the
    plain object. A TaskCenter always lives in the calling process; with
    `remote=True` its Environment and Registry are actors. A `ToolService`
    with `remote=True` is served by actors of its own. On the Ray transport,
    `placement=` ("spread", "pack", "node:<id>", "label:<key>=<value>") puts
    this component's actors there, over the run's `placement`; the other
    transports, and `remote=False`, refuse it (ValueError). An option the class
    does not take is refused, naming it and the accepted ones; so is a tool
    of `function_list` that cannot be one. Raises `TypeError`
    for a bad name or class.
    """
    from actorsim.task_center import TaskCenter

    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, not {name!r}")
    if isinstance(cls, type) and issubclass(cls, TaskCenter | ToolService):
        check_options(cls, kwargs, leave_out=("self", "name", "remote", "runtime"))
        return cls(name=name, remote=remote, runtime=runtime, **kwargs)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"create_component makes a TaskCenter, an Agent subclass or a ToolService, not {cls!r}")
    placement = kwargs.pop("placement", None)
    if placement is not None and not remote:
        raise ValueError("placement= is for components made with remote=True on the 'ray' transport")
    check_options(cls, kwargs)
    if kwargs.get("function_list"):
        # Resolved here, in the driver: names are looked up where they were registered, and only
        # specs travel to the agent's process (a tool service's handle would not pickle).
        kwargs["function_list"] = resolve_tools(kwargs["function_list"])
    if kwargs.get("llm") is not None:
        check_llm(kwargs["llm"])  # here, before any actor is spawned or any run is started
    if not remote:
        return cls(name=name, **kwargs)
    runtime = runtime or current_runtime()
    runtime.check_placement(placement)  # before anything starts
    # The driver routes replies: a policy (maybe a lambda) stays here rather than travel to the actor.
    send_to = kwargs.pop("send_to", ALL)
    check_send_to(send_to)
    if kwargs.get("llm") is not None:
        kwargs["llm"] = runtime.interventions.choose_model(kwargs.get("role") or name, kwargs["llm"])
    ref = runtime.spawn(
        functools.partial(AgentHost.build, cls, {"name": name, **kwargs}),
        name=name,
        supervision=supervision_from(kwargs.get("supervision")),
        failure_type=AgentFailedError,
        hosted=True,
        placement=placement,
    )
    # An agent in an actor of its own has started (or raised) by now: it describes itself at once. Hosted
    # agents start in batches and describe themselves together, when first asked.
    info = None if runtime.hosts_agents else runtime.ask(ref, Describe())
    return AgentHandle(runtime, ref, info, send_to)
