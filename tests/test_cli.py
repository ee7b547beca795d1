"""The `actorsim` command as a user types it: bad arguments are refused before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorsim.runs import find_run, read_run


def actorsim(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorsim", "--log-dir", str(cwd / "logs"), *arguments],
        cwd=cwd, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--roles", "ada,ada"],
         "Error: Invalid value for '--roles': 'ada' named twice: each agent needs a name of its own"),
        (["--roles", "ada,bruno", "--human", "ada"],
         "Error: Invalid value for '--human': 'ada' is one of --roles; you need a name of your own"),
        (["--roles", ""],
         "Error: Invalid value for '--roles': give the agents' names, comma-separated, e.g. ada,bruno"),
        (["--roles", "ada,,bruno"],
         "Error: Invalid value for '--roles': give the agents' names, comma-separated, e.g. ada,bruno"),
    ],
)
def test_chat_refuses_bad_roles_before_starting_anything(tmp_path: Path, arguments: list[str], error: str) -> None:
    """A usage error (exit 2) that names the argument; no run is started, so none becomes `latest`."""
    result = actorsim(tmp_path, "chat", *arguments)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "Usage: python -m actorsim chat [OPTIONS]"
    assert lines[-1] == error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_help_describes_every_command(tmp_path: Path) -> None:
    """`actorsim --help` says what the tool is for, chat included, and one line per command."""
    result = actorsim(tmp_path, "--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    description = lines[lines.index("") + 1].strip()
    assert description == "List, trace, replay, resume and export runs; chat with agents in a terminal."
    commands = {line.split()[0]: line for line in lines[lines.index("Commands:") + 1:] if line.strip()}
    assert sorted(commands) == ["chat", "export", "replay", "resume", "run", "runs", "trace"]
    assert all(len(line.split()) > 2 for line in commands.values()), "each command has a description"


def test_trace_names_the_run_it_looked_in(tmp_path: Path) -> None:
    """An unknown message id: exit 1, and the error says which run was searched."""
    made = actorsim(tmp_path, "chat", "--human", "", "--turns", "1", "--chunk-latency", "0")
    assert made.returncode == 0, made.stderr
    run = read_run(find_run(tmp_path / "logs", "latest"))
    result = actorsim(tmp_path, "trace", "latest", "--message", "ffff")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: no message with id 'ffff': looked in run {run.run_id} ({run.directory})"
    )
    assert f"2 messages in run {run.run_id}" in made.stdout
