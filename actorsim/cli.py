"""The `actorsim` command: list runs, show what caused what, replay a run from its log, resume one whose driver died."""

from __future__ import annotations

import atexit
import datetime
import itertools
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.console import Console
from rich.pretty import Pretty
from rich.table import Column, Table
from rich.text import Text
from rich.tree import Tree

from actorsim._core.envelope import Message
from actorsim._core.options import traces_url
from actorsim._core.wording import plural
from actorsim._errors import ActorsimError, ReplayDivergence, ReplayStopped
from actorsim._replay import Replay, Resume
from actorsim._runtime.current import shutdown
from actorsim._runtime.interventions import installed
from actorsim.export import export_run, post_run
from actorsim.llm import MODEL_SERVERS
from actorsim.runs import Causality, Run, RunLogError, TraceNode, Usage, find_run, list_runs, read_run
from actorsim.transport import TRANSPORTS
from actorsim.ui._terminal import chat as run_chat

PIPED_WIDTH = 1000
"""Columns when the output is not a terminal: rich would assume 80 and cut every table to fit (`thesp…`)."""
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)

MOST_BACKOFF = 60.0
"""Seconds at most that `actorsim run` waits before it resumes a run."""
COPY_MOST_FILES = 2_000
COPY_MOST_BYTES = 100 << 20
"""The largest working dir `actorsim run` keeps a copy of, to resume its program in should the dir go."""


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
    """List, trace, replay, resume and export runs; chat with agents in a terminal."""
    context.obj = log_dir


@main.command()
@click.pass_obj
def runs(log_dir: Path) -> None:
    """The runs in the log folder, oldest first.

    "interrupted" marks a run ended by Ctrl-C, "driver died" one whose driver process was killed (with when
    it last wrote): `actorsim resume` goes on with it. A resumed run names the run it resumes. A run whose
    budget was spent says what ran out under its tokens.
    """
    table = Table("started", "transport", "agents", "messages", "tokens", "errors", "ended")
    table.columns.insert(0, Column("run", no_wrap=True, min_width=22))
    try:
        found = list_runs(log_dir)
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    for run in found:
        name = run.run_id
        if run.replay_of is not None:
            name += f"\n(replay of {run.replay_of})"
        if run.resumes is not None:
            name += f"\n(resumes {run.resumes})"
        ended = run.ending
        if ended == "driver died" and run.driver_last_seen is not None:
            ended += f" {_when(run.driver_last_seen)}"
        tokens = _tokens(run.total_usage)
        if exhausted := run.of_type("budget.exhausted"):
            tokens += f"\nbudget spent ({exhausted[-1]['spent']})"
        table.add_row(
            name, _when(run.started_at), run.transport, str(len(run.agents)), str(len(run.messages)),
            tokens, str(len(run.errors)), ended,
        )
        for note in run.notes:
            console.print(f"[dim]{note}[/]", highlight=False)
    console.print(table if found else f"no runs in {log_dir}")


def _tokens(usage: Usage) -> str:
    """A run's tokens as the table shows them: the total, with prompt/reply, and the cost where priced."""
    if not usage.total_tokens:
        return "-"
    shown = f"{usage.total_tokens:,} ({usage.prompt_tokens:,}/{usage.completion_tokens:,})"
    return shown + (f" ${usage.cost:.4f}" if usage.cost is not None else "")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%m-%d %H:%M:%S")


@main.command()
@click.argument("run")
@click.option("--format", "form", type=click.Choice(["otlp", "chrome"]), default="otlp", show_default=True,
              help="otlp: OTLP/JSON (Jaeger, Tempo, Phoenix); chrome: trace-event JSON (Perfetto).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (default: RUN's id and the format's suffix, here).")
@click.option("--endpoint", help="Send the spans to this OTLP/HTTP receiver instead (its URL, or its …/v1/traces; "
              "protobuf, as the OpenTelemetry SDK sends them). Needs actorsim[otel].")
