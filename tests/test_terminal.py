"""Terminal mode as a person uses it: a pty, typed answers, Ctrl-C; then nothing left and the log replays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorsim.runs import find_run, read_run
from tests.helpers import alive, run_processes, wait_until_gone

pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed")

ROOT = Path(__file__).resolve().parent.parent
DEBATE = str(ROOT / "examples" / "debate.py")
PROMPT = "<donald_trump>: "
YOUR_TURN = "(Enter sends; Ctrl-C ends the run)"  # the end of the line before a human's prompt


def spawn(arguments: list[str], cwd: Path) -> pexpect.spawn:
    environment = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color"}
    return pexpect.spawn(
        sys.executable, arguments, cwd=str(cwd), env=environment, encoding="utf-8", timeout=90, dimensions=(50, 200)
    )


def replay(log_dir: Path, run_id: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorsim", "--log-dir", str(log_dir), "replay", run_id],
        cwd=cwd, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
def test_a_human_debates_then_ctrl_c_ends_the_run_cleanly(transport: str, tmp_path: Path) -> None:
    """Answer as Trump, see Biden answer, press Ctrl-C: exit 130, no traceback, no process left, the log replays."""
    log_dir = tmp_path / "logs"
    child = spawn(
        [DEBATE, "--transport", transport, "--human", "donald_trump", "--rounds", "50", "--log-dir", str(log_dir)],
        tmp_path,
    )
    try:
        child.expect_exact(YOUR_TURN)
        child.expect_exact(PROMPT)
        child.sendline("Balloons are cheaper, believe me.")
        child.expect("Artemis works because we invested in it, folks.")
        child.expect_exact(PROMPT)
        processes = run_processes(child.pid, log_dir)
        assert len(processes) >= (1 if transport == "local" else 3)
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    output = child.before or ""
    assert child.exitstatus == 130, output
    assert "interrupted: the run is stopped" in output and "Traceback" not in output

    record = read_run(find_run(log_dir, "latest"))
    assert wait_until_gone(sorted(set(processes) | record.processes), timeout=15) == []
    assert record.of_type("run.interrupted") and record.of_type("run.stopped")
    assert [event["text"] for event in record.of_type("human.input")] == ["Balloons are cheaper, believe me."]
    assert [m.sent_from for m in record.messages] == ["user_requirement", "joe_biden", "donald_trump", "joe_biden"]

    replayed = replay(log_dir, record.run_id, tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 4 messages, up to where the run was interrupted" in replayed.stdout
    lines = replayed.stdout.splitlines()
    answer = lines.index("<donald_trump>: Balloons are cheaper, believe me.")  # the recorded answer, where it came
    assert lines[answer - 1].startswith("your turn as <donald_trump>")
    following = [line for line in lines[answer + 1:] if line]
    assert following[0] == "<joe_biden>: Artemis works because we invested in it, folks."

    # `actorsim runs`: both the run and its replay are marked interrupted, and neither stop is an error.
    listed = subprocess.run(
        [sys.executable, "-m", "actorsim", "--log-dir", str(log_dir), "runs"],
        cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=60, check=True,
    )
    rows = [line.split("│") for line in listed.stdout.splitlines() if line.startswith("│ 2")]
    assert [(cells[-3].strip(), cells[-2].strip()) for cells in rows] == [("0", "interrupted"), ("0", "interrupted")]


def test_actorsim_chat_answers_the_human_and_replays(tmp_path: Path) -> None:
    """`actorsim chat`: the agents take turns, the next one answers what the human typed, and the run replays."""
    log_dir = tmp_path / "logs"
    child = spawn(
        ["-m", "actorsim", "--log-dir", str(log_dir), "chat", "--roles", "ada,bruno", "--human", "you",
         "--turns", "4", "--chunk-latency", "0"],
        tmp_path,
    )
    try:
        child.expect_exact(YOUR_TURN)
        child.expect_exact("<you>: ")
        child.sendline("Catapults to the Moon!")
        child.expect_exact("You said “Catapults to the Moon!” As ada, I would build a small lander first.")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    assert not alive(child.pid)
    record = read_run(find_run(log_dir, "latest"))
    assert [m.sent_from for m in record.messages] == ["user_requirement", "ada", "bruno", "you", "ada"]
    replayed = replay(log_dir, record.run_id, tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 5 messages" in replayed.stdout


def test_actorsim_chat_interrupted_says_where_its_log_is(tmp_path: Path) -> None:
    """Ctrl-C at the human's turn: exit 130, and the last line names the run's log folder."""
    log_dir = tmp_path / "logs"
    child = spawn(["-m", "actorsim", "--log-dir", str(log_dir), "chat", "--chunk-latency", "0"], tmp_path)
    try:
        child.expect_exact(YOUR_TURN)
        child.expect_exact("<you>: ")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130, child.before
    folder = find_run(log_dir, "latest")
    assert (child.before or "").strip().splitlines()[-1] == f"interrupted: the run is stopped; its log: {folder}"
