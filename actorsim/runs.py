"""Reading run logs back: one run is the folder `logs/<run_id>/`, its files merged in time order."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import psutil

from actorsim._core.envelope import Message
from actorsim._errors import RunLogError
from actorsim._runlog import FORMAT_VERSION, pid_of_file

ERROR_EVENTS = frozenset(
    {
        "actor.failed", "actor.crashed", "actor.given_up", "llm.call.failed", "step.failed", "tool.call.failed",
        "transport.restarted",
    }
)


AGENT_BEHAVIOURS = frozenset({"AgentBehaviour", "AgentHost"})
"""How `actor.started` names an agent's behaviour: "AgentHost" in logs written before it was renamed."""


DRIVER_LATE = 3
"""Heartbeats a driver may miss before a reader takes it for dead (its own machine's check comes first)."""


@attrs.frozen
class Usage:
    """Token counts of model calls, as their servers reported them, and their cost where the `llm` config has a
    `price` (None where none of the calls had one). A call whose server sent no counts adds nothing."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.total_tokens + other.total_tokens, cost)

    @classmethod
    def of(cls, event: dict[str, Any]) -> Usage:
        """A `llm.call.finished` event's."""
        return cls.counted(event.get("usage"), event.get("cost"))

    @classmethod
    def counted(cls, counts: Mapping[str, Any] | None, cost: float | None = None) -> Usage:
        """A call's, from the counts its server sent: the total it gave, else prompt and completion added up."""
        counts = counts or {}
        prompt, completion = int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0)
        return cls(prompt, completion, int(counts.get("total_tokens") or prompt + completion), cost)


@attrs.frozen
class Run:
    """The events of one run, from every process, in time order.

    `notes` says what the reader had to pass over: the truncated last line of a file whose process is gone.
    """

    run_id: str
    directory: Path
    events: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()

    def of_type(self, *names: str) -> list[dict[str, Any]]:
        """The events of these kinds, in time order."""
        return [event for event in self.events if event["event"] in names]

    @property
    def started_at(self) -> float:
        """When the run's first event was logged (seconds since the epoch)."""
        return float(self.events[0]["ts"]) if self.events else 0.0

    @property
    def transport(self) -> str:
        """The transport the run used, or "?" when the log does not say."""
        started = self.of_type("run.started")
        return str(started[0]["transport"]) if started else "?"

    @property
    def replay_of(self) -> str | None:
        """The run this one replayed, for a replay."""
        started = self.of_type("run.started")
        return started[0].get("replay_of") if started else None

    @property
    def resumes(self) -> str | None:
        """The run this one resumed (`actorsim resume`), whose history it holds again before going on."""
        started = self.of_type("run.started")
        return started[0].get("resumes") if started else None

    @property
    def usage(self) -> dict[str, Usage]:
        """Each agent's model calls' token counts (and cost), by role; `total_usage` sums them."""
        found: dict[str, Usage] = {}
        for event in self.of_type("llm.call.finished"):
            role = str(event.get("role", "?"))
            found[role] = found.get(role, Usage()) + Usage.of(event)
        return found

    @property
    def total_usage(self) -> Usage:
        """The run's model calls' token counts (and cost), all agents together."""
        return sum(self.usage.values(), Usage())

    @property
    def agents(self) -> list[str]:
        """The names of the run's agents, sorted."""
        return sorted({e["actor"] for e in self.of_type("actor.started") if e.get("behaviour") in AGENT_BEHAVIOURS})

    @property
    def messages(self) -> list[Message]:
        """Every published message, in publication order."""
        return [Message.from_dict(event["message"]) for event in self.of_type("message.published")]

    def tool_calls(self) -> dict[str, list[dict[str, Any]]]:
        """Each reply's tool calls, by the reply's message id: the `tool.call.finished`/`failed` events,
        with the call's arguments from its `tool.call.started`. They are among the reply's causes."""
        arguments: dict[tuple[Any, str], Any] = {}
        calls: dict[str, list[dict[str, Any]]] = {}
        for event in self.of_type("tool.call.started", "tool.call.finished", "tool.call.failed"):
            key = (event.get("role"), event["call_id"])
            if event["event"] == "tool.call.started":
                arguments[key] = event.get("arguments")
            elif event.get("reply_id"):
                calls.setdefault(event["reply_id"], []).append({**event, "arguments": arguments.get(key)})
        return calls

    @property
    def errors(self) -> list[dict[str, Any]]:
        """What went wrong; a step the user stopped with Ctrl-C (or a replay stopping where it did) is not."""
        return [
            event for event in self.events
            if event["event"] in ERROR_EVENTS and not event.get("deliberate")
            and not str(event.get("error", "")).startswith("KeyboardInterrupt")  # logs from before `deliberate`
        ]

    @property
    def ending(self) -> str:
        """How the run ended: "interrupted" (Ctrl-C), "stopped", "driver died", or "" (still running).

        A driver died when its run never stopped and either its process is gone (read on its own machine)
        or it has not written for `DRIVER_LATE` heartbeats (read anywhere). `driver_last_seen` says when.
        """
        if self.of_type("run.interrupted"):
            return "interrupted"
        if self.of_type("run.stopped"):
            return "stopped"
        return "driver died" if self._driver_died() else ""

    @property
    def driver_last_seen(self) -> float | None:
        """When the driver last wrote to the log (seconds since the epoch), or None without a driver's event."""
        return max((float(e["ts"]) for e in self.events if e.get("process") == "driver"), default=None)

    def _driver_died(self) -> bool:
        started = self.of_type("run.started")
        if not started:
            return False
        driver = started[0]
        if driver.get("host") == socket.gethostname() and process_gone(int(driver["pid"]), float(driver["ts"])):
            return True
        heartbeat = driver.get("heartbeat_s")
        last = self.driver_last_seen
        return heartbeat is not None and last is not None and time.time() - last > DRIVER_LATE * float(heartbeat)

    @property
    def processes(self) -> set[int]:
        """The ids of every process that logged for the run."""
        return {int(event["pid"]) for event in self.events}


