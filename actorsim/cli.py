"""The `actorsim` command: list runs, show what caused what, replay a run from its log."""

from __future__ import annotations

import datetime
import itertools
import os
import runpy
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.pretty import Pretty
from rich.table import Column, Table
from rich.text import Text
from rich.tree import Tree

from actorsim._core.envelope import Message
from actorsim._core.wording import plural
from actorsim._errors import ActorsimError, ReplayDivergence, ReplayStopped
from actorsim._replay import Replay
from actorsim._runtime.current import shutdown
from actorsim._runtime.interventions import installed
from actorsim.llm import MODEL_SERVERS
from actorsim.runs import Causality, RunLogError, TraceNode, find_run, list_runs, read_run
from actorsim.transport import TRANSPORTS
from actorsim.ui._terminal import chat as run_chat

console = Console()


def _label(message: Message, start: float) -> str:
    to = ", ".join(message.send_to) or "(nobody)"
    content = message.content if len(message.content) <= 80 else message.content[:77] + "..."
    return (
        f"[bold]{message.sent_from}[/] -> {to}  [dim]step {message.step} round {message.round} "
        f"clock {message.clock} +{message.created_at - start:.3f}s {message.message_id}[/]\n{content}"
    )


def _tool_label(call: dict[str, Any]) -> str:
    """A tool call under the reply it fed: name, arguments, result or error, latency."""
    outcome = f"[red]error: {call['error']}[/]" if call["event"] == "tool.call.failed" else str(call.get("result"))
    if len(outcome) > 80:
        outcome = outcome[:77] + "..."
    latency = float(call.get("latency_s") or 0.0) * 1000
    arguments = orjson.dumps(call.get("arguments")).decode()
    return f"[cyan]\u2699 {call['tool']}[/]({arguments}) \u2192 {outcome}  [dim]{latency:.1f} ms {call['call_id']}[/]"


@click.group()
@click.option(
    "--log-dir", default="logs", show_default=True, type=click.Path(path_type=Path), help="Where runs are logged."
)
@click.pass_context
def main(context: click.Context, log_dir: Path) -> None:
    """List, trace and replay actorsim runs; chat with agents in the terminal."""
    context.obj = log_dir


@main.command()
@click.pass_obj
def runs(log_dir: Path) -> None:
    """The runs in the log folder, oldest first; "interrupted" marks a run ended by Ctrl-C."""
    table = Table("started", "transport", "agents", "messages", "errors", "ended")
    table.columns.insert(0, Column("run", no_wrap=True, min_width=22))
    try:
        found = list_runs(log_dir)
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    for run in found:
        started = datetime.datetime.fromtimestamp(run.started_at).strftime("%m-%d %H:%M:%S")
        name = run.run_id if run.replay_of is None else f"{run.run_id}\n(replay of {run.replay_of})"
        table.add_row(
            name, started, run.transport, str(len(run.agents)), str(len(run.messages)), str(len(run.errors)), run.ending
        )
    console.print(table if found else f"no runs in {log_dir}")


@main.command()
@click.argument("run")
@click.option("--message", "message_id", help="Show what caused this message and what it caused.")
@click.option("--role", help="Only the messages this role sent or received.")
@click.pass_obj
def trace(log_dir: Path, run: str, message_id: str | None, role: str | None) -> None:
    """The causal tree of RUN (an id, a prefix of one, a folder, or "latest")."""
    try:
        record = read_run(find_run(log_dir, run))
        graph = Causality(record.messages)
        start = record.started_at
        if message_id is not None:
            try:
                message = graph.get(message_id)
            except RunLogError as error:
                raise RunLogError(f"{error}: looked in run {record.run_id} ({record.directory})") from None
            causes = Tree("[bold]caused by[/]")
            for node in graph.cause_tree(message):
                _grow_causes(causes, node, start)
            for call in record.tool_calls().get(message.message_id, []):
                causes.add(_tool_label(call))
            console.print(causes)
            roots = [message]
        else:
            roots = graph.roots()
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    tree = Tree(f"[bold]run {record.run_id}[/] ({record.transport}, {plural(len(graph.messages), 'message')})")
    tool_calls = record.tool_calls()

    def grow(node: Tree, message: Message, seen: set[str]) -> None:
        if role is None or role == message.sent_from or role in message.send_to:
            node = node.add(_label(message, start))
            for call in tool_calls.get(message.message_id, []):  # what the reply was made from
                node.add(_tool_label(call))
        for effect in graph.effects(message):
            if effect.message_id not in seen:
                seen.add(effect.message_id)
                grow(node, effect, seen)

    seen: set[str] = set()
    for root in roots:
        grow(tree, root, seen)
    console.print(tree)


