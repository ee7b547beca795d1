"""`actorsim replay`: a recorded run re-runs from its log alone, and differences are caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorsim.runs import find_run, read_run
from tests.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parent.parent
DEBATE = str(ROOT / "examples" / "debate.py")


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "200"}  # rich wraps at 80 columns without a terminal
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=180, check=False)


def actorsim_command(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "actorsim", "--log-dir", str(cwd / "logs"), *arguments], cwd)


def frames(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("<")]


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
def test_a_recorded_run_replays_without_its_model_server(transport: str, tmp_path: Path) -> None:
    """Recorded against a local OpenAI-compatible server; replayed after it is gone, with the same frames."""
    with OpenAIServer(["Rockets, obviously.", "Balloons, clearly.", "Catapults, naturally."]) as server:
        recorded = run(
            [
                sys.executable,
                DEBATE,
                "--transport",
                transport,
                "--rounds",
                "4",
                "--model-server",
                "openai",
                "--model",
                "local",
                "--api-base",
                server.api_base,
            ],
            tmp_path,
        )
    assert recorded.returncode == 0, recorded.stderr
    assert len(server.requests) == 4

    replayed = actorsim_command(tmp_path, "replay", "latest")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert frames(replayed.stdout) == frames(recorded.stdout) != []
    assert "replay matched 5 messages" in replayed.stdout
    runs = sorted((tmp_path / "logs").iterdir())
    assert len(runs) == 2, "the replay is logged as a run of its own"
    original, replay = (read_run(folder).messages for folder in runs)
    assert [(m.sent_from, m.send_to, m.content) for m in replay] == [
        (m.sent_from, m.send_to, m.content) for m in original
    ]


SCRIPT = """
import sys
from pathlib import Path
import actorsim
from actorsim import RolePlay, TaskCenter, create_component

instruction = Path("instruction.txt").read_text()
with actorsim.init(transport="local"):
    tc = create_component(TaskCenter, name="task_center", remote=True)
    llm = {"model_server": "scripted", "replies": ["One.", "Two.", "Three."]}
    tc.add_agents([create_component(RolePlay, name="joe_biden", remote=True, llm=llm, instruction=instruction),
                   create_component(RolePlay, name="donald_trump", remote=True, llm=llm, instruction="Debate.")])
    tc.send_task_request("Moon?", send_to="joe_biden")
    for _ in range(3):
        for frame in tc.step():
            print(frame)
"""


@pytest.fixture
def recorded_script(tmp_path: Path) -> Path:
    (tmp_path / "program.py").write_text(SCRIPT)
    (tmp_path / "instruction.txt").write_text("You debate politely.")
    result = run([sys.executable, "program.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_a_changed_instruction_is_reported_as_a_divergence(recorded_script: Path) -> None:
    """After the program changes, replay stops at the first difference and shows both sides."""
    (recorded_script / "instruction.txt").write_text("You debate rudely.")
    replayed = actorsim_command(recorded_script, "replay", "latest")
    assert replayed.returncode == 1
    assert "the prompt of joe_biden's model call 1 differs" in replayed.stdout
    assert "You debate politely." in replayed.stdout and "You debate rudely." in replayed.stdout
    # The replayed program's own traceback comes first; the command's verdict is the last line.
    assert replayed.stderr.splitlines()[-1] == "Error: replay diverged after matching 1 message"


def test_until_stops_and_shows_the_state(recorded_script: Path) -> None:
    """--until MESSAGE_ID stops there and shows queues, memories and history."""
    messages = read_run(find_run(recorded_script / "logs", "latest")).messages
    reply = messages[1]
    replayed = actorsim_command(recorded_script, "replay", "latest", "--until", reply.message_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replay stopped at {reply.message_id}" in replayed.stdout
    assert "donald_trump pending: ['joe_biden: One.']" in replayed.stdout
    assert "replay matched 2 messages" in replayed.stdout


def test_live_from_forks_the_run_with_the_real_model(tmp_path: Path) -> None:
    """Up to the fork the log answers; after it the model server does, and only for what follows."""
    with OpenAIServer(["Rockets.", "Balloons.", "Catapults.", "Ladders."]) as server:
        recorded = run(
            [
                sys.executable,
                DEBATE,
                "--transport",
                "local",
                "--rounds",
                "4",
                "--model-server",
                "openai",
                "--model",
                "m",
                "--api-base",
                server.api_base,
            ],
            tmp_path,
        )
    assert recorded.returncode == 0, recorded.stderr
    fork = read_run(find_run(tmp_path / "logs", "latest")).messages[2]
    assert fork.content == "Balloons."

    with OpenAIServer(["Live words."], port=server.port) as live_server:
        replayed = actorsim_command(tmp_path, "replay", "latest", "--live-from", fork.message_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 3 messages, then continued live" in replayed.stdout
    assert frames(replayed.stdout)[:2] == frames(recorded.stdout)[:2]
    assert "<joe_biden>: Live words." in replayed.stdout
    assert len(live_server.requests) == 2, "only the two replies after the fork ask the model"
    assert live_server.requests[0]["messages"][-1]["content"] == "donald_trump: Balloons."


def test_an_unknown_message_id_is_refused(recorded_script: Path) -> None:
    replayed = actorsim_command(recorded_script, "replay", "latest", "--until", "ffff")
    assert replayed.returncode == 1
    assert "--until ffff: no single recorded message" in replayed.stderr
