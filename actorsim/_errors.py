"""Every exception actorsim raises of its own, in one place.

    ActorsimError
    ├── ActorStoppedError            the actor was stopped; it takes no more messages
    │   └── ActorDiedError           its process is gone (killed, crashed): its supervisor restarts it
    ├── ComponentFailedError         past its restart budget: its supervisor gave up on it
    │   └── AgentFailedError         ... an agent: the step that needed it raises this
    │       └── PoisonMessageError   a step crashed its agent max_deliveries times: dead-lettered, the agent goes on
    ├── AskTimeoutError (+ TimeoutError)   no answer within the timeout
    ├── RemoteError                  an actor's exception that could not travel back as itself
    ├── LLMError                     a model call failed for good
    │   └── TransientServerError     a failure worth another try (busy server, broken stream)
    ├── BudgetExceeded               the run's budget of tokens or cost is spent: no new model call starts
    ├── TransportUnavailableError (+ ImportError)   the transport's package is missing
    ├── TransportStartError (+ RuntimeError)   the transport's own processes did not come up
    ├── ClusterUnreachableError (+ ConnectionError)   no Ray cluster answered at the address to join
    ├── PlacementError (+ ValueError)   a placement no live node of the cluster fits
    ├── RunLogError (+ ValueError)   a run log that cannot be read
    ├── ToolSpecError (+ ValueError)   a `function_list` entry that cannot be a tool
    ├── RoutingError (+ ValueError)  a send_to naming an unknown group or topic; a policy that chose badly or raised
    ├── ReplayDivergence             a replay did what its recording did not
    ├── ReplayStopped                a replay reached `until`, or where its recording was interrupted
    └── ReplayedFault                a recorded crash, made again by a replay

An error whose `restartable` attribute is False tells the supervisor that no
restart can cure it: the component is given up on at once.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actorsim._core.envelope import Message
    from actorsim._core.state import RunState


class ActorsimError(Exception):
    """Base class of every error raised by actorsim itself.

    `restartable` says whether restarting the component that raised it could
    help. It is False for a fault outside the component (a model server that
    refuses connections, a refused key, a bad config): its supervisor gives up
    at once instead of restarting it into the same fault.
    """

    restartable: bool = True


class ActorStoppedError(ActorsimError):
    """The actor was stopped or died; it takes no more messages."""


class ActorDiedError(ActorStoppedError):
    """The actor's process is gone without being stopped (killed, crashed); its supervisor restarts it."""


class ComponentFailedError(ActorsimError):
    """A component crashed more often than its restart budget allows; its supervisor gave up on it.

    `log_line` is where the run log records the giving up (`path:line`), or None without a log.
    """

    kind = "component"

    def __init__(self, name: str, cause: BaseException, restarts: int, log_line: str | None) -> None:
        where = f"; see {log_line}" if log_line else ""
        if getattr(cause, "restartable", True) is False:
            # One line a person can act on: who failed, and the cause (which names the server).
            problem = f"{self.kind} {name!r} failed, not restarted (a restart cannot cure this): {cause}"
        else:
            problem = f"{self.kind} {name!r} failed after {restarts} restarts: {type(cause).__name__}: {cause}"
        super().__init__(problem + where)
        self.name = name
        self.cause = cause
        self.restarts = restarts
        self.log_line = log_line

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.cause, self.restarts, self.log_line))


class AgentFailedError(ComponentFailedError):
    """An agent is past its restart budget: the step that needed its `role` could not be answered."""

    kind = "agent"

    @property
    def role(self) -> str:
        """The role of the agent that failed."""
        return self.name


class PoisonMessageError(AgentFailedError):
    """A step crashed its agent `max_deliveries` times (`Supervision`): its messages went to the dead letters.

    Unlike its parent's case, the agent is not given up on: restarted, it
    answers the next step. Caught as an `AgentFailedError` by code that
    handles that; `restarts` is here the number of deliveries.
    """

    def __init__(self, name: str, cause: BaseException, restarts: int, log_line: str | None) -> None:
        super().__init__(name, cause, restarts, log_line)
        where = f"; see {log_line}" if log_line else ""
        ActorsimError.__init__(
            self,
            f"agent {name!r} crashed on each of {restarts} deliveries of one step: its messages are dead letters, "
            f"the agent goes on; last cause: {type(cause).__name__}: {cause}{where}",
        )


class BudgetExceeded(ActorsimError):
    """The run's `Budget` is spent: steps that would call a model were not delivered.

    The step's other replies were published and its undelivered messages wait
    in their queues: raise the budget (`Runtime.budget = ...`) and step again.
    `spent` says what ran out ("tokens: 1,204 of 1,000"), `waiting` the roles
    whose step was not delivered.
    """

    restartable = False

    def __init__(self, spent: str, waiting: tuple[str, ...]) -> None:
        shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
        super().__init__(f"the run's budget is spent ({spent}): not delivered to {shown}; "
                         "raise it (runtime.budget = Budget(...)) and step again")
        self.spent = spent
        self.waiting = waiting

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.spent, self.waiting))