def _grow_causes(tree: Tree, node: TraceNode, start: float) -> None:
    """The messages a message follows from, as a tree from the task down to it."""
    branch = tree.add(_label(node.message, start))
    for child in node.children:
        _grow_causes(branch, child, start)


def _lines(value: object) -> list[str]:
    """One row per prompt turn or message field, so the two sides line up."""
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, dict):
        return [f"{key}: {item}" for key, item in value.items()]
    return [str(value)]


@main.command()
@click.argument("run")
@click.option("--until", "until", help="Stop when this recorded message is replayed and show the state.")
@click.option("--live-from", "live_from", help="Replay up to this recorded message, then call the real models.")
def replay(run: str, until: str | None, live_from: str | None) -> None:
    """Re-run RUN's program with every model output taken from its log.

    No model is called (until the fork of --live-from). Each message the
    replay publishes is checked against the recording; the first difference
    stops it and is shown side by side. Crashes and restarts of the recorded
    run happen again where they happened.
    """
    log_dir = click.get_current_context().find_root().obj
    try:
        record = read_run(find_run(log_dir, run))
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    started = record.of_type("run.started")
    if not started or not started[0].get("argv"):
        raise click.ClickException(f"{record.directory}: the log does not say which program ran")
    for option, message_id in (("--until", until), ("--live-from", live_from)):
        if message_id and sum(m.message_id.startswith(message_id) for m in record.messages) != 1:
            raise click.ClickException(
                f"{option} {message_id}: no single recorded message of {record.run_id} has that id"
            )
    argv, cwd = started[0]["argv"], started[0]["cwd"]
    recording = Replay(record.directory, until=until, live_from=live_from, echo=_echo_human)
    console.print(f"[dim]replaying {record.run_id}: {' '.join(argv)} (in {cwd})[/]")
    ended = run_program(argv, cwd, recording)
    _report(recording, ended)


def _echo_human(role: str, text: str) -> None:
    """What the terminal showed when a human's recorded answer was typed: the prompt and the answer."""
    console.print(f"<{role}>: {text}", markup=False, highlight=False)


def run_program(argv: list[str], cwd: str, recording: Replay) -> BaseException | None:
    """Run a recorded program in this process, as it was run, with `recording` installed.

    In this process, not a child, so that the replay is an object the run
    hooks into rather than settings passed through the environment. What
    the program raised (or exited with) is returned, for the report.
    """
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = list(argv)
    try:
        os.chdir(cwd)
        with installed(recording):
            runpy.run_path(argv[0], run_name="__main__")
    except BaseException as error:  # noqa: BLE001 - whatever ended the program is the report's to judge
        return error
    finally:
        shutdown()
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return None


def _report(recording: Replay, ended: BaseException | None) -> None:
    """How the replay went, as the recording would have it."""
    matched = plural(recording.matched, "message")
    divergence = recording.note_divergence(ended) if ended is not None else recording.divergence
    if divergence is not None:
        _show_divergence(divergence)
        raise click.ClickException(f"replay diverged after matching {matched}")
    stopped = recording.stopped
    if stopped is not None and stopped.interrupted:
        console.line()  # the program was stopped mid-line, as the recorded one was by Ctrl-C
        console.print(f"replay matched {matched}, up to where the run was interrupted")
        return
    if stopped is not None:
        _show_state(stopped)
        console.print(f"replay matched {matched}")
        return
    exit_code = ended.code if isinstance(ended, SystemExit) else None
    if ended is not None and not (isinstance(ended, SystemExit) and exit_code in (0, None)):
        failure = recording.ended_with or ended  # a program may turn the run's error into an exit code
        recorded_end = recording.recorded_end()
        if recorded_end is not None and recorded_end.startswith(f"{type(failure).__name__}("):
            console.print(f"replay matched {matched} and ended as the recording did: {failure}")
            return
        raise click.ClickException(f"the replayed program ended with {failure!r} after matching {matched}")
    if recording.forked:
        console.print(f"replay matched {matched}, then continued live")
        return
    if recording.matched != recording.recorded:
        recorded = plural(recording.recorded, "recorded message")
        raise click.ClickException(f"replay matched {recording.matched} of {recorded}")
    console.print(f"replay matched {matched}")