def process_gone(pid: int, since: float | None = None) -> bool:
    """Whether process `pid` of this machine has ended: none runs under that id, a zombie does, or one
    started after `since` (seconds since the epoch) does, process ids coming round again."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return since is not None and process.create_time() > since + 1.0  # a later process: not the writer
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # another user's process runs under that id: take it for alive
        return False


def _read_file(path: Path, notes: list[str] | None = None) -> Iterable[dict[str, Any]]:
    """The events of one file; errors name the file and line.

    A truncated last line is what a process killed while writing leaves: it is passed over (and said, in
    `notes`) when that process is gone from this machine. Anywhere else, or while its process may still be
    writing, it is refused.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        writer = pid_of_file(path.name)
        if writer is None or not _writer_gone(writer, lines[:-1]):
            raise RunLogError(f"{path}:{len(lines)}: truncated line (the process may have died while writing)")
        if notes is not None:
            notes.append(f"{path}:{len(lines)}: a truncated last line, passed over: its process {writer} is gone")
        lines.pop()
    prompts: dict[str, list[Any]] = {}
    for number, line in enumerate(lines, start=1):
        event = parse_event(line, f"{path}:{number}")
        if event["event"] == "llm.call.started" and "prompt_new" in event:
            _rebuild_prompt(event, prompts, f"{path}:{number}")
        yield event


