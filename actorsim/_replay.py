"""Replaying a recorded run: an `Intervention` that answers from the log and checks against it.

`actorsim.init(replay=...)` (or `actorsim replay RUN`, which runs the recorded
program with the replay installed) hooks the run at every point where it met
the outside world:

- ids: the driver makes the recorded message and reply ids, in the recorded
  order, so the replay's messages carry the recording's ids;
- models: every agent's model is a `ReplayModel` that answers each call with
  the recorded reply for that reply id and prompt, and its tool calls from the
  recorded results, so no tool runs and no side effect is repeated;
- routing: each task center's routing seed is the recorded one, so the
  routing policies (round-robin starts, random draws) choose as they did;
- humans: a terminal human says what was recorded;
- faults: a delivery that crashed in the recording (its model call failed, or
  its process died) crashes again at the same point: the supervisor restarts
  the agent and delivers again, or gives up, as it did;
- the budget: a step's later model call that the spent budget stopped in the
  recording is stopped again, and every other goes, whatever order the
  replayed calls end in;
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

from actorsim._core.context import current_reply
from actorsim._core.envelope import Message
from actorsim._core.ids import is_post_id
from actorsim._core.state import RunState
from actorsim._errors import ReplayDivergence, ReplayedFault, ReplayStopped
from actorsim._protocol.agent import RunStep
from actorsim._runtime.interventions import Intervention, RecordedInput
from actorsim.llm import ChatMessage, ChatModel, ModelItem, ToolCall, build_chat_model, takes_tools
from actorsim.runs import read_run
from actorsim.tools import ToolOutcome
from actorsim.tools._runner import readable_arguments


@attrs.frozen
class RecordedCall:
    prompt: tuple[dict[str, Any], ...]
    chunks: tuple[str, ...]
    live: bool = False  # after the fork of `live_from`: ask the real model
    tool_calls: tuple[dict[str, Any], ...] = ()
    usage: dict[str, Any] | None = None  # what the server counted, given again: budgets and limits spend alike
    finish_reason: str | None = None
    cost: float | None = None


@attrs.frozen
class RecordedTool:
    """One tool call's recorded outcome (`tool.call.finished` or `.failed`)."""

    tool: str
    arguments: Any
    content: str
    error: str | None
    live: bool = False


class RecordedToolAnswers:
    """Answers a role's tool calls from the log, by reply id and call id: no tool runs, no side effect repeats.

    Keyed rather than counted, so that a step delivered again after a crash is
    answered the same way. After the fork of `live_from`, tools run for real.
    """

    def __init__(self, role: str, calls: Mapping[tuple[str, str], RecordedTool], forks: bool) -> None:
        self.role = role
        self._calls = dict(calls)
        self._forks = forks

    def answer(self, call: ToolCall, reply_id: str | None) -> ToolOutcome | None:
        recorded = self._calls.get((reply_id or "", call.call_id))
        if self._forks and (recorded is None or recorded.live):
            return None
        made = [call.name, readable_arguments(call.arguments)]
        if recorded is None:
            raise ReplayDivergence(
                f"{self.role} calls a tool (call {call.call_id} of reply {reply_id}) the recording does not have",
                None, made,
            )
        if [recorded.tool, recorded.arguments] != made:
            raise ReplayDivergence(
                f"{self.role}'s tool call {call.call_id} differs", [recorded.tool, recorded.arguments], made
            )
        return ToolOutcome(recorded.content, recorded.error)