def _show_divergence(divergence: ReplayDivergence) -> None:
    table = Table(
        Column("recorded", ratio=1, overflow="fold"),
        Column("replayed", ratio=1, overflow="fold"),
        title=divergence.what,
        show_lines=True,
    )
    for recorded, replayed in itertools.zip_longest(
        _lines(divergence.recorded), _lines(divergence.replayed), fillvalue=""
    ):
        style = "" if recorded == replayed else "bold red"
        table.add_row(Text(recorded, style=style), Text(replayed, style=style))
    console.print(table)


def _show_state(stopped: ReplayStopped) -> None:
    """What `--until` shows: each role's queue and memory, and the history, at that message."""
    reached, state = stopped.message, stopped.state
    console.line()
    console.rule(f"replay stopped at {reached.message_id} ({reached.sent_from})")
    if state is None:
        return
    for role, pending in state.pending.items():
        console.print(f"[bold]{role}[/] pending: {[f'{m.sent_from}: {m.content}' for m in pending]}")
        console.print(Pretty([f"{turn.role}: {turn.content}" for turn in state.memories[role]]))
    console.print("[bold]history[/]")
    for message in state.history:
        console.print(f"  {message.sent_from} -> {', '.join(message.send_to)}: {message.content}")


def _roles(context: click.Context, parameter: click.Parameter, value: str) -> list[str]:
    """--roles: names, comma-separated, none twice."""
    names = [role.strip() for role in value.split(",")]
    if not value.strip() or not all(names):
        raise click.BadParameter("give the agents' names, comma-separated, e.g. ada,bruno")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise click.BadParameter(f"{', '.join(map(repr, twice))} named twice: each agent needs a name of its own")
    return names


@main.command()
@click.option("--transport", type=click.Choice(TRANSPORTS), default="local", show_default=True)
@click.option(
    "--roles", default="ada,bruno", show_default=True, callback=_roles,
    help="The agents, comma-separated, in speaking order.",
)
@click.option("--human", default="you", show_default=True, help="Your role: you type at its turn ('' for none).")
@click.option("--task", default="How should we land people on the Moon again?", show_default=True)
@click.option("--turns", type=click.IntRange(min=1), default=9, show_default=True, help="Replies before the end.")
@click.option("--model-server", type=click.Choice(MODEL_SERVERS), default="scripted", show_default=True)
@click.option("--model", default="qwen-max", show_default=True, help="For openai and dashscope.")
@click.option("--api-base", help="For openai: the server's URL.")
@click.option("--chunk-latency", type=float, default=0.03, show_default=True, help="Scripted model only.")
@click.pass_obj
def chat(
    log_dir: Path, transport: str, roles: list[str], human: str, task: str, turns: int, model_server: str,
    model: str, api_base: str | None, chunk_latency: float,
) -> None:
    """A chat room in the terminal: the agents take turns and you answer at yours.

    Replies stream in, each role in its colour; Ctrl-C ends the run cleanly
    and `actorsim replay` replays it. Offline (scripted) unless --model-server.
    """
    human = human.strip()
    if human in roles:
        raise click.BadParameter(f"{human!r} is one of --roles; you need a name of your own", param_hint="'--human'")

    def llm(role: str) -> dict[str, object]:
        if model_server == "scripted":
            replies = chat_replies(role, roles.index(role))
            return {"model_server": "scripted", "replies": replies, "chunk_latency": chunk_latency}
        return {"model_server": model_server, "model": model, **({"api_base": api_base} if api_base else {})}

    try:
        code = run_chat(
            transport=transport, roles=roles, human=human or None, task=task, turns=turns, llm=llm, log_dir=log_dir
        )
    except ActorsimError as error:  # one line a person can act on, not a traceback
        raise click.ClickException(str(error)) from None
    if code:
        sys.exit(code)


def chat_replies(role: str, turn: int = 0) -> list[str]:
    """The scripted replies of `actorsim chat`: each quotes only what the last speaker said themselves.

    Each role starts `turn` replies into the list, so no two roles open alike.
    """
    replies = [
        f"{{speaker}} said “{{heard}}” I am {role}, and I would start with what we can test on Earth.",
        f"{{speaker}} said “{{heard}}” As {role}, I would build a small lander first.",
        "{speaker} said “{heard}” Then let us count the cost before we set a launch date.",
        "{speaker} said “{heard}” I can agree, if we fly a test mission without a crew first.",
        f"{{speaker}} said “{{heard}}” As {role}, I would rather send robots ahead of people.",
        "{speaker} said “{heard}” Fine: people follow once the robots have landed safely.",
    ]
    turn %= len(replies)
    return replies[turn:] + replies[:turn]


__all__ = ["chat_replies", "main", "run_program"]
