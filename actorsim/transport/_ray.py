"""Actors on a Ray cluster, or on a private Ray instance started for this run.

Plain `ray.init()` attaches to whatever cluster already runs on the machine;
without an address we start our own (`address="local"`) in a temp dir of our
own, so parallel runs never meet, and stop it at `shutdown()`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from actorsim._errors import ActorDiedError, ActorStoppedError, AskTimeoutError
from actorsim.transport._base import (
    ActorRef,
    Behaviour,
    BehaviourFactory,
    CallFailed,
    Calls,
    Transport,
    add_remote_traceback,
)

if TYPE_CHECKING:
    from actorsim._runtime import RunOptions


class RayShell:
    """The Ray actor that hosts one behaviour."""

    def __init__(self) -> None:
        self._behaviour: Behaviour | None = None

    def start(self, factory: BehaviourFactory) -> int:
        self._behaviour = factory()
        return os.getpid()

    def ask(self, request: Any) -> Any:
        assert self._behaviour is not None, "request before start"
        return self._behaviour.receive(request)

    def stream(self, request: Any) -> Iterator[Any]:
        assert self._behaviour is not None, "request before start"
        yield from self._behaviour.receive(request)


_RemoteShell: Any = ray.remote(num_cpus=0, max_restarts=0)(RayShell)


def _unwrap(error: RayTaskError) -> BaseException:
    """Raise the actor's own exception type, as a user calling plainly expects, with the actor's traceback as a note."""
    cause = error.cause
    if not isinstance(cause, BaseException):
        return error  # its message holds the actor's traceback already
    return add_remote_traceback(cause, str(error))  # Ray words its traceback as the message


def _died(ref: ActorRef, error: RayActorError) -> ActorDiedError:
    """Ray's word that an actor is gone, as the supervisor understands it."""
    return ActorDiedError(f"actor {ref.name!r} died: {error}")


class _RayCalls(Calls):
    """Streamed calls as Ray streaming generators, taken as their items become ready."""

    def __init__(self, transport: RayTransport) -> None:
        self._transport = transport
        self._generators: dict[Any, ActorRef] = {}

    def add(self, ref: ActorRef, request: Any) -> None:
        handle = self._transport._handle(ref)
        self._generators[handle.stream.options(num_returns="streaming").remote(request)] = ref

    @property
    def open(self) -> int:
        return len(self._generators)

    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        deadline = time.monotonic() + timeout
        while self._generators:
            ready, _ = ray.wait(list(self._generators), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            generator = ready[0]
            ref = self._generators[generator]
            assert isinstance(generator, ray.ObjectRefGenerator)
            try:
                object_ref = next(generator)
                return ref, self._transport._get(ref, object_ref, timeout)
            except StopIteration:
                del self._generators[generator]
            except AskTimeoutError:
                raise
            except Exception as error:  # the call failed: the others go on
                del self._generators[generator]
                return ref, CallFailed(_died(ref, error) if isinstance(error, RayActorError) else error)
        return None

    def close(self) -> None:
        self._generators.clear()


class RayTransport(Transport):
    """Every actor is a Ray actor in this run's own namespace.

    Ray's calls may come from any thread; one lock guards the table of actors
    while they are spawned and stopped.
    """

    name = "ray"

    @classmethod
    def from_options(cls, options: RunOptions, run_id: str) -> Self:
        """`options.address` joins that Ray cluster; without one, a private instance is started."""
        return cls(address=options.address)

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None) -> None:
        self._owns_cluster = address is None
        self._temp_dir = tempfile.mkdtemp(prefix="actorsim-ray-") if self._owns_cluster else None
        self._namespace = f"actorsim-{uuid.uuid4().hex[:12]}"
        ray.init(
            address=address or "local",
            namespace=self._namespace,
            include_dashboard=False if self._owns_cluster else None,
            num_cpus=num_cpus if self._owns_cluster else None,
            # Our own instance serves this machine only: keep it on loopback.
            _node_ip_address="127.0.0.1" if self._owns_cluster else None,
            _temp_dir=self._temp_dir,
            log_to_driver=False,
            configure_logging=False,
        )
        self._refs: dict[str, ActorRef | None] = {}  # None: being spawned
        self._spawned = itertools.count(1)
        self._lock = threading.Lock()

    def spawn(self, factory: BehaviourFactory, *, name: str, timeout: float) -> ActorRef:
        with self._lock:
            if name in self._refs:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            self._refs[name] = None  # the name is taken while the actor starts, outside the lock
            # A suffix keeps Ray's name free at once for an actor that reuses a stopped one's name.
            ray_name = f"{name}-{next(self._spawned)}"
        try:
            handle: Any = _RemoteShell.options(name=ray_name).remote()
            try:
                pid = self._get(ActorRef(name, handle), handle.start.remote(factory), timeout)
            except BaseException:
                ray.kill(handle)
                raise
        except BaseException:
            with self._lock:
                del self._refs[name]
            raise
        ref = self._refs[name] = ActorRef(name, handle, pid)
        return ref

    def _handle(self, ref: ActorRef) -> Any:
        if self._refs.get(ref.name) is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")
        return ref.address

    @staticmethod
    def _get(ref: ActorRef, object_ref: Any, timeout: float) -> Any:
        try:
            return ray.get(object_ref, timeout=timeout)
        except GetTimeoutError:
            raise AskTimeoutError(f"actor {ref.name!r} did not answer within {timeout} s") from None
        except RayActorError as error:
            raise _died(ref, error) from error
        except RayTaskError as error:
            raise _unwrap(error) from None

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        return self._get(to, self._handle(to).ask.remote(request), timeout)

    def open_calls(self) -> Calls:
        return _RayCalls(self)

    def stop(self, ref: ActorRef) -> None:
        with self._lock:
            if self._refs.get(ref.name) is not ref:
                return
            del self._refs[ref.name]
        ray.kill(ref.address)

    def shutdown(self) -> None:
        for ref in list(self._refs.values()):
            if ref is not None:
                self.stop(ref)
        ray.shutdown()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


transport_class = RayTransport