@click.option("--content", is_flag=True, help="Include message text (off by default: it may be sensitive).")
@click.pass_obj
def export(log_dir: Path, run: str, form: str, output: Path | None, endpoint: str | None, content: bool) -> None:
    """Write RUN as OpenTelemetry spans (OTLP/JSON) or a Chrome trace, for the tools people already use."""
    try:
        directory = find_run(log_dir, run)
        if endpoint is not None:
            if form != "otlp":
                raise click.ClickException("--endpoint sends OpenTelemetry spans: use it with --format otlp")
            url = traces_url(endpoint)
            sent = post_run(directory, url, content=content)
            console.print(f"sent {plural(sent, 'span')} of run {directory.name} to {url}")
            return
        target = output or Path(f"{directory.name}.{'otlp.jsonl' if form == 'otlp' else 'trace.json'}")
        written = export_run(directory, target, format=form, content=content)  # type: ignore[arg-type]
    except (RunLogError, OSError, ValueError, ImportError) as error:
        raise click.ClickException(str(error)) from None
    except httpx.HTTPError as error:
        raise click.ClickException(f"cannot reach {endpoint}: {error}") from None
    console.print(f"wrote {plural(written, 'span')} of run {directory.name} to {target}")


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
    record, argv, cwd = _recorded_program(run)
    for option, message_id in (("--until", until), ("--live-from", live_from)):
        if message_id and sum(m.message_id.startswith(message_id) for m in record.messages) != 1:
            raise click.ClickException(
                f"{option} {message_id}: no single recorded message of {record.run_id} has that id"
            )
    recording = Replay(record.directory, until=until, live_from=live_from, echo=_echo_human)
    console.print(f"[dim]replaying {record.run_id}: {' '.join(argv)} (in {cwd})[/]")
    ended = run_program(argv, cwd, recording)
    _report(recording, ended)


def _recorded_program(run: str) -> tuple[Run, list[str], str]:
    """The run RUN names in the log folder, and the program it ran (its argv and working dir)."""
    log_dir = click.get_current_context().find_root().obj
    try:
        record = read_run(find_run(log_dir, run))
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    for note in record.notes:
        console.print(f"[dim]{note}[/]", highlight=False)
    started = record.of_type("run.started")
    if not started or not started[0].get("argv"):
        raise click.ClickException(f"{record.directory}: the log does not say which program ran")
    return record, list(started[0]["argv"]), str(started[0]["cwd"])


@main.command()
@click.argument("run")
@click.option("--workdir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run the program there, not in its recorded working dir (a copy, where that one is gone).")
def resume(run: str, workdir: Path | None) -> None:
    """Go on with RUN, whose driver died: run its program again, answered from the log as far as it goes, then live.

    Every message the log holds is made again with its recorded id and
    checked; every model call, tool call, recorded input and human answer the
    log holds is taken from it (calls an agent finished after the driver died
    included), so none is made twice; then the run goes on live. A tool call
    that was in flight runs again, with the same call id (see the README's
    "Resuming a run"). The new run names RUN as the run it resumes. Exits
    with the program's exit code.
    """
    record, argv, cwd = _recorded_program(run)
    if record.ending == "stopped":
        raise click.ClickException(f"run {record.run_id} ended (stopped): there is nothing to resume")
    if record.ending == "":
        started = record.of_type("run.started")[0]
        raise click.ClickException(
            f"run {record.run_id} is still going (its driver, pid {started['pid']} on {started['host']}, "
            "wrote to its log lately); stop it first"
        )
    if workdir is not None:
        cwd = str(workdir.absolute())
    elif not Path(cwd).is_dir():
        raise click.ClickException(f"run {record.run_id} ran in {cwd}, which is gone: give --workdir")
    recording = Resume(record.directory, echo=_echo_human)
    console.print(f"[dim]resuming {record.run_id}: {' '.join(argv)} (in {cwd})[/]")
    ended = run_program(argv, cwd, recording)
    matched = f"{recording.matched} of {plural(recording.recorded, 'recorded message')}"
    divergence = recording.note_divergence(ended) if ended is not None else recording.divergence
    if divergence is not None:
        _show_divergence(divergence)
        raise click.ClickException(f"the resumed program went another way than its recording, after {matched}")
    went_on = "then went on live" if recording.resumed else "and ended within the recording"
    console.print(f"[dim]resumed {record.run_id}: {matched} from its log, {went_on}[/]")
    sys.exit(_exit_code(ended))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--resume-on-failure", "resumes", type=click.IntRange(min=0), default=0, show_default=True,
    help="Resume the program's run this many times at most when its process dies.",
)
@click.option("--backoff", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help=f"Seconds before the first resume; each next one waits twice as long, {MOST_BACKOFF:g} s at most.")
@click.argument("program", type=click.Path(exists=True, dir_okay=False))
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(log_dir: Path, resumes: int, backoff: float, program: str, arguments: tuple[str, ...]) -> None:
    """Run PROGRAM (a Python file) with ARGUMENTS; when its process dies, resume its run.

    A driver killed by a signal (SIGKILL, the out-of-memory killer) leaves a
    run that did not end: `actorsim run` finds it under --log-dir by the
    dead process's id and resumes it (`actorsim resume`), up to
    --resume-on-failure times, waiting --backoff seconds, then twice as
    long each time (a minute at most). Exits with the program's own exit code (128 + the
    signal's number for a process killed the last time). Works as the
    entrypoint of `ray job submit`: a copy of a small working dir is kept, to
    resume the program in should the dir go (a job's goes once its driver joins
    the cluster).
    """
    command = [sys.executable, program, *arguments]
    waited = backoff
    workdir = Path.cwd()
    copy = _copy_of(workdir) if resumes else None
    for attempt in range(resumes + 1):
        code, pid = _run_child(command)
        if code >= 0:
            sys.exit(code)
        died = _died_run(log_dir, pid)
        signal_name = _signal_name(-code)
        if died is None or attempt == resumes:
            why = "" if died is not None else f"; no run of its under {log_dir} to resume"
            console.print(f"[red]the program's process {pid} died ({signal_name}){why}[/]", highlight=False)
            sys.exit(128 - code)
        console.print(
            f"[yellow]the driver of run {died.run_id} (process {pid}) died ({signal_name}); resuming it in "
            f"{waited:g} s ({attempt + 1} of {resumes})[/]", highlight=False,
        )
        time.sleep(waited)
        waited = min(2 * waited, MOST_BACKOFF)
        # Where the program ran, or its copy once that dir is gone: the run log may say "(deleted)" of it.
        resume_in = workdir if workdir.is_dir() or copy is None else copy
        command = [sys.executable, "-m", "actorsim", "--log-dir", str(log_dir), "resume", died.run_id,
                   "--workdir", str(resume_in)]