class ReplayModel:
    """Answers each call with the recorded reply for the same reply id and prompt, then its recorded tool calls.

    Keyed rather than counted, so that an agent restarted mid-run (or a step
    delivered again) answers where the recording was. A call marked `live`,
    or one the recording does not have while `live` is given, is answered by
    the real model (`live`: its original config).
    """

    def __init__(
        self,
        role: str,
        calls: Mapping[str, Sequence[RecordedCall]],
        live: Mapping[str, Any] | ChatModel | None = None,
        tools: Mapping[tuple[str, str], RecordedTool] | None = None,
        function_calling: bool = True,
    ) -> None:
        self.role = role
        self._calls = {reply_id: list(made) for reply_id, made in calls.items()}
        self._order = list(self._calls)
        self._live_config = live
        self._live: ChatModel | None = None
        self.tool_answers = RecordedToolAnswers(role, tools or {}, forks=live is not None)
        self.function_calling = function_calling
        self.last_usage: dict[str, Any] | None = None
        self.last_finish_reason: str | None = None
        self.last_cost: float | None = None

    def stream(
        self, messages: Sequence[ChatMessage], *, tools: Any = None, settings: Any = None
    ) -> Iterator[ModelItem]:
        reply_id = current_reply.get() or ""
        prompt = tuple(m.to_dict() for m in messages)
        made = self._calls.get(reply_id, [])
        call = next((recorded for recorded in made if recorded.prompt == prompt), None)
        if (call is None or call.live) and self._live_config is not None:
            yield from self._ask_live(messages, tools, settings)
            return
        if call is None:
            if not made:
                raise ReplayDivergence(
                    f"{self.role} makes a model call (for reply {reply_id}) that the recording does not have",
                    None, list(prompt),
                )
            closest = max(made, key=lambda recorded: _shared(recorded.prompt, prompt))
            number = self._order.index(reply_id) + 1
            raise ReplayDivergence(
                f"the prompt of {self.role}'s model call {number} differs (reply {reply_id})",
                list(closest.prompt), list(prompt),
            )
        self.last_usage, self.last_finish_reason, self.last_cost = call.usage, call.finish_reason, call.cost
        yield from call.chunks
        for recorded in call.tool_calls:
            yield ToolCall.from_dict(recorded)

    def _ask_live(self, messages: Sequence[ChatMessage], tools: Any, settings: Any) -> Iterator[ModelItem]:
        if self._live is None:
            assert self._live_config is not None
            self._live = build_chat_model(self._live_config)
        self.last_usage = self.last_finish_reason = self.last_cost = None
        if takes_tools(self._live):
            yield from self._live.stream(messages, tools=tools, settings=settings)  # type: ignore[call-arg]
        else:
            yield from self._live.stream(messages)
        self.last_usage = getattr(self._live, "last_usage", None)
        self.last_finish_reason = getattr(self._live, "last_finish_reason", None)
        price = getattr(self._live, "price", None)
        self.last_cost = price.cost(self.last_usage) if price is not None else None


def _shared(recorded: Sequence[Any], replayed: Sequence[Any]) -> int:
    return next((n for n, (a, b) in enumerate(zip(recorded, replayed, strict=False)) if a != b),
                min(len(recorded), len(replayed)))