def parse_event(line: bytes, where: str) -> dict[str, Any]:
    """One line of a run log as its event; `RunLogError` naming `where` (file:line) for anything else."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise RunLogError(f"{where}: not a JSON event ({error})") from None
    if not isinstance(event, dict) or "event" not in event or "ts" not in event:
        raise RunLogError(f"{where}: not an actorsim event")
    if event.get("v") != FORMAT_VERSION:
        raise RunLogError(f"{where}: log format version {event.get('v')!r}; this actorsim reads {FORMAT_VERSION}")
    return event


def writer_gone(path: Path, first_line: bytes | None) -> bool:
    """Whether the process that wrote `path` (named in its file name; `first_line` says on which machine) is gone:
    then a truncated last line is what its death left."""
    writer = pid_of_file(path.name)
    return writer is not None and _writer_gone(writer, [first_line] if first_line is not None else [])


def _writer_gone(pid: int, lines: Iterable[bytes]) -> bool:
    """Whether process `pid`, which wrote `lines` (the first event that reads says on which machine), is gone."""
    host = socket.gethostname()
    for line in lines:
        try:
            host = orjson.loads(line).get("host", host)
            break
        except (orjson.JSONDecodeError, AttributeError):
            continue
    return bool(host == socket.gethostname() and process_gone(pid))


def _rebuild_prompt(event: dict[str, Any], prompts: dict[str, list[Any]], where: str) -> None:
    """Give a model call its whole `prompt`: the part it shares with its actor's previous call, then the rest.

    An actor's calls are all in its own process's file, so the chain never crosses files.
    """
    before = prompts.get(event.get("actor", ""), [])
    reused = event.get("prompt_reused", 0)
    if not isinstance(reused, int) or not 0 <= reused <= len(before):
        raise RunLogError(f"{where}: a model call reuses {reused!r} turns of a previous prompt of {len(before)}")
    event["prompt"] = prompts[event.get("actor", "")] = before[:reused] + list(event["prompt_new"])


def read_run(directory: str | os.PathLike[str]) -> Run:
    """Read a run folder; errors name the file and line."""
    folder = Path(directory)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise RunLogError(f"{folder}: no run log here (expected a folder of .jsonl files)")
    notes: list[str] = []
    events = [event for path in files for event in _read_file(path, notes)]
    events.sort(key=lambda event: event["ts"])
    return Run(folder.name, folder, tuple(events), tuple(notes))


def find_run(log_dir: str | os.PathLike[str], run: str) -> Path:
    """A run by folder path, by id, or by a unique prefix of its id.

    "latest" is the newest run that is not itself a replay.
    """
    if Path(run).is_dir():
        return Path(run)
    folders = _run_folders(log_dir)
    if run == "latest":
        # Newest first, stopping at the first original: each look reads a whole run.
        for path in reversed(folders):
            if read_run(path).replay_of is None:
                return path
    matches = [path for path in folders if path.name.startswith(run)]
    if len(matches) != 1:
        known = ", ".join(path.name for path in folders[-5:]) or "none"
        problem = "no run" if not matches else f"{len(matches)} runs"
        raise RunLogError(f"{problem} matching {run!r} in {log_dir} (latest: {known})")
    return matches[0]


def _run_folders(log_dir: str | os.PathLike[str]) -> list[Path]:
    """Run folders in `log_dir`, oldest first (run ids begin with their start time)."""
    return sorted(path for path in Path(log_dir).glob("*") if path.is_dir() and any(path.glob("*.jsonl")))


def list_runs(log_dir: str | os.PathLike[str]) -> list[Run]:
    """Every run logged in `log_dir`, oldest first; raises `RunLogError` for a log it cannot read."""
    return [read_run(folder) for folder in _run_folders(log_dir)]


class Causality:
    """Which message caused which, from the messages' parent ids."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self.messages = {message.message_id: message for message in messages}
        self.children: dict[str, list[Message]] = {}
        for message in self.messages.values():
            for parent in message.parent_ids:
                self.children.setdefault(parent, []).append(message)

    def get(self, message_id: str) -> Message:
        """The message with this id or unique id prefix; raises `RunLogError` otherwise."""
        matches = [m for m in self.messages.values() if m.message_id.startswith(message_id)]
        if len(matches) != 1:
            raise RunLogError(
                f"{len(matches)} messages with id {message_id!r}" if matches else f"no message with id {message_id!r}"
            )
        return matches[0]

    def roots(self) -> list[Message]:
        """The messages no other message of the run caused: the tasks."""
        return [m for m in self.messages.values() if not any(p in self.messages for p in m.parent_ids)]

    def causes(self, message: Message) -> list[Message]:
        """Every message this one follows from, earliest first."""
        seen: dict[str, Message] = {}
        frontier = list(message.parent_ids)
        while frontier:
            parent = self.messages.get(frontier.pop())
            if parent is not None and parent.message_id not in seen:
                seen[parent.message_id] = parent
                frontier.extend(parent.parent_ids)
        return sorted(seen.values(), key=lambda m: (m.clock, m.created_at))

    def effects(self, message: Message) -> list[Message]:
        """The messages that answered this one directly."""
        return self.children.get(message.message_id, [])

    def cause_tree(self, message: Message) -> list[TraceNode]:
        """What `message` follows from, as trees from the first causes (the task) down to its parents."""
        causes = self.causes(message)
        among = {cause.message_id for cause in causes}
        roots = [cause for cause in causes if not among.intersection(cause.parent_ids)]
        seen: set[str] = set()
        return [self._tree(root, seen, among) for root in roots]

    def effect_tree(self, message: Message) -> list[TraceNode]:
        """What `message` caused: the replies to it, the replies to those, and so on."""
        seen = {message.message_id}
        return [self._tree(effect, seen, None) for effect in self.effects(message) if effect.message_id not in seen]

    def _tree(self, message: Message, seen: set[str], among: set[str] | None) -> TraceNode:
        """`message` and its effects (only those in `among`, if given), each message shown once."""
        seen.add(message.message_id)
        children = []
        for effect in self.effects(message):
            if effect.message_id not in seen and (among is None or effect.message_id in among):
                children.append(self._tree(effect, seen, among))
        return TraceNode(message, tuple(children))


@attrs.frozen
class TraceNode:
    """A message in a trace, with the messages that follow from it there."""

    message: Message
    children: tuple[TraceNode, ...] = ()


__all__ = [
    "Causality", "ERROR_EVENTS", "Run", "RunLogError", "TraceNode", "Usage", "find_run", "list_runs", "read_run",
]
