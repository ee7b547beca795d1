"""The `actorsim` command: list runs and show what caused what."""

from __future__ import annotations

import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Column, Table
from rich.tree import Tree

from actorsim._envelope import Message
from actorsim.runs import Causality, RunLogError, find_run, list_runs, read_run

console = Console()


def _label(message: Message, start: float) -> str:
    to = ", ".join(message.send_to) or "(nobody)"
    content = message.content if len(message.content) <= 80 else message.content[:77] + "..."
    return (
        f"[bold]{message.sent_from}[/] -> {to}  [dim]step {message.step} round {message.round} "
        f"clock {message.clock} +{message.created_at - start:.3f}s {message.message_id}[/]\n{content}"
    )


@click.group()
@click.option("--log-dir", default="logs", show_default=True, type=click.Path(path_type=Path),
              help="Where runs are logged.")
@click.pass_context
def main(context: click.Context, log_dir: Path) -> None:
    """Inspect actorsim runs from their logs."""
    context.obj = log_dir


@main.command()
@click.pass_obj
def runs(log_dir: Path) -> None:
    """The runs in the log folder, oldest first."""
    table = Table("started", "transport", "agents", "messages", "errors")
    table.columns.insert(0, Column("run", no_wrap=True, min_width=22))
    try:
        found = list_runs(log_dir)
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    for run in found:
        started = datetime.datetime.fromtimestamp(run.started_at).strftime("%m-%d %H:%M:%S")
        table.add_row(run.run_id, started, run.transport, str(len(run.agents)), str(len(run.messages)),
                      str(len(run.errors)))
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
            message = graph.get(message_id)
            causes = Tree("[bold]caused by[/]")
            for cause in graph.causes(message):
                causes.add(_label(cause, start))
            console.print(causes)
            roots = [message]
        else:
            roots = graph.roots()
    except RunLogError as error:
        raise click.ClickException(str(error)) from None
    tree = Tree(f"[bold]run {record.run_id}[/] ({record.transport}, {len(graph.messages)} messages)")

    def grow(node: Tree, message: Message, seen: set[str]) -> None:
        if role is None or role == message.sent_from or role in message.send_to:
            node = node.add(_label(message, start))
        for effect in graph.effects(message):
            if effect.message_id not in seen:
                seen.add(effect.message_id)
                grow(node, effect, seen)

    seen: set[str] = set()
    for root in roots:
        grow(tree, root, seen)
    console.print(tree)
