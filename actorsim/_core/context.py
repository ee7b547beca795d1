"""The context code runs in: the reply a model call is made for, and the run in progress.

Both are known only to the layers above the code that needs them. The reply
id is a ContextVar that an agent sets around its model call, so that a model
(a replay's) may key on it. The run in progress is kept by the runtime
(`actorsim._runtime.current`), which installs its look-up here when it is
imported: code below the runtime (a tool service starting its actors) asks
for the current run through the small `LiveRun` protocol instead of importing
the runtime. autogen-core's `AgentInstantiationContext` is the model.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from actorsim._core.placement import Placement
from actorsim._core.ref import ActorRef
from actorsim._core.supervision import Supervision

current_reply: contextvars.ContextVar[str | None] = contextvars.ContextVar("actorsim_current_reply", default=None)
"""The id of the reply a model call is made for, while the agent makes it: a model may key on it."""

_this_thread = threading.local()


def stop_waits_with(stopping: threading.Event | None) -> None:
    """Waits on this thread (`wait_unless_stopped`) end once `stopping` is set: the actor it serves is being stopped.

    Per thread, not per context: an actor's requests run in a context of their own, on its thread. Set by a
    transport whose actors are threads (`local`, and the threads of a host), where a stop cannot end a process.
    """
    _this_thread.stopping = stopping


def wait_in_place(gates: Any) -> None:
    """Calls on this thread wait for their model server where they are, through `gates` (None: they pause instead).

    Set on a host's threads: a paused step goes on only with a new request to its host, which runs one
    request at a time, so it would wait for the host's whole batch to end. `gates` is the host's
    `actorsim.llm._gate.CallGates`.
    """
    _this_thread.gates = gates


def gates_in_place() -> Any:
    """What `wait_in_place` set on this thread (None if nothing)."""
    return getattr(_this_thread, "gates", None)


def current_stop_event() -> threading.Event | None:
    """What `stop_waits_with` set on this thread."""
    return getattr(_this_thread, "stopping", None)


def wait_unless_stopped(seconds: float) -> bool:
    """Sleep `seconds`, or until the actor this runs in is being stopped: whether it is."""
    stopping = current_stop_event()
    if stopping is None:
        time.sleep(seconds)
        return False
    return stopping.wait(seconds)


class LiveRun(Protocol):
    """What code below the runtime may ask of the run it belongs to; `actorsim.Runtime` is one."""

    @property
    def transport_name(self) -> str:
        """The name of the run's transport."""

    def check_placement(self, placement: Placement | str | None) -> Placement | None:
        """`placement` parsed; raises ValueError for a bad one, or for any on a transport that does not place."""

    def spawn(
        self,
        factory: Callable[[], Any],
        *,
        name: str,
        supervision: Supervision | None = None,
        placement: Placement | str | None = None,
    ) -> ActorRef:
        """Start an actor under the run's supervisor."""

    def stop(self, ref: ActorRef) -> None:
        """Stop one actor and its supervision."""


_find_run: Callable[[], LiveRun] | None = None


def install_current_run(find: Callable[[], LiveRun]) -> None:
    """How `current_run` finds (or starts) the run: installed by the runtime layer when it is imported."""
    global _find_run
    _find_run = find


def current_run() -> LiveRun:
    """The run in progress; without one, an implicit run is started (see `actorsim.current_runtime`)."""
    if _find_run is None:
        raise RuntimeError("actorsim's runtime is not loaded: import actorsim before starting components")
    return _find_run()
