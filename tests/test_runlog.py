"""Run logs: every process's events, message causality, and reading logs back."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actorsim import AgentFailedError, RolePlay, Runtime, TaskCenter, create_component
from actorsim._core.options import RunOptions
from actorsim._runlog import RunLogConfig, close_run_log, log_event, open_run_log
from actorsim.cli import main
from actorsim.runs import Causality, RunLogError, read_run
from actorsim.transport import load_transport
from tests.actors import ContextReportingAgent
from tests.conftest import Make
from tests.helpers import TASK, logged_events, scripted, texts_by_role
from tests.openai_server import OpenAIServer
from tests.test_task_center import debate


def whispered_debate(make: Make) -> TaskCenter:
    task_center, _ = debate(make, "joe_biden", "donald_trump", "hillary_clinton")
    task_center.send_task_request(TASK, send_to="joe_biden")
    list(task_center.step(send_to="hillary_clinton"))
    list(task_center.step(allowed_roles="donald_trump"))
    list(task_center.step())
    return task_center


class TestEvents:
    def test_a_run_logs_every_kind_of_event(self, make: Make, mode: str, log_dir: Path) -> None:
        """Publishing, pulling, delivering, model calls, steps and actors all appear."""
        with logged_events(log_dir) as events:
            whispered_debate(make)
        kinds = {event["event"] for event in events}
        assert {
            "actor.started",
            "message.published",
            "message.pulled",
            "message.delivered",
            "llm.call.started",
            "llm.call.finished",
            "step.started",
            "step.finished",
        } <= kinds

    def test_child_processes_log_too(self, make: Make, mode: str, log_dir: Path) -> None:
        """On Thespian and Ray the Environment and agents log from their own processes."""
        with logged_events(log_dir) as events:
            whispered_debate(make)
        by_kind = {event["event"]: event for event in events}
        actor_pids = {by_kind["message.published"]["pid"], by_kind["llm.call.finished"]["pid"]}
        if mode in ("thespian", "ray"):
            assert os.getpid() not in actor_pids
        else:
            assert actor_pids == {os.getpid()}
        assert all(event["run_id"] == events[0]["run_id"] for event in events)

    def test_no_line_names_a_field_twice(self, make: Make) -> None:
        """The fields every line shares are rendered apart from the event's own: they must not collide."""

        def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            names = [name for name, _ in pairs]
            assert len(names) == len(set(names)), f"a field named twice in {names}"
            return dict(pairs)

        task_center = whispered_debate(make)
        directory = task_center.runtime.log_config.directory  # type: ignore[union-attr]
        lines = [line for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]
        events = [json.loads(line, object_pairs_hook=unique) for line in lines]
        assert {"message.published", "llm.call.finished", "actor.started"} <= {e["event"] for e in events}

    def test_a_users_structlog_sees_the_actor_bound(self, make: Make) -> None:
        """structlog's contextvars hold the actor while it handles a message, and nothing else of ours."""
        task_center = make(TaskCenter, "task_center")
        agent = make(ContextReportingAgent, "reporter", llm=scripted("{speaker}: {heard}"))
        task_center.add_agents([agent])
        task_center.send_task_request(TASK)
        assert texts_by_role(task_center.step()) == {"reporter": "Bound: {'actor': 'reporter'}"}

    def test_model_calls_record_prompt_reply_and_latency(self, make: Make, log_dir: Path) -> None:
        with logged_events(log_dir) as events:
            task_center, _ = debate(make, "joe_biden")
            task_center.send_task_request(TASK)
            list(task_center.step())
        finished = [e for e in events if e["event"] == "llm.call.finished"]
        assert [(e["role"], e["reply"], e["actor"]) for e in finished] == [
            ("joe_biden", "joe_biden reply 1.", "joe_biden")
        ]
        assert finished[0]["latency_s"] >= 0
        begun = [e for e in events if e["event"] == "llm.call.started"]
        assert begun[0]["prompt"][-1] == {"role": "user", "content": f"user_requirement: {TASK}"}

    def test_each_logged_prompt_is_the_one_the_model_received(self, make: Make, log_dir: Path) -> None:
        """Prompts are logged as what is new since the agent's last call, and read back whole."""
        with OpenAIServer(["One.", "Two.", "Three."]) as server, logged_events(log_dir) as events:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm), make(RolePlay, "donald_trump", llm=llm)])
            task_center.send_task_request(TASK)
            for _ in range(3):
                list(task_center.step())
        begun = [e for e in events if e["event"] == "llm.call.started"]
        logged, received = (e["prompt"] for e in begun), (r["messages"] for r in server.requests)
        assert sorted(map(repr, logged)) == sorted(map(repr, received))
        last = max((e for e in begun if e["role"] == "joe_biden"), key=lambda e: e["ts"])
        assert last["prompt_reused"] == len(last["prompt"]) - 2, "only the last reply and the new turn are written"

    def test_failures_are_logged_with_their_traceback(self, make: Make, log_dir: Path) -> None:
        """A model server that stays busy: each crash, restart and the giving up are in the log, with tracebacks."""
        with OpenAIServer(["never"], failures=[503] * 4) as server, logged_events(log_dir) as events:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "max_attempts": 1}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm)])
            task_center.send_task_request(TASK)
            gave_up = "agent 'joe_biden' failed after 3 restarts.*answered 503"
            with pytest.raises(AgentFailedError, match=gave_up) as raised:
                list(task_center.step())
        failed = [e for e in events if e["event"] == "actor.failed"]
        assert failed and "answered 503" in failed[0]["exception"] and "Traceback" in failed[0]["exception"]
        kinds = ("llm.call.failed", "actor.crashed", "actor.restarted", "actor.given_up", "message.dead_lettered")
        assert [e["event"] for e in events if e["event"] in kinds] == [
            *["llm.call.failed", "actor.crashed", "actor.restarted"] * 3,
            *["llm.call.failed", "actor.crashed", "actor.given_up", "message.dead_lettered"],
        ]
        path, line = str(raised.value.log_line).rsplit(":", 1)
        assert '"event":"actor.given_up"' in Path(path).read_text().splitlines()[int(line) - 1]
        assert task_center.environment.pending_roles() == [], "the task is a dead letter, not pending"

    def test_retries_are_logged(self, make: Make, log_dir: Path) -> None:
        with OpenAIServer(["ok"], failures=[500, 500]) as server, logged_events(log_dir) as events:
            llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "retry_initial_wait": 0.01}
            task_center = make(TaskCenter, "task_center")
            task_center.add_agents([make(RolePlay, "joe_biden", llm=llm)])
            task_center.send_task_request(TASK)
            assert "".join(f.content for f in task_center.step()) == "ok"
        finished = [e for e in events if e["event"] == "llm.call.finished"]
        assert finished[0]["usage"] == {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
        retries = [e for e in events if e["event"] == "llm.call.retry"]
        attempts = [(e["role"], e["attempt"], e["max_attempts"]) for e in retries]
        assert attempts == [("joe_biden", 2, 5), ("joe_biden", 3, 5)]
        assert all("500" in e["error"] for e in retries)


class TestConsole:
    def test_console_rendering_is_opt_in(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Events show on stderr for people only when asked; the file log is written either way."""
        for console in (False, True):
            options = RunOptions(log_dir=tmp_path / str(console), console_log=console)
            with Runtime(load_transport("local"), options, f"console-{console}") as runtime:
                task_center = create_component(TaskCenter, name="task_center", remote=True, runtime=runtime)
                llm = {"model_server": "scripted", "replies": ["Hi."]}
                task_center.add_agents([create_component(RolePlay, "joe_biden", True, runtime=runtime, llm=llm)])
                task_center.send_task_request(TASK)
                list(task_center.step())
            shown = capsys.readouterr().err
            assert ("message.published" in shown) is console
            assert read_run(tmp_path / str(console) / f"console-{console}").messages[-1].content == "Hi."


class TestCausality:
    def test_a_reply_names_exactly_the_messages_its_author_pulled(self, make: Make, log_dir: Path) -> None:
        """In the three-man debate each reply's parents are what its author pulled for that step."""
        with logged_events(log_dir) as events:
            task_center = whispered_debate(make)
        delivered = {e["reply_id"]: e["message_ids"] for e in events if e["event"] == "message.delivered"}
        pulled = [taken for e in events if e["event"] == "message.pulled" for taken in e["taken"].items()]
        replies = [m for m in task_center.environment.history() if m.sent_from != "user_requirement"]
        assert len(replies) == 4
        for reply in replies:
            assert list(reply.parent_ids) == delivered[reply.message_id]
            assert (reply.sent_from, list(reply.parent_ids)) in pulled

    def test_clocks_follow_causes(self, make: Make) -> None:
        """Every message's Lamport clock is above its causes' clocks."""
        task_center = whispered_debate(make)
        history = {m.message_id: m for m in task_center.environment.history()}
        for message in history.values():
            assert all(message.clock > history[parent].clock for parent in message.parent_ids)
        assert len({m.trace_id for m in history.values()}) == 1

    def test_a_whisper_is_answered_only_by_its_recipient(self, make: Make) -> None:
        """What the whisper caused comes from hillary alone."""
        task_center = whispered_debate(make)
        graph = Causality(task_center.environment.history())
        whisper = next(m for m in graph.messages.values() if m.send_to == ("hillary_clinton",))
        assert {m.sent_from for m in graph.effects(whisper)} == {"hillary_clinton"}
        assert [m.sent_from for m in graph.causes(whisper)] == ["user_requirement"]


class TestReadingLogs:
    def write(self, folder: Path, text: str) -> Path:
        folder.mkdir()
        (folder / "driver-1.jsonl").write_text(text)
        return folder

    def test_a_corrupt_line_is_named(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path / "run", '{"v": 1, "event": "run.started", "ts": 1}\nnot json\n')
        with pytest.raises(RunLogError, match=r"driver-1.jsonl:2: not a JSON event"):
            read_run(folder)

    def test_a_truncated_log_is_named(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path / "run", '{"v": 1, "event": "run.started", "ts": 1}\n{"v": 1, "ev')
        with pytest.raises(RunLogError, match=r"driver-1.jsonl:2: truncated line"):
            read_run(folder)

    def test_another_version_is_refused(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path / "run", '{"v": 99, "event": "run.started", "ts": 1}\n')
        with pytest.raises(RunLogError, match=r"driver-1.jsonl:1: log format version 99; this actorsim reads 1"):
            read_run(folder)

    def test_a_prompt_that_reuses_a_missing_one_is_named(self, tmp_path: Path) -> None:
        line = '{"v": 1, "event": "llm.call.started", "ts": 1, "actor": "a", "prompt_reused": 3, "prompt_new": []}\n'
        folder = self.write(tmp_path / "run", line)
        with pytest.raises(RunLogError, match=r"driver-1.jsonl:1: a model call reuses 3 turns of a previous prompt"):
            read_run(folder)

    def test_agents_are_counted_in_logs_written_before_their_behaviour_was_renamed(self, tmp_path: Path) -> None:
        """An agent's actor logged `AgentHost` before it was `AgentBehaviour`: both are agents; a host is not."""
        lines = [
            '{"v": 1, "event": "actor.started", "ts": 1, "actor": "old", "behaviour": "AgentHost"}',
            '{"v": 1, "event": "actor.started", "ts": 2, "actor": "new", "behaviour": "AgentBehaviour"}',
            '{"v": 1, "event": "actor.started", "ts": 3, "actor": "host-0.1", "behaviour": "Host"}',
            '{"v": 1, "event": "actor.started", "ts": 4, "actor": "tc/environment", "behaviour": "Environment"}',
        ]
        assert read_run(self.write(tmp_path / "run", "\n".join(lines) + "\n")).agents == ["new", "old"]

    def test_not_a_run(self, tmp_path: Path) -> None:
        with pytest.raises(RunLogError, match="no run log here"):
            read_run(tmp_path)


class TestCommandLine:
    def test_runs_and_trace(self, tmp_path: Path) -> None:
        """`actorsim runs` lists a run; `actorsim trace --message` shows its causes and effects."""

        def plain(cls: type, name: str, **options: Any) -> Any:
            return cls(name=name, log_dir=tmp_path) if cls is TaskCenter else cls(name=name, **options)

        task_center = whispered_debate(plain)
        task_center.close()
        runner = CliRunner()
        listed = runner.invoke(main, ["--log-dir", str(tmp_path), "runs"], terminal_width=200)
        assert listed.exit_code == 0, listed.output
        assert task_center.runtime.run_id in listed.output and "inline" in listed.output
        messages = read_run(tmp_path / task_center.runtime.run_id).messages
        whisper = next(m for m in messages if m.send_to == ("hillary_clinton",))
        traced = runner.invoke(
            main,
            ["--log-dir", str(tmp_path), "trace", "latest", "--message", whisper.message_id[:24]],
            terminal_width=200,
        )
        assert traced.exit_code == 0, traced.output
        assert "caused by" in traced.output and TASK in traced.output
        assert "hillary_clinton reply 1." in traced.output and "donald_trump reply 1." not in traced.output

    def test_runs_piped_is_not_cut_to_80_columns(self, tmp_path: Path) -> None:
        """Piped (a script, `| grep`), `actorsim runs` prints every column whole, as wide as it needs."""
        task_center = whispered_debate(
            lambda cls, name, **options: cls(name=name, log_dir=tmp_path) if cls is TaskCenter
            else cls(name=name, **options))
        task_center.close()
        environment = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
        listed = subprocess.run([sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path), "runs"],
                                env=environment, capture_output=True, text=True, timeout=60, check=True)
        [row] = [line for line in listed.stdout.splitlines() if task_center.runtime.run_id in line]
        assert "…" not in listed.stdout and len(row) > 80
        assert all(cell in row for cell in ("inline", "stopped")), row

    def test_an_unknown_run_is_a_clear_error(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(main, ["--log-dir", str(tmp_path), "trace", "nope"])
        assert result.exit_code == 1
        assert "no run matching 'nope'" in result.output


def _log_in_forked_child(config: RunLogConfig) -> None:
    open_run_log(config, process="child")
    log_event("child.logged")
    close_run_log(config.run_id)


def test_a_forked_process_opens_a_log_of_its_own(tmp_path: Path) -> None:
    """A process forked after the parent opened its log (a restarted Thespian admin's actors) writes its own file."""
    config = RunLogConfig("forked", tmp_path)
    parent = open_run_log(config, process="driver")
    try:
        parent.event("parent.logged")
        child = multiprocessing.get_context("fork").Process(target=_log_in_forked_child, args=(config,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
    finally:
        close_run_log("forked")
    events = read_run(tmp_path).events
    assert [(e["event"], e["process"], e["pid"]) for e in events] == [
        ("parent.logged", "driver", os.getpid()), ("child.logged", "child", child.pid)
    ]