class RoutingError(ActorsimError, ValueError):
    """A `send_to` policy could not route: an unknown group or topic, unknown roles chosen, or the policy raised.

    The message names the policy and the roles; nothing was stored.
    """


class AskTimeoutError(ActorsimError, TimeoutError):
    """An actor did not answer within the timeout."""


class RemoteError(ActorsimError):
    """An actor raised an exception that could not travel back as itself."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nRemote traceback:\n{remote_traceback}")
        self.type_name = type_name
        self.remote_traceback = remote_traceback


class LLMError(ActorsimError):
    """A model call failed for good (bad config, refused key, retries exhausted).

    `restartable=False` when restarting the agent cannot cure it (the server
    refuses connections, answers 401/403/404): the step fails at once.
    """

    def __init__(self, message: str, *, restartable: bool = True) -> None:
        super().__init__(message)
        self.restartable = restartable

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (Thespian, Ray) with `restartable` intact.
        return (functools.partial(type(self), restartable=self.restartable), (str(self),))


class TransportUnavailableError(ActorsimError, ImportError):
    """The package a transport needs is not installed."""


class TransportStartError(ActorsimError, RuntimeError):
    """The transport's own processes did not come up (Thespian's admin did not answer, twice)."""


class ClusterUnreachableError(ActorsimError, ConnectionError):
    """No Ray cluster answered at the address to join (`address=` or $RAY_ADDRESS) within the time allowed."""


class PlacementError(ActorsimError, ValueError):
    """A placement no live node fits (an unknown node id, a label no node has); the message lists the nodes.

    No restart cures it: the supervisor gives up at once.
    """

    restartable = False


class TransientServerError(LLMError):
    """A failure worth another try: the server was busy, or down for a moment.

    `problem` is what the retry notice says went wrong ("answered 503");
    `status` the HTTP status, if the server answered, and `retry_after` the
    seconds it asked the caller to wait, if it said; `window`, when the try
    was sent and answered (wall clock), if it was; `pauses_server`, whether
    the server's answer was for every call of it (down, or its rate spent).
    """

    def __init__(
        self, message: str, *, problem: str = "failed", status: int | None = None, retry_after: float | None = None,
        window: tuple[float, float] | None = None, pauses_server: bool = False,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.status = status
        self.retry_after = retry_after
        self.window = window
        self.pauses_server = pauses_server

    def __reduce__(self) -> tuple[Any, ...]:
        again = functools.partial(
            TransientServerError, problem=self.problem, status=self.status, retry_after=self.retry_after,
            window=self.window, pauses_server=self.pauses_server,
        )
        return (again, (str(self),))


class RunLogError(ActorsimError, ValueError):
    """A run log that cannot be read: missing, truncated, corrupt, or from another version."""


class ReplayDivergence(ActorsimError):
    """The replay did something the recording did not. No restart cures it."""

    restartable = False

    def __init__(self, what: str, recorded: Any, replayed: Any) -> None:
        super().__init__(f"replay diverged: {what}")
        self.what = what
        self.recorded = recorded
        self.replayed = replayed

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReplayDivergence, (self.what, self.recorded, self.replayed))


class ReplayStopped(ActorsimError):
    """The replay reached the message `until` named (`state` is the run's state there), or where the
    recorded run was interrupted (`interrupted`). A stop asked for, not an error (`deliberate`)."""

    deliberate = True

    def __init__(self, message: Message, state: RunState | None, *, interrupted: bool = False) -> None:
        where = "where the recorded run was interrupted" if interrupted else "at the message asked for"
        super().__init__(f"replay stopped {where}: {message.message_id} ({message.sent_from})")
        self.message = message
        self.state = state
        self.interrupted = interrupted
        self.interrupts_run = interrupted  # the run log says "interrupted", as the recorded run's did


class ReplayedFault(ActorsimError):
    """A crash the recording had at this delivery, made again; `restartable` as the recording's outcome was."""

    def __init__(self, recorded: str, restartable: bool = True) -> None:
        super().__init__(f"recorded: {recorded}")
        self.recorded = recorded
        self.restartable = restartable

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReplayedFault, (self.recorded, self.restartable))

    def __repr__(self) -> str:
        return f"ReplayedFault({self.recorded})"  # the recorded error as it was logged, not quoted again


class ToolSpecError(ActorsimError, ValueError):
    """A `function_list` entry that cannot be a tool; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"function_list: tool {name!r}: {problem}")
        self.tool = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (ToolSpecError, (self.tool, str(self).split(": ", 2)[-1]))
