"""A model server that cannot answer: the step fails at once in one line; retries say so while they wait."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from actorsim import AgentFailedError, RolePlay, TaskCenter
from actorsim.runs import find_run, read_run
from tests.conftest import Make
from tests.helpers import TASK
from tests.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parent.parent
DEBATE = str(ROOT / "examples" / "debate.py")
TRANSPORTS = ["local", "thespian", "ray"]


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=180,
        check=False,
    )


def debate(transport: str, api_base: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(
        [sys.executable, DEBATE, "--transport", transport, "--rounds", "2", "--model-server", "openai",
         "--model", "m", "--api-base", api_base, "--log-dir", str(cwd / "logs")],
        cwd,
    )


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str], who: str, api_base: str) -> None:
    """Exit 1; stderr's first line names the agent, the server and the cause; no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[0].startswith(
        f"{who} failed, not restarted (a restart cannot cure this): cannot connect to the model server at {api_base}: "
    ), result.stderr
    assert "Traceback" not in result.stderr


class TestNoRestartCanCureIt:
    def test_a_refused_key_fails_the_step_at_once(self, make: Make) -> None:
        """401: one request, no retry, no restart; the agent is failed and the error is one line."""
        with OpenAIServer(["never"], api_key="sk-right") as server:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "api_key": "sk-wrong"}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm)])
            task_center.send_task_request(TASK)
            with pytest.raises(AgentFailedError) as caught:
                list(task_center.step())
        assert server.statuses == [401], "neither retried nor restarted"
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(
            f"agent 'joe_biden' failed, not restarted (a restart cannot cure this): model server at "
            f"{server.api_base} answered 401 Unauthorized"
        )
        assert task_center.registry.find("joe_biden").status == "failed"
        assert [letter.message.content for letter in task_center.environment.dead_letters()] == [TASK]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_debate_against_a_dead_server_ends_in_one_line(transport: str, tmp_path: Path) -> None:
    """Connection refused: exit 1 at once, one line naming the agent, the server and the cause; one try."""
    api_base = f"http://127.0.0.1:{closed_port()}/v1"
    result = debate(transport, api_base, tmp_path)
    assert_refused_in_one_line(result, "error: agent 'joe_biden'", api_base)
    record = read_run(find_run(tmp_path / "logs", "latest"))
    assert len(record.of_type("llm.call.started")) == 1
    assert record.of_type("actor.restarted") == []


def test_the_tools_example_against_a_dead_server_ends_in_one_line(tmp_path: Path) -> None:
    """examples/tools.py, whose two agents call a model: exit 1, one line (the first agent to fail), no traceback."""
    api_base = f"http://127.0.0.1:{closed_port()}/v1"
    result = run([sys.executable, str(ROOT / "examples" / "tools.py"), "--model-server", "openai", "--model", "m",
                  "--api-base", api_base, "--log-dir", str(tmp_path / "logs")], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    who = next(role for role in ("forecaster", "navigator") if line.startswith(f"error: agent '{role}'"))
    assert_refused_in_one_line(result, f"error: agent '{who}'", api_base)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_debate_says_while_it_waits_for_a_busy_server(transport: str, tmp_path: Path) -> None:
    """503 twice: the terminal says which try comes next and when, from the agent's process, then goes on."""
    with OpenAIServer(["Rockets.", "Balloons."], failures=[503, 503]) as server:
        result = debate(transport, server.api_base, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    notices = [line for line in result.stdout.splitlines() if "retry" in line]
    assert [line.split(" in ")[0] for line in notices] == [
        f"joe_biden: model server at {server.api_base} answered 503 Service Unavailable; retry 2 of 5",
        f"joe_biden: model server at {server.api_base} answered 503 Service Unavailable; retry 3 of 5",
    ]
    assert "<joe_biden>: Rockets." in result.stdout
    retries = read_run(find_run(tmp_path / "logs", "latest")).of_type("llm.call.retry")
    assert [(e["role"], e["attempt"], e["max_attempts"]) for e in retries] == [("joe_biden", 2, 5), ("joe_biden", 3, 5)]


def test_actorsim_chat_against_a_dead_server_ends_in_one_line(tmp_path: Path) -> None:
    """`actorsim chat`: exit 1 and one line on stderr, no traceback."""
    api_base = f"http://127.0.0.1:{closed_port()}/v1"
    result = run(
        [sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path / "logs"), "chat", "--human", "",
         "--model-server", "openai", "--api-base", api_base],
        tmp_path,
    )
    assert_refused_in_one_line(result, "Error: agent 'ada'", api_base)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ctrl_c_during_retries_stops_every_process_promptly(transport: str, tmp_path: Path) -> None:
    """A server failing every call: Ctrl-C while the agents wait to try again ends the program and every process
    it started within 2 s (Ray's own shutdown of its instance, 1.4 s of it, gets half a second more), not when the
    retries are over."""
    with OpenAIServer(["never"], failures=[500] * 1000) as server:
        program = subprocess.Popen(
            [sys.executable, DEBATE, "--transport", transport, "--rounds", "2", "--model-server", "openai",
             "--model", "m", "--api-base", server.api_base, "--log-dir", str(tmp_path / "logs")],
            cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert program.stdout is not None
            for line in program.stdout:  # the agents are in the longest wait of their retries
                if "retry 4 of 5" in line:
                    break
            started = [child for child in psutil.Process(program.pid).children(recursive=True)]
            interrupted = time.monotonic()
            program.send_signal(signal.SIGINT)
            program.communicate(timeout=30)
            exited = time.monotonic() - interrupted
            _, alive = psutil.wait_procs(started, timeout=10)
            gone = time.monotonic() - interrupted
        finally:
            if program.poll() is None:
                program.kill()
                program.wait()
    assert exited < (2.5 if transport == "ray" else 2.0), f"the program exited {exited:.1f} s after Ctrl-C"
    assert not alive and gone < (3.0 if transport == "ray" else 2.5), f"its processes were gone {gone:.1f} s after"
    run = read_run(find_run(tmp_path / "logs", "latest"))
    assert run.ending == "interrupted"
