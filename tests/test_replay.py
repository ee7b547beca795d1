"""`actorsim replay`: a recorded run re-runs from its log alone, and differences are caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from actorsim.runs import find_run, read_run
from tests.helpers import restarts_after_kills
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


# -- faults: crashes, kills and a dead model server replay to the same end

CHAOS = """
import contextlib, os, sys
import psutil
import actorsim
from actorsim import RolePlay, Supervision, TaskCenter, create_component

every = int(os.environ.get("KILL_EVERY", "0"))  # the replay runs without: its kills come from the log
policy = Supervision(max_restarts=20, within=60, backoff_initial=0.01, backoff_jitter=0.0)
with actorsim.init(transport=sys.argv[1]) as runtime:
    tc = create_component(TaskCenter, name="task_center", remote=True)
    names = [f"agent_{n}" for n in range(4)]
    replies = lambda name: [f"{name} makes point {k}, and a few more words to stream." for k in range(3)]
    tc.add_agents([
        create_component(RolePlay, name=name, remote=True, supervision=policy,
                         llm={"model_server": "scripted", "replies": replies(name), "chunk_latency": 0.002})
        for name in names
    ])
    tc.send_task_request("Moon?")
    count = 0
    for _ in range(3):
        for frame in tc.step():
            count += 1
            if every and count % every == 0:
                pid = runtime.supervisor.current(names[count // every % len(names)]).pid
                with contextlib.suppress(psutil.NoSuchProcess):  # already dead, its restart not yet due
                    process = psutil.Process(pid)
                    if process.status() != psutil.STATUS_ZOMBIE:
                        process.kill()
                        process.wait(timeout=10)
            print(frame)
"""


TOOL_SCRIPT = """
import sys
import actorsim
from actorsim import RolePlay, TaskCenter, create_component
from tests.tools import append_line

with actorsim.init(transport="local"):
    tc = create_component(TaskCenter, name="task_center", remote=True)
    calls = {"tool_calls": [{"name": "append_line", "arguments": {"path": "effects.txt", "line": "done"}}]}
    llm = {"model_server": "scripted", "replies": [calls, "The file has {heard}."]}
    tc.add_agents([create_component(RolePlay, name="clerk", remote=True, llm=llm, function_list=[append_line])])
    for task in ("Note it.", "Again."):
        tc.send_task_request(task)
        for frame in tc.step():
            print(frame)
"""


def restarts(folder: Path) -> list[str]:
    return [event["actor"] for event in restarts_after_kills(list(read_run(folder).events))]


@pytest.mark.parametrize("transport", ["thespian", "ray"])
def test_a_run_with_killed_agents_replays_its_kills(transport: str, tmp_path: Path) -> None:
    """Agents SIGKILLed mid-step in the recording die again at the same deliveries in the replay, and restart."""
    (tmp_path / "chaos.py").write_text(CHAOS)
    recorded = subprocess.run(
        [sys.executable, "chaos.py", transport], cwd=tmp_path, env={**os.environ, "KILL_EVERY": "9"},
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert recorded.returncode == 0, recorded.stderr
    original = find_run(tmp_path / "logs", "latest")
    killed = restarts(original)
    assert len(killed) >= 3

    replayed = actorsim_command(tmp_path, "replay", "latest")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 13 messages" in replayed.stdout
    replay_folder = max((tmp_path / "logs").iterdir())
    # Each dies again at the delivery it died in; within a step, at its start rather than mid-reply.
    assert sorted(restarts(replay_folder)) == sorted(killed), "the same agents restart, as often"
    assert [m.message_id for m in read_run(replay_folder).messages] == [
        m.message_id for m in read_run(original).messages
    ], "the replay makes the recorded ids"

    # Step by step: --until a reply published after the first restart stops there.
    first_restart = read_run(original).of_type("actor.restarted")[0]["ts"]
    later = next(m for m in read_run(original).messages if m.created_at > first_restart)
    number = read_run(original).messages.index(later) + 1
    until = actorsim_command(tmp_path, "replay", "latest", "--until", later.message_id)
    assert until.returncode == 0, until.stdout + until.stderr
    assert f"replay stopped at {later.message_id}" in until.stdout
    assert f"replay matched {number} message" in until.stdout


def test_a_run_whose_model_server_failed_replays_to_the_same_failure(tmp_path: Path) -> None:
    """A server that refuses the key: the recorded failure and give-up happen again, with no server at all."""
    with OpenAIServer(["Rockets."], failures=[401] * 8) as server:
        recorded = run(
            [sys.executable, DEBATE, "--transport", "local", "--rounds", "2", "--model-server", "openai",
             "--model", "m", "--api-base", server.api_base],
            tmp_path,
        )
    assert recorded.returncode == 1
    assert recorded.stderr.startswith("error: agent 'joe_biden' failed, not restarted")

    replayed = actorsim_command(tmp_path, "replay", "latest")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 1 message and ended as the recording did: agent 'joe_biden' failed" in replayed.stdout
    original, replay = sorted((tmp_path / "logs").iterdir())
    kinds = ("actor.crashed", "actor.restarted", "actor.given_up")
    assert [e["event"] for e in read_run(replay).of_type(*kinds)] == [
        e["event"] for e in read_run(original).of_type(*kinds)
    ]


def test_replay_in_process_reenacts_a_crash(tmp_path: Path) -> None:
    """`TaskCenter(interventions=[Replay(...)])`: no subprocess, no CLI; the recorded crash happens again."""
    from actorsim import Replay, RolePlay, Supervision, TaskCenter
    from tests.actors import TouchyAgent

    quick = Supervision(backoff_initial=0.0, backoff_jitter=0.0)

    def program(**options: object) -> TaskCenter:
        task_center = TaskCenter(log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]
        touchy = TouchyAgent(
            "joe_biden", trigger="Moon", once_marker=str(tmp_path / "raised"), supervision=quick,
            llm={"model_server": "scripted", "replies": ["Artemis.", "Again."]},
        )
        task_center.add_agents([touchy, RolePlay("donald_trump", llm={"model_server": "scripted", "replies": ["No."]})])
        task_center.send_task_request("Moon?")
        for _ in range(2):
            list(task_center.step())
        return task_center

    recorded = program()
    original = recorded.runtime.log_config.directory  # type: ignore[union-attr]
    history = recorded.environment.history()
    recorded.close()
    assert restarts(original) == ["joe_biden"]

    replay = Replay(original)
    replayed = program(interventions=[replay])
    assert replay.matched == replay.recorded == len(history) == 5
    timeless = [attrs.evolve(m, created_at=0.0) for m in history]
    assert [attrs.evolve(m, created_at=0.0) for m in replayed.environment.history()] == timeless, "ids too"
    replay_folder = replayed.runtime.log_config.directory  # type: ignore[union-attr]
    replayed.close()
    crashed = read_run(replay_folder).of_type("actor.crashed")
    assert [(e["actor"], e["reply_id"]) for e in crashed] == [
        (e["actor"], e["reply_id"]) for e in read_run(original).of_type("actor.crashed")
    ]
    assert "cannot stand 'Moon'" in crashed[0]["error"]


def test_replay_in_process_stops_at_until_with_the_state(tmp_path: Path) -> None:
    """`ReplayStopped` carries each role's queue and memory and the history at the message asked for."""
    import actorsim
    from actorsim import Replay, ReplayStopped, RolePlay, Runtime, create_component
    from actorsim._core.options import RunOptions
    from actorsim._runtime.runtime import new_run_id
    from actorsim.transport import load_transport

    def program(replay: Replay | None) -> Runtime:
        handlers = [replay] if replay else []
        runtime = Runtime(load_transport("local"), RunOptions(log_dir=tmp_path), new_run_id(), handlers)
        with runtime:
            tc = create_component(actorsim.TaskCenter, name="tc", remote=True, runtime=runtime)
            tc.add_agents([
                create_component(RolePlay, name=name, remote=True, runtime=runtime,
                                 llm={"model_server": "scripted", "replies": [f"{name} one.", f"{name} two."]})
                for name in ("ada", "bruno")
            ])
            tc.send_task_request("Moon?", send_to="ada")
            for _ in range(3):
                list(tc.step())
        return runtime

    original = program(None).log_config.directory  # type: ignore[union-attr]
    messages = read_run(original).messages
    replay = Replay(original, until=messages[2].message_id)
    with pytest.raises(ReplayStopped) as stopped:
        program(replay)
    assert stopped.value.message == messages[2] and replay.matched == 3
    state = stopped.value.state
    assert state is not None
    assert [m.content for m in state.history] == ["Moon?", "ada one.", "bruno one."]
    assert [m.content for m in state.pending["ada"]] == ["bruno one."]
    assert [turn.content for turn in state.memories["bruno"]] == ["ada: ada one.", "bruno one."]


def test_replay_answers_tool_calls_from_the_log_and_live_from_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No side effect is repeated by a replay; after the fork of --live-from tools run for real; trace shows them."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the program imports its tool from tests.tools
    (tmp_path / "program.py").write_text(TOOL_SCRIPT)
    recorded = run([sys.executable, "program.py"], tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    effects = tmp_path / "effects.txt"
    assert effects.read_text() == "done\ndone\n"
    assert "<clerk> \u2699 append_line \u2192 2 lines" in recorded.stdout

    replayed = actorsim_command(tmp_path, "replay", "latest")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replay matched 4 messages" in replayed.stdout
    assert frames(replayed.stdout) == frames(recorded.stdout)
    assert effects.read_text() == "done\ndone\n", "the replay ran no tool"

    second_task = read_run(find_run(tmp_path / "logs", "latest")).messages[2]
    forked = actorsim_command(tmp_path, "replay", "latest", "--live-from", second_task.message_id)
    assert forked.returncode == 0, forked.stdout + forked.stderr
    assert effects.read_text() == "done\ndone\ndone\n", "after the fork the tool ran for real, once"
    assert "<clerk> \u2699 append_line \u2192 3 lines" in forked.stdout

    trace = actorsim_command(tmp_path, "trace", "latest")
    assert trace.returncode == 0, trace.stderr
    assert trace.stdout.count("\u2699 append_line") == 2 and "2 lines" in trace.stdout