def _function_calling(original: Any) -> bool:
    """Whether the recorded model called tools natively (else the agent prompted it ReAct-style)."""
    if isinstance(original, Mapping):
        return bool(original.get("function_calling", True))
    return bool(getattr(original, "function_calling", True))


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
    models answer after it; `echo(role, text)` is told each human answer it
    gives. After a run, `matched`, `forked`, `divergence`, `stopped` and
    `ended_with` (the error that ended the run) say how it went.
    """

    def __init__(
        self,
        directory: Path,
        *,
        until: str | None = None,
        live_from: str | None = None,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
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
        self._tools = _recorded_tools(self.run.events, fork_time)
        self._ids = _recorded_ids(self.run.events)
        self._faults = _recorded_faults(self.run.events)
        self._inputs = {(e["input"], e["index"]): e["value"] for e in self.run.of_type("input.recorded")}
        self._refused = {(e["reply_id"], e["call"]): e["spent"] for e in self.run.of_type("budget.call_refused")}
        self._stopped = {reply_id for reply_id, _ in self._refused}
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
        self.ended_with: BaseException | None = None
        self._echo = echo

    # -- the hooks

    def run_started(self) -> dict[str, Any]:
        return {"replay_of": self.run.run_id}

    def new_id(self) -> str | None:
        return self._ids.pop(0) if self._ids and not self.forked else None

    def routing_seed(self, task_center: str) -> int | None:
        seeds = self._seeds.get(task_center)
        return seeds.pop(0) if seeds else None

    def choose_model(self, role: str, llm: Mapping[str, Any] | ChatModel) -> Mapping[str, Any] | ChatModel:
        return ReplayModel(
            role, self._calls.get(role, {}), live=llm if self._live else None,
            tools=self._tools.get(role, {}), function_calling=_function_calling(llm),
        )

    def human_input(self, role: str) -> str | None:
        answers = self._humans.get(role)
        if not answers:
            raise self._diverged(ReplayDivergence(f"{role} is asked for input the recording does not have", None, role))
        answer = answers.pop(0)
        if self._echo is not None:  # what the terminal showed when it was typed: the prompt and the answer
            self._echo(role, answer)
        return answer

    def run_failed(self, error: BaseException) -> None:
        self.ended_with = error

    def recorded_input(self, name: str, index: int) -> RecordedInput | None:
        if (name, index) in self._inputs:
            return RecordedInput(self._inputs[name, index])
        if self._live:  # past the recording, the program reads its input again
            return None
        raise self._diverged(ReplayDivergence(
            f"the program reads input {name!r} (read {index + 1}) that the recording does not have", None, name
        ))

    def before_delivery(self, name: str, request: Any, attempt: int) -> BaseException | None:
        if not isinstance(request, RunStep):
            return None
        faults = self._faults.get(request.reply_id, [])
        if attempt > len(faults):
            return None
        recorded, gave_up = faults[attempt - 1]
        return ReplayedFault(recorded, restartable=not gave_up)

    def budget_stops(self, reply_id: str) -> bool:
        return reply_id in self._stopped

    def spend_check(self, reply_id: str, call: int) -> RecordedInput | None:
        if (reply_id, call) in self._refused:
            return RecordedInput(self._refused[reply_id, call])
        return None if self.forked else RecordedInput(None)  # past the recording, the run's tally decides

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


class Resume(Replay):
    """The recording of a run whose driver died, as the intervention of the run that goes on with it.

    The recorded program runs again (`actorsim resume RUN`, or `actorsim.init(resume=RUN)` in the program
    itself). As in a replay, the driver makes the recorded ids and each published message is checked
    against the recording; every model call and tool call the log holds is answered from it, those an
    agent finished after the driver's last event included (they are in the agent's own file), and so
    is every recorded input and human answer. What the log does not hold is done live: once the
    recording is used up the run goes on with new ids, the real models and tools, and a terminal human
    typing again. The new run names the one it resumes (`resumes`), and its own log holds the whole
    history again, so that it can be replayed, traced, or resumed in its turn.
    """

    def __init__(self, directory: Path, *, echo: Callable[[str, str], None] | None = None) -> None:
        super().__init__(directory, echo=echo)
        self._live = True  # a call or an input the log does not hold is made live
        self.interrupted = False  # a run ended by Ctrl-C goes on too

    def run_started(self) -> dict[str, Any]:
        return {"resumes": self.run.run_id}

    def human_input(self, role: str) -> str | None:
        if self._humans.get(role):
            return super().human_input(role)
        return None  # past the recording: the terminal asks

    @property
    def resumed(self) -> bool:
        """Whether the run went past the recording (every recorded message matched, and more came)."""
        return self.forked


def _recorded_calls(events: Sequence[dict[str, Any]], fork_time: float) -> dict[str, dict[str, list[RecordedCall]]]:
    """Each role's finished model calls, by reply id (a reply that called tools made several)."""
    calls: dict[str, dict[str, list[RecordedCall]]] = {}
    started: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for event in events:
        kind = event["event"]
        if kind not in ("llm.call.started", "llm.call.finished", "llm.call.failed"):
            continue
        prompts = started.setdefault((event["actor"], event["pid"]), [])  # a restarted agent: a new process
        if kind == "llm.call.started":
            prompts.append(event)
        elif prompts:
            begun = prompts.pop(0)
            if kind == "llm.call.finished":
                call = RecordedCall(
                    tuple(begun["prompt"]), tuple(event["chunk_texts"]), event["ts"] > fork_time,
                    tuple(event.get("tool_calls", ())), event.get("usage"), event.get("finish_reason"),
                    event.get("cost"),
                )
                calls.setdefault(event["role"], {}).setdefault(event.get("reply_id") or "", []).append(call)
    return calls


def _recorded_tools(
    events: Sequence[dict[str, Any]], fork_time: float
) -> dict[str, dict[tuple[str, str], RecordedTool]]:
    """Each role's finished tool calls, by reply id and call id."""
    tools: dict[str, dict[tuple[str, str], RecordedTool]] = {}
    arguments: dict[tuple[str, str], Any] = {}
    for event in events:
        kind = event["event"]
        if kind not in ("tool.call.started", "tool.call.finished", "tool.call.failed"):
            continue
        key = (event.get("reply_id") or "", event["call_id"])
        if kind == "tool.call.started":
            arguments[key] = event.get("arguments")
        elif key in arguments:
            tools.setdefault(event["role"], {})[key] = RecordedTool(
                event["tool"], arguments.pop(key), event.get("result", ""), event.get("error"), event["ts"] > fork_time
            )
    return tools


def _recorded_ids(events: Sequence[dict[str, Any]]) -> list[str]:
    """Every id the recorded driver made, in the order it made them (ids sort by creation time)."""
    ids = {
        event["message"]["message_id"] for event in events
        if event["event"] == "message.published" and not is_post_id(event["message"]["message_id"])
    }
    for event in events:
        if event["event"] == "step.started":
            ids.update(event.get("reply_ids", {}).values())
        elif event["event"] == "message.delivered" and event.get("reply_id"):
            # An agent's file holds the reply id even when the driver died before writing its step down.
            ids.add(event["reply_id"])
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
    prefix = "ReplayedFault("
    return text[len(prefix):-1] if text.startswith(prefix) else text


__all__ = [
    "RecordedCall",
    "RecordedTool",
    "RecordedToolAnswers",
    "Replay",
    "ReplayDivergence",
    "ReplayModel",
    "ReplayStopped",
    "ReplayedFault",
    "Resume",
]
