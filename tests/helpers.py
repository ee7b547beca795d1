"""Small builders shared by the tests."""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil

from actorsim import Frame
from actorsim._runlog import capture_events
from actorsim.runs import _read_file, _rebuild_prompt, find_run, read_run
from actorsim.transport import ActorRef, Transport
from actorsim.transport._base import Calls

TASK = "what is the best solution to land on moon?"


def scripted(*replies: str, **options: Any) -> dict[str, Any]:
    """An offline model config that answers `replies` in turn."""
    return {"model_server": "scripted", "replies": list(replies), **options}


def texts_by_role(frames: Iterable[Frame]) -> dict[str, str]:
    """Join each role's frames back into its reply."""
    texts: dict[str, str] = {}
    for frame in frames:
        texts[frame.role] = texts.get(frame.role, "") + frame.content
    return texts


def prompt_text(agent: Any) -> str:
    """Everything an agent was ever prompted with, as one string."""
    return "\n".join(turn.content for turn in agent.get_history() if turn.role == "user")


@contextlib.contextmanager
def logged_events(log_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """Every run-log event of the runs under `log_dir` logged during the block, as `read_run` reads them.

    Filled when the block ends. This process's events are captured as they are logged
    (`capture_events`); other processes' (Thespian's and Ray's actors) are the lines their files
    gained during the block, found by their place in the files, not by time.
    """
    def files() -> list[Path]:
        return [path for path in log_dir.glob("*/*.jsonl") if not path.stem.endswith(f"-{os.getpid()}")]

    lines_before = {path: len(path.read_bytes().splitlines()) for path in files()}
    events: list[dict[str, Any]] = []
    with capture_events() as here:
        yield events
    prompts: dict[tuple[str, int], dict[str, list[Any]]] = collections.defaultdict(dict)
    for event in here:
        if event["event"] == "llm.call.started":
            _rebuild_prompt(event, prompts[event["run_id"], event["pid"]], "captured")
    elsewhere = [event for path in files() for event in list(_read_file(path))[lines_before.get(path, 0):]]
    events.extend(sorted([*here, *elsewhere], key=lambda event: event["ts"]))  # ordered as read_run orders them


def record_then_replay(program: Callable[..., Any]) -> tuple[Path, list[Any], Any, Any]:
    """Run `program()` (a plain task center's run), then `program(interventions=[Replay(its folder)])`.

    Returns the recording's folder and history, the `Replay` and the replayed task center (for the caller to close).
    """
    from actorsim import Replay

    recorded = program()
    original = recorded.runtime.log_config.directory
    history = recorded.environment.history()
    recorded.close()
    replay = Replay(original)
    return original, history, replay, program(interventions=[replay])


def of_kind(events: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] in kinds]


def restarts_after_kills(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`actor.restarted` events, but for actors lost with a restarted Thespian actor system.

    A SIGKILL that lands while its process writes to Thespian's admin queue
    jams it; the transport then restarts the system, and every actor of it
    (see `transport.restarted` and tests/test_thespian_admin.py).
    """
    return [event for event in of_kind(events, "actor.restarted")
            if "lost with its Thespian actor system" not in event["reason"]]


def alive(pid: int) -> bool:
    """The process runs: it exists and is not a zombie (dead, not yet reaped by its parent)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` passes; whether it holds."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def wait_until_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Poll until every process has exited; return those still alive at the deadline."""
    pids = list(pids)
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout)
    return [pid for pid in pids if alive(pid)]


def run_processes(driver_pid: int, log_dir: Path) -> set[int]:
    """Every process of the latest run now: the driver's tree (Ray's processes are in it), every
    process that has logged for the run (Thespian's actors detach), and their parents (Thespian's admin)."""
    pids = {driver_pid, *(process.pid for process in psutil.Process(driver_pid).children(recursive=True))}
    for pid in read_run(find_run(log_dir, "latest")).processes:
        pids.add(pid)
        with contextlib.suppress(psutil.NoSuchProcess):
            pids.add(psutil.Process(pid).ppid())
    return pids - {0, 1, os.getpid()}


class CountingTransport(Transport):
    """Another transport, counting the requests sent through it by type (spawns as "spawn")."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.requests: list[str] = []  # asks, and streamed calls (`open_calls`), by the request's type
        self.streamed: list[Any] = []  # the requests of streamed calls

    def spawn(self, factory: Any, *, name: str, timeout: float, placement: Any = None) -> ActorRef:
        self.requests.append("spawn")
        return self.inner.spawn(factory, name=name, timeout=timeout, placement=placement)

    def ask(self, to: ActorRef, request: Any, *, timeout: float) -> Any:
        self.requests.append(type(request).__name__)
        return self.inner.ask(to, request, timeout=timeout)

    def open_calls(self) -> Calls:
        return _CountingCalls(self.inner.open_calls(), self)

    def stop(self, ref: ActorRef) -> None:
        self.inner.stop(ref)

    def shutdown(self) -> None:
        self.inner.shutdown()


class _CountingCalls(Calls):
    """Another transport's calls, each request kept by the `CountingTransport` they were opened on."""

    def __init__(self, inner: Calls, counting: CountingTransport) -> None:
        self.inner = inner
        self.counting = counting

    def add(self, ref: ActorRef, request: Any) -> None:
        self.counting.requests.append(type(request).__name__)
        self.counting.streamed.append(request)
        self.inner.add(ref, request)

    def next(self, timeout: float) -> tuple[ActorRef, Any] | None:
        return self.inner.next(timeout)

    @property
    def open(self) -> int:
        return self.inner.open

    @property
    def ready(self) -> bool:
        return self.inner.ready

    def close(self) -> None:
        self.inner.close()
