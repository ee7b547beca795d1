"""Actors on a Ray cluster, or on a private Ray instance started for this run.

Plain `ray.init()` attaches to whatever cluster already runs on the machine;
we join a cluster only when asked (`address=`, or `$RAY_ADDRESS` as `ray
submit` and `ray job submit` set it; see `_ray_join`), and otherwise start
our own (`address="local"`) in a temp dir of our own, so parallel runs never
meet, and stop it at `shutdown()`. On a cluster, actors are placed on nodes
(`_ray_nodes`) and ship their run log to a sink on the driver's node.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import attrs
import ray
from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._errors import ActorDiedError, ActorStoppedError, AskTimeoutError, ClusterUnreachableError
from actorsim._logsink import LogSink
from actorsim._runlog import RunLogConfig, set_process_fields
from actorsim.transport._base import (
    Behaviour,
    BehaviourFactory,
    CallFailed,
    Calls,
    Transport,
    add_remote_traceback,
    streams_apart,
)
from actorsim.transport._ray_join import JOIN_TIMEOUT, check_reachable, cluster_address
from actorsim.transport._ray_nodes import NodeChooser

if TYPE_CHECKING:
    from actorsim._core.options import RunOptions


class RayShell:
    """The Ray actor that hosts one behaviour."""

    def __init__(self) -> None:
        self._behaviour: Behaviour | None = None

    def start(self, factory: BehaviourFactory) -> tuple[int, str]:
        """Build the behaviour, its run log knowing the node; where it runs (pid, node id)."""
        node = ray.get_runtime_context().get_node_id()
        set_process_fields(node=node)
        self._behaviour = factory()
        return os.getpid(), node

    def ask(self, request: Any) -> Any:
        assert self._behaviour is not None, "request before start"
        return self._behaviour.receive(request)

    def stream(self, request: Any) -> Iterator[Any]:
        assert self._behaviour is not None, "request before start"
        # Not `yield from`: Ray sends into the generator, and a plain iterator (`Detached`) has no `send`.
        for item in self._behaviour.receive(request):  # noqa: UP028
            yield item


_RemoteShell: Any = ray.remote(num_cpus=0, max_restarts=0)(RayShell)
SPARE_SHELLS = 2
"""Shells a private instance keeps started ahead of its next spawns: as many as Ray starts workers at once on a
2-core machine, so an actor that starts finds one ready while the next spares start."""
STREAMS_APART = 64
"""Requests one actor whose streams run apart (`Detached`: a host's batches) handles at once, each on a thread."""


class RaySinkActor(LogSink):
    """The sink as a Ray actor: its own events, too, say which node wrote them."""

    def __init__(self, config: RunLogConfig) -> None:
        set_process_fields(node=ray.get_runtime_context().get_node_id())
        super().__init__(config)


_RemoteSink: Any = ray.remote(num_cpus=0, max_restarts=0)(RaySinkActor)


@attrs.frozen
class RaySink:
    """The run log's sink as an actor process sees it: a handle to the sink actor on the driver's node."""

    handle: Any

    def ship(self, file_name: str, data: bytes, first_line: int) -> None:
        ray.get(self.handle.ship.remote(file_name, data, first_line))


def _unwrap(error: RayTaskError) -> BaseException:
    """Raise the actor's own exception type, as a user calling plainly expects, with the actor's traceback as a note."""
    cause = error.cause
    if not isinstance(cause, BaseException):
        return error  # its message holds the actor's traceback already
    return add_remote_traceback(cause, str(error))  # Ray words its traceback as the message


def _died(ref: ActorRef, error: RayError) -> ActorDiedError:
    """Ray's word that an actor is gone, as the supervisor understands it."""
    return ActorDiedError(f"actor {ref.name!r} died{_on(ref)}: {error}")


def _on(ref: ActorRef) -> str:
    return f" on node {ref.node}" if ref.node else ""


_WAIT_SLICE_S = 0.1
"""The longest a streamed call's wait blocks in Ray at once."""


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
            # In slices: Ctrl-C reaches Python only between them (a wait of a second delayed a stop by one).
            left = deadline - time.monotonic()
            ready, _ = ray.wait(list(self._generators), num_returns=1, timeout=max(0.0, min(left, _WAIT_SLICE_S)))
            if not ready:
                if left > _WAIT_SLICE_S:
                    continue
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
                if isinstance(error, RayActorError | ObjectLostError):
                    return ref, CallFailed(self._transport._died(ref, error))
                return ref, CallFailed(error)
        return None

    def close(self) -> None:
        self._generators.clear()


class RayTransport(Transport):
    """Every actor is a Ray actor in this run's own namespace.

    Ray's calls may come from any thread; one lock guards the table of actors
    while they are spawned and stopped.
    """

    name = "ray"
    takes_placement = True

    @classmethod
    def from_options(cls, options: RunOptions, run_id: str) -> Self:
        """Join the cluster of `options.address`, else of $RAY_ADDRESS; without either, start a private instance."""
        return cls(address=options.address, placement=options.placement)

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        placement: Placement | None = None,
        join_timeout: float = JOIN_TIMEOUT,
        ship_logs: bool | None = None,
    ) -> None:
        """`ship_logs`: actors send their run log to the driver's node (default: when joining a cluster)."""
        joining = cluster_address(address)
        if joining is not None:
            check_reachable(joining, timeout=join_timeout, source="address" if address else "$RAY_ADDRESS")
        self._owns_cluster = joining is None
        self._temp_dir = tempfile.mkdtemp(prefix="actorsim-ray-") if self._owns_cluster else None
        self._namespace = f"actorsim-{uuid.uuid4().hex[:12]}"
        try:
            ray.init(
                address=joining or "local",
                namespace=self._namespace,
                include_dashboard=False if self._owns_cluster else None,
                num_cpus=num_cpus if self._owns_cluster else None,
                # Our own instance serves this machine only: keep it on loopback.
                _node_ip_address="127.0.0.1" if self._owns_cluster else None,
                _temp_dir=self._temp_dir,
                log_to_driver=False,
                configure_logging=False,
            )
        except ConnectionError as error:
            raise ClusterUnreachableError(f"could not join the Ray cluster at {joining!r}: {error}") from error
        self.joined = joining
        """The address of the cluster joined, or None for a private instance."""
        self.driver_node: str = ray.get_runtime_context().get_node_id()
        set_process_fields(node=self.driver_node)
        self._placement = placement
        self._nodes = NodeChooser(self.driver_node)
        self._ship_logs = not self._owns_cluster if ship_logs is None else ship_logs
        self._sink: Any = None
        self._refs: dict[str, ActorRef | None] = {}  # None: being spawned
        self._spawned = itertools.count(1)
        self._lock = threading.Lock()
        self._spares: deque[Any] = deque(
            _RemoteShell.remote() for _ in range(SPARE_SHELLS if self._owns_cluster else 0)
        )

    def log_sink(self, config: RunLogConfig) -> RaySink | None:
        """On a cluster, a sink actor on the driver's node writes every actor's run log into the run's folder."""
        if not self._ship_logs:
            return None
        if self._sink is None:
            self._sink = _RemoteSink.options(
                name=f"log-sink-{config.run_id}",
                scheduling_strategy=NodeAffinitySchedulingStrategy(self.driver_node, soft=False),
            ).remote(config)
        return RaySink(self._sink)

    def spawn(
        self, factory: BehaviourFactory, *, name: str, timeout: float, placement: Placement | None = None
    ) -> ActorRef:
        """Start the actor on the node its placement (else the run's) chooses; see `_ray_nodes`."""
        with self._lock:
            if name in self._refs:
                raise ValueError(f"an actor named {name!r} already exists in this run")
            self._refs[name] = None  # the name is taken while the actor starts, outside the lock
            # A suffix keeps Ray's name free at once for an actor that reuses a stopped one's name.
            ray_name = f"{name}-{next(self._spawned)}"
        try:
            options = self._nodes.options(placement or self._placement)
            if streams_apart(factory):  # its streams run side by side, as Ray's threads of one actor
                options["max_concurrency"] = STREAMS_APART
            handle = self._shell(ray_name, options)
            try:
                pid, node = self._get(ActorRef(name, handle), handle.start.remote(factory), timeout)
            except ActorDiedError:
                strategy = options.get("scheduling_strategy")
                self._nodes.actor_died_on(getattr(strategy, "node_id", None))  # it died starting there
                raise
            except BaseException:
                ray.kill(handle)
                raise
        except BaseException:
            with self._lock:
                del self._refs[name]
            raise
        ref = self._refs[name] = ActorRef(name, handle, pid, node)
        return ref

    def _shell(self, ray_name: str, options: dict[str, Any]) -> Any:
        """A new shell; on a private instance a spare started ahead, whose worker has imported actorsim already
        (about a second per actor on 2 cores), and a new spare in its place. On a cluster every actor is named,
        for `ray list actors` and the dashboard, and placed: no spare fits."""
        if not self._owns_cluster or options:
            return _RemoteShell.options(name=ray_name, **options).remote()
        with self._lock:
            self._spares.append(_RemoteShell.remote())
            return self._spares.popleft()

    def _handle(self, ref: ActorRef) -> Any:
        if self._refs.get(ref.name) is not ref:
            raise ActorStoppedError(f"actor {ref.name!r} is stopped")
        return ref.address

    def _died(self, ref: ActorRef, error: RayError) -> ActorDiedError:
        """An actor of ours is gone: avoid its node for a while, and have the run log say what it lost."""
        self._nodes.actor_died_on(ref.node)
        if self._sink is not None and ref.pid is not None:
            self._sink.lost.remote(ref.pid, ref.name, ref.node, type(error).__name__)
        return _died(ref, error)

    def _get(self, ref: ActorRef, object_ref: Any, timeout: float) -> Any:
        try:
            return ray.get(object_ref, timeout=timeout)
        except GetTimeoutError:
            raise AskTimeoutError(f"actor {ref.name!r} did not answer within {timeout} s") from None
        except (RayActorError, ObjectLostError) as error:
            # ObjectLostError: the answer was stored on a node that died, with the actor that made it. The
            # request's effect went with it (it is journaled only once answered): a successor may take it again.
            raise self._died(ref, error) from error
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

    def sink_stats(self) -> dict[str, float] | None:
        """What the run-log sink stored so far (batches, bytes, seconds), when actors ship their logs."""
        return None if self._sink is None else dict(ray.get(self._sink.stats.remote(), timeout=30))

    def shutdown(self) -> None:
        for ref in list(self._refs.values()):
            if ref is not None:
                self.stop(ref)
        if self._sink is not None:
            try:
                ray.get(self._sink.close.remote(), timeout=30)
            finally:
                ray.kill(self._sink)
                self._sink = None
        self._spares.clear()  # their workers end with the instance
        ray.shutdown()
        set_process_fields(node=None)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


transport_class = RayTransport