def _copy_of(workdir: Path) -> Path | None:
    """A copy of `workdir`, kept for resuming the program should the dir go (a `ray job submit` job's goes once
    its driver joins the cluster); None for a dir too large to copy, where a resume runs in the dir itself."""
    files = [path for path in itertools.islice(workdir.rglob("*"), COPY_MOST_FILES + 1) if path.is_file()]
    if len(files) > COPY_MOST_FILES or sum(path.stat().st_size for path in files) > COPY_MOST_BYTES:
        return None
    copy = Path(tempfile.mkdtemp(prefix="actorsim-run-")) / workdir.name
    shutil.copytree(workdir, copy, symlinks=True)
    atexit.register(shutil.rmtree, copy.parent, ignore_errors=True)
    return copy


def _run_child(command: list[str]) -> tuple[int, int]:
    """Run `command` with this process's terminal; its exit code (negative: killed by that signal) and pid.

    Ctrl-C reaches the child from the terminal (this process waits for it to end its run); a SIGTERM sent
    to this process is passed on to it.
    """
    child = subprocess.Popen(command)
    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda number, frame: child.send_signal(number)),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
    }
    try:
        return child.wait(), child.pid
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _died_run(log_dir: Path, pid: int) -> Run | None:
    """The newest run whose driver was process `pid` of this machine and did not end: the one to resume."""
    folders = sorted((folder for folder in Path(log_dir).glob(f"*/driver-{pid}.jsonl")), reverse=True)
    for driver_file in folders:
        try:
            found = read_run(driver_file.parent)
        except RunLogError as error:
            console.print(f"[red]{error}[/]", highlight=False)
            continue
        if found.ending == "driver died":
            return found
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _exit_code(ended: BaseException | None) -> int:
    """The exit code of a program run in this process: its own, 1 for an error it raised, 130 for Ctrl-C."""
    if ended is None:
        return 0
    if isinstance(ended, SystemExit):
        code = ended.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(ended, KeyboardInterrupt):
        return 130
    console.print(f"[red]error:[/] {ended}", highlight=False)
    return 1


def _echo_human(role: str, text: str) -> None:
    """What the terminal showed when a human's recorded answer was typed: the prompt and the answer."""
    console.print(f"<{role}>: {text}", markup=False, highlight=False)


def run_program(argv: list[str], cwd: str, recording: Replay) -> BaseException | None:
    """Run a recorded program in this process, as it was run, with `recording` installed.

    In this process, not a child, so that the replay is an object the run
    hooks into rather than settings passed through the environment. What
    the program raised (or exited with) is returned, for the report.
    """
    saved_argv, saved_cwd = sys.argv, _cwd_or_none()
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
        if saved_cwd is not None:
            os.chdir(saved_cwd)
    return None


def _cwd_or_none() -> str | None:
    """This process's working dir; None where it was deleted (a `ray job submit` job's, once its driver joins)."""
    try:
        return os.getcwd()
    except FileNotFoundError:
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
