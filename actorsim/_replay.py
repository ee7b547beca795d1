"""Replaying a recorded run: models answer from the log, messages are checked against it.

`actorsim replay RUN` re-runs the recorded program (its argv and cwd are in
the `run.started` event) with ACTORSIM_REPLAY naming the run folder. In that
process every agent's model is swapped for a `ReplayModel` holding that
role's recorded calls, so no model is ever called; the task center checks
every message it publishes against the recording, sender by sender.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson

from actorsim._envelope import Message
from actorsim._errors import ActorsimError
from actorsim.llm import ChatMessage

REPLAY_VARIABLE = "ACTORSIM_REPLAY"
UNTIL_VARIABLE = "ACTORSIM_REPLAY_UNTIL"
REPORT_VARIABLE = "ACTORSIM_REPLAY_REPORT"
LIVE_FROM_VARIABLE = "ACTORSIM_REPLAY_LIVE_FROM"


class ReplayDivergence(ActorsimError):
    """The replay did something the recording did not."""

    def __init__(self, what: str, recorded: Any, replayed: Any) -> None:
        super().__init__(f"replay diverged: {what}")
        self.what = what
        self.recorded = recorded
        self.replayed = replayed

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReplayDivergence, (self.what, self.recorded, self.replayed))


@attrs.frozen
class RecordedCall:
    prompt: tuple[dict[str, str], ...]
    chunks: tuple[str, ...]
    live: bool = False  # after the fork of `--live-from`: ask the real model


class ReplayModel:
    """Answers each call with the role's next recorded reply, if the prompt is the recorded one.

    From the first call marked `live` on, the role's real model (`live`, its
    original config) answers instead.
    """

    def __init__(self, role: str, calls: Sequence[RecordedCall], live: Any = None) -> None:
        self.role = role
        self._calls = list(calls)
        self._made = 0
        self._live_config = live
        self._live: Any = None

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        self._made += 1
        if self._live is None and self._live_config is not None and (not self._calls or self._calls[0].live):
            from actorsim.llm import build_chat_model

            self._live = build_chat_model(self._live_config)
        if self._live is not None:
            yield from self._live.stream(messages)
            return
        if not self._calls:
            raise ReplayDivergence(
                f"{self.role} makes model call {self._made}, the recording has no more",
                None,
                [m.to_dict() for m in messages],
            )
        call = self._calls.pop(0)
        prompt = tuple(m.to_dict() for m in messages)
        if prompt != call.prompt:
            raise ReplayDivergence(
                f"the prompt of {self.role}'s model call {self._made} differs", list(call.prompt), list(prompt)
            )
        yield from call.chunks


def _field(message: Message) -> dict[str, Any]:
    return {
        "sent_from": message.sent_from,
        "send_to": list(message.send_to),
        "content": message.content,
        "step": message.step,
        "round": message.round,
    }


class Replay:
    """The recording a replayed process runs against."""

    def __init__(self, directory: Path, until: str | None, report: Path | None, live_from: str | None = None) -> None:
        from actorsim.runs import read_run

        self.run = read_run(directory)
        self.until = until
        self.report_path = report
        order = [message.message_id for message in self.run.messages]
        fork = [index for index, message_id in enumerate(order) if live_from and message_id.startswith(live_from)]
        if live_from and len(fork) != 1:
            raise ReplayDivergence(f"--live-from {live_from!r} names {len(fork)} recorded messages", order, live_from)
        # Recorded messages up to the fork are replayed and checked; the rest is left to the live run,
        # and so is every model call that finished after the fork was published (a watcher's too).
        self.fork_after = fork[0] + 1 if fork else len(order)
        published = self.run.of_type("message.published")
        fork_time = published[fork[0]]["ts"] if fork else float("inf")
        self.forked = False
        self._calls: dict[str, list[RecordedCall]] = {}
        started: dict[str, list[dict[str, Any]]] = {}
        for event in self.run.of_type("llm.call.started", "llm.call.finished", "llm.call.failed"):
            prompts = started.setdefault(event["actor"], [])
            if event["event"] == "llm.call.started":
                prompts.append(event)
            elif event["event"] == "llm.call.failed" and prompts:
                prompts.pop(0)
            elif prompts:
                begun = prompts.pop(0)
                live = event["ts"] > fork_time
                self._calls.setdefault(event["role"], []).append(
                    RecordedCall(tuple(begun["prompt"]), tuple(event["chunk_texts"]), live)
                )
        self._messages: dict[str, list[Message]] = {}
        for message in self.run.messages:
            self._messages.setdefault(message.sent_from, []).append(message)
        self._humans: dict[str, list[str]] = {}
        for event in self.run.of_type("human.input"):
            self._humans.setdefault(event["role"], []).append(event["text"])
        self.matched = 0
        # A run the user interrupted (Ctrl-C) is replayed up to its last message, then interrupted alike.
        self.interrupted = bool(self.run.of_type("run.interrupted"))
        self.reenacted_interrupt = False

    def model_for(self, role: str, original: Any) -> dict[str, Any]:
        """The replay model config for `role`; `original` answers after the fork, if any."""
        live = original if self.fork_after < len(self.run.messages) else None
        return {"model_server": "replay", "role": role, "calls": self._calls.get(role, []), "live": live}

    def human_input(self, role: str) -> str:
        answers = self._humans.get(role) or []
        if not answers:
            raise self._diverged(ReplayDivergence(f"{role} is asked for input the recording does not have", None, role))
        answer = answers.pop(0)
        # What the terminal showed when it was typed: `input`'s prompt and the echoed answer.
        print(f"<{role}>: {answer}", flush=True)
        return answer

    def check(self, message: Message) -> Message | None:
        """The recorded message this one replays (None past the fork); a mismatch is a divergence."""
        if self.matched >= self.fork_after:
            if not self.forked:
                self.forked = True
                self.write_report(None)
            return None
        recorded_list = self._messages.get(message.sent_from) or []
        if not recorded_list:
            raise self._diverged(
                ReplayDivergence(
                    f"{message.sent_from} publishes a message the recording does not have", None, _field(message)
                )
            )
        recorded = recorded_list.pop(0)
        if _field(recorded) != _field(message):
            raise self._diverged(
                ReplayDivergence(
                    f"message {recorded.message_id} of {recorded.sent_from} differs", _field(recorded), _field(message)
                )
            )
        self.matched += 1
        self.write_report(None)
        if self.interrupted and self.matched == len(self.run.messages) and not self.until:
            self.reenacted_interrupt = True
            self.write_report(None)
            raise KeyboardInterrupt(f"the recorded run was interrupted after message {recorded.message_id}")
        return recorded

    def _diverged(self, divergence: ReplayDivergence) -> ReplayDivergence:
        self.write_report(divergence)
        return divergence

    def write_report(self, divergence: ReplayDivergence | None) -> None:
        if self.report_path is None:
            return
        report: dict[str, Any] = {
            "matched": self.matched,
            "recorded": len(self.run.messages),
            "forked": self.forked,
            "interrupted": self.reenacted_interrupt,
        }
        if divergence is not None:
            report["divergence"] = {
                "what": divergence.what,
                "recorded": divergence.recorded,
                "replayed": divergence.replayed,
            }
        self.report_path.write_bytes(orjson.dumps(report))


@functools.cache
def active_replay() -> Replay | None:
    """The replay this process runs under, from the environment; None in a normal run."""
    directory = os.environ.get(REPLAY_VARIABLE)
    if not directory:
        return None
    report = os.environ.get(REPORT_VARIABLE)
    return Replay(
        Path(directory),
        os.environ.get(UNTIL_VARIABLE) or None,
        Path(report) if report else None,
        os.environ.get(LIVE_FROM_VARIABLE) or None,
    )
