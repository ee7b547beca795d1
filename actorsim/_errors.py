"""Exceptions a user of actorsim may catch."""

from __future__ import annotations

import functools
from typing import Any


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
        return self.name


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
