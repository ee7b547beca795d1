"""Replaying a recorded run: an `Intervention` that answers from the log and checks against it.

`actorsim.init(replay=...)` (or `actorsim replay RUN`, which runs the recorded
program with the replay installed) hooks the run at every point where it met
the outside world:

- ids: the driver makes the recorded message and reply ids, in the recorded
  order, so the replay's messages carry the recording's ids;
- models: every agent's model is a `ReplayModel` that answers each call with
  the recorded reply for that reply id, after checking the prompt;
- routing: each task center's routing seed is the recorded one, so the
  routing policies (round-robin starts, random draws) choose as they did;
- humans: a terminal human says what was recorded;
- faults: a delivery that crashed in the recording (its model call failed, or
  its process died) crashes again at the same point: the supervisor restarts
  the agent and delivers again, or gives up, as it did;
- messages: every published message is checked against the recording, sender
  by sender; `until` stops there with the run's state, and a recording that
  was interrupted (Ctrl-C) stops where it was.

Not replayed: crashes of the Environment or the Registry, and of an agent
between steps. Their state comes back whole after a restart, so they change
no message; the replay goes on without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from actorsim._actors.agent_host import RunStep
from actorsim._envelope import Message
from actorsim._errors import ReplayDivergence, ReplayedFault, ReplayStopped
from actorsim._intervention import Intervention, RunState
from actorsim.agents import current_reply
from actorsim.llm import ChatMessage, ChatModel, build_chat_model


@attrs.frozen
class RecordedCall:
    prompt: tuple[dict[str, str], ...]
    chunks: tuple[str, ...]
    live: bool = False  # after the fork of `live_from`: ask the real model


class ReplayModel:
    """Answers each call with the recorded reply for the same reply id, if the prompt is the recorded one.

    Keyed by reply id rather than by order, so that an agent restarted
    mid-run (a fresh `ReplayModel`) answers where the recording was. A call
    marked `live`, or one the recording does not have while `live` is
    given, is answered by the real model (`live`: its original config).
    """

    def __init__(
        self, role: str, calls: Mapping[str, RecordedCall], live: Mapping[str, Any] | ChatModel | None = None
    ) -> None:
        self.role = role
        self._calls = dict(calls)
        self._live_config = live
        self._live: ChatModel | None = None

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        reply_id = current_reply.get()
        call = self._calls.get(reply_id or "")
        if (call is None or call.live) and self._live_config is not None:
            if self._live is None:
                self._live = build_chat_model(self._live_config)
            yield from self._live.stream(messages)
            return
        prompt = tuple(m.to_dict() for m in messages)
        if call is None:
            raise ReplayDivergence(
                f"{self.role} makes a model call (for reply {reply_id}) that the recording does not have",
                None, list(prompt),
            )
        if prompt != call.prompt:
            number = list(self._calls).index(reply_id or "") + 1
            raise ReplayDivergence(
                f"the prompt of {self.role}'s model call {number} differs (reply {reply_id})",
                list(call.prompt), list(prompt),
            )
        yield from call.chunks


def _fields(message: Message) -> dict[str, Any]:
    """What must be equal for a replayed message to match its recording."""
    return {
        "sent_from": message.sent_from,
        "send_to": list(message.send_to),
        "content": message.content,
        "step": message.step,
        "round": message.round,
    }


class Replay(Intervention):
    """The recording of the run in `directory`, as a run's intervention.

    `until` (a message id or a unique prefix) stops the replay there with
    `ReplayStopped`; `live_from` replays up to that message and lets the real
    models answer after it. After a run, `matched`, `forked`, `divergence`
    and `stopped` say how it went.
    """

    def __init__(self, directory: Path, *, until: str | None = None, live_from: str | None = None) -> None:
        from actorsim.runs import read_run

        self.run = read_run(directory)
        self.until = until
        recorded = self.run.messages
        self.recorded = len(recorded)
        fork = [n for n, message in enumerate(recorded) if live_from and message.message_id.startswith(live_from)]
        if live_from and len(fork) != 1:
            raise ValueError(f"live_from {live_from!r} names {len(fork)} recorded messages")
        # Recorded messages up to the fork are replayed and checked; the rest is left to the live run,
        # and so is every model call that finished after the fork was published (a watcher's too).
        self.fork_after = fork[0] + 1 if fork else len(recorded)
        self._live = bool(fork)
        fork_time = self.run.of_type("message.published")[fork[0]]["ts"] if fork else float("inf")
        self._calls = _recorded_calls(self.run.events, fork_time)
        self._ids = _recorded_ids(self.run.events)
        self._faults = _recorded_faults(self.run.events)
        self._messages: dict[str, list[Message]] = {}
        for message in recorded:
            self._messages.setdefault(message.sent_from, []).append(message)
        self._seeds: dict[str, list[int]] = {}
        for event in self.run.of_type("routing.seeded"):
            self._seeds.setdefault(event["task_center"], []).append(event["seed"])
        self._humans: dict[str, list[str]] = {}
        for event in self.run.of_type("human.input"):
            self._humans.setdefault(event["role"], []).append(event["text"])
        self.interrupted = bool(self.run.of_type("run.interrupted"))
        self.matched = 0
        self.forked = False
        self.divergence: ReplayDivergence | None = None
        self.stopped: ReplayStopped | None = None

    # -- the hooks

    def run_started(self) -> dict[str, Any]:
        return {"replay_of": self.run.run_id}

    def new_id(self) -> str | None:
        return self._ids.pop(0) if self._ids and not self.forked else None

    def routing_seed(self, task_center: str) -> int | None:
        seeds = self._seeds.get(task_center)
        return seeds.pop(0) if seeds else None

    def choose_model(self, role: str, llm: Mapping[str, Any] | ChatModel) -> Mapping[str, Any] | ChatModel:
        return ReplayModel(role, self._calls.get(role, {}), live=llm if self._live else None)

    def human_input(self, role: str) -> str | None:
        answers = self._humans.get(role)
        if not answers:
            raise self._diverged(ReplayDivergence(f"{role} is asked for input the recording does not have", None, role))
        return answers.pop(0)

    def recorded_human_input(self, role: str) -> list[str]:
        """What `role` typed in the recording, in order."""
        return [event["text"] for event in self.run.of_type("human.input") if event["role"] == role]

    def before_delivery(self, name: str, request: Any, attempt: int) -> BaseException | None:
        if not isinstance(request, RunStep):
            return None
        faults = self._faults.get(request.reply_id, [])
        if attempt > len(faults):
            return None
        recorded, gave_up = faults[attempt - 1]
        return ReplayedFault(recorded, restartable=not gave_up)

    def published(self, message: Message, state: Callable[[], RunState]) -> None:
        if self.matched >= self.fork_after:
            self.forked = True
            return
        recorded_list = self._messages.get(message.sent_from) or []
        if not recorded_list:
            raise self._diverged(ReplayDivergence(
                f"{message.sent_from} publishes a message the recording does not have", None, _fields(message)
            ))
        recorded = recorded_list.pop(0)
        if _fields(recorded) != _fields(message):
            raise self._diverged(ReplayDivergence(
                f"message {recorded.message_id} of {recorded.sent_from} differs", _fields(recorded), _fields(message)
            ))
        self.matched += 1
        if self.until and recorded.message_id.startswith(self.until):
            self.stopped = ReplayStopped(recorded, state())
            raise self.stopped
        if self.interrupted and self.matched == self.recorded:
            self.stopped = ReplayStopped(recorded, None, interrupted=True)
            raise self.stopped

    def _diverged(self, divergence: ReplayDivergence) -> ReplayDivergence:
        self.divergence = divergence
        return divergence

    def note_divergence(self, error: BaseException) -> ReplayDivergence | None:
        """The divergence behind `error` (raised in an agent, it arrives as an agent's failure), if any."""
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if isinstance(error, ReplayDivergence):
                self.divergence = self.divergence or error
                return error
            error = getattr(error, "cause", None) or error.__cause__  # type: ignore[assignment]
        return self.divergence

    def recorded_end(self) -> str | None:
        """The error that ended the recorded run (`repr`), if one did."""
        ends = self.run.of_type("run.failed")
        return str(ends[-1]["error"]) if ends else None


def _recorded_calls(events: Sequence[dict[str, Any]], fork_time: float) -> dict[str, dict[str, RecordedCall]]:
    """Each role's finished model calls, by reply id; a call retried after a crash keeps its last answer."""
    calls: dict[str, dict[str, RecordedCall]] = {}
    started: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        kind = event["event"]
        if kind not in ("llm.call.started", "llm.call.finished", "llm.call.failed"):
            continue
        prompts = started.setdefault(event["actor"], [])
        if kind == "llm.call.started":
            prompts.append(event)
        elif prompts:
            begun = prompts.pop(0)
            if kind == "llm.call.finished":
                call = RecordedCall(tuple(begun["prompt"]), tuple(event["chunk_texts"]), event["ts"] > fork_time)
                calls.setdefault(event["role"], {})[event.get("reply_id") or ""] = call
    return calls


def _recorded_ids(events: Sequence[dict[str, Any]]) -> list[str]:
    """Every id the recorded driver made, in the order it made them (ids sort by creation time)."""
    ids = {event["message"]["message_id"] for event in events if event["event"] == "message.published"}
    for event in events:
        if event["event"] == "step.started":
            ids.update(event.get("reply_ids", {}).values())
    return sorted(ids)


def _recorded_faults(events: Sequence[dict[str, Any]]) -> dict[str, list[tuple[str, bool]]]:
    """For each reply id, the crashes of its deliveries in order, and whether the supervisor gave up after it."""
    faults: dict[str, list[tuple[str, bool]]] = {}
    last: dict[str, tuple[str, int]] = {}  # actor -> its last crash during a delivery: (reply id, index)
    for event in events:
        if event["event"] == "actor.crashed" and event.get("reply_id"):
            attempts = faults.setdefault(event["reply_id"], [])
            attempts.append((_recorded_error(event["error"]), False))
            last[event["actor"]] = (event["reply_id"], len(attempts) - 1)
        elif event["event"] == "actor.restarted":
            last.pop(event["actor"], None)
        elif event["event"] == "actor.given_up" and event["actor"] in last:
            reply_id, index = last.pop(event["actor"])
            faults[reply_id][index] = (faults[reply_id][index][0], True)
    return faults


def _recorded_error(text: str) -> str:
    """A replayed fault's own text is the recorded error, not a fault of a fault."""
    prefix = "ReplayedFault('recorded: "
    return text[len(prefix):-2] if text.startswith(prefix) else text


__all__ = ["RecordedCall", "Replay", "ReplayDivergence", "ReplayModel", "ReplayStopped", "ReplayedFault"]
