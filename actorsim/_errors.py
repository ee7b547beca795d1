"""Exceptions a user of actorsim may catch."""

from __future__ import annotations


class ActorsimError(Exception):
    """Base class of every error raised by actorsim itself."""


class ActorStoppedError(ActorsimError):
    """The actor was stopped or died; it takes no more messages."""


class AskTimeoutError(ActorsimError, TimeoutError):
    """An actor did not answer within the timeout."""


class RemoteError(ActorsimError):
    """An actor raised an exception that could not travel back as itself."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nRemote traceback:\n{remote_traceback}")
        self.type_name = type_name
        self.remote_traceback = remote_traceback


class LLMError(ActorsimError):
    """A model call failed for good (bad config, refused key, retries exhausted)."""


class TransportUnavailableError(ActorsimError, ImportError):
    """The package a transport needs is not installed."""
