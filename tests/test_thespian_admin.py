"""Thespian's admin routes every message of a run: a run outlives an admin that stops routing or dies.

A process SIGKILLed mid-write keeps the admin queue's write lock, and nothing
reaches anyone any more (`jam_thespian_admin` does this on purpose). The
transport restarts the actor system, and the supervisor every actor in it.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from thespian.system import multiprocCommon

from actorsim import ActorDiedError, Frame, RolePlay, Supervision, TaskCenter, TransportStartError
from actorsim.transport import Transport, _thespian
from tests.actors import GetPid, JamAdmin, JammingAgent, Recorder
from tests.conftest import Make, Spawn, on_transports
from tests.helpers import TASK, logged_events, of_kind, scripted, texts_by_role, wait_until_gone

ROOT = Path(__file__).resolve().parent.parent

thespian = pytest.mark.parametrize("mode", ["thespian"], indirect=True)


@on_transports("thespian")
def test_calls_to_a_jammed_system_end_and_a_new_system_takes_over(transport: Transport, spawn: Spawn) -> None:
    """The jammer's call ends dead, and so does a call to a bystander of its system; a new actor answers."""
    jammer, bystander = spawn(Recorder, "jammer"), spawn(Recorder, "bystander")
    with pytest.raises(ActorDiedError, match=f"process {jammer.pid} is gone"):
        transport.ask(jammer, JamAdmin(), timeout=60)
    with pytest.raises(ActorDiedError, match="lost with its Thespian actor system, restarted because its admin did"):
        transport.ask(bystander, GetPid(), timeout=60)
    successor = spawn(Recorder, "successor")
    assert transport.ask(successor, GetPid(), timeout=60) == successor.pid
    assert wait_until_gone([pid for pid in (jammer.pid, bystander.pid) if pid is not None], timeout=10) == []


@on_transports("thespian")
def test_an_answer_that_waited_while_no_one_listened_restarts_nothing(
    transport: Transport, spawn: Spawn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only time spent listening counts against the admin: its status answer may wait in the driver's queue."""
    monkeypatch.setattr(_thespian, "_PROBE_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(_thespian, "_PROBE_TIMEOUT_SECONDS", 0.2)
    actor = spawn(Recorder, "idle")
    assert isinstance(transport, _thespian.ThespianTransport)
    transport._check_admin(wait=False)  # asks the admin, and does not wait
    time.sleep(0.5)  # the driver does something else for longer than the probe's timeout
    assert transport.ask(actor, GetPid(), timeout=60) == actor.pid, "the actor lives: its system was not restarted"


def debate(make: Make, marker: Path | None) -> tuple[TaskCenter, dict[str, Any]]:
    """Three agents answer for two steps; with `marker`, one of them jams the admin in its first reply."""
    task_center = make(TaskCenter, "task_center")
    quick = Supervision(backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.0)
    agents = {
        role: make(
            JammingAgent if marker is not None and role == "jammer" else RolePlay, role, supervision=quick,
            llm=scripted(f"{role} one two three.", f"{role} again."),
            **({"once_marker": str(marker)} if marker is not None and role == "jammer" else {}),
        )
        for role in ("jammer", "alice", "bob")
    }
    task_center.add_agents(list(agents.values()))
    task_center.send_task_request(TASK)
    for _ in range(2):
        assert set(texts_by_role(task_center.step())) == set(agents)
    return task_center, agents


@thespian
def test_a_run_whose_admin_jams_mid_step_ends_as_a_calm_run(make: Make, log_dir: Path, tmp_path: Path) -> None:
    """Every reply once, every memory whole; the log says why the system restarted and which actors came back."""
    with logged_events(log_dir) as events:
        task_center, agents = debate(make, tmp_path / "jammed")
        history = [(m.sent_from, m.content) for m in task_center.environment.history()]
        memories = {role: agent.get_history() for role, agent in agents.items()}
    calm, calm_agents = debate(lambda cls, name, **options: cls(name=name, **options), None)
    assert (tmp_path / "jammed").exists(), "the jammer jammed"
    assert history == [(m.sent_from, m.content) for m in calm.environment.history()]
    assert memories == {role: agent.get_history() for role, agent in calm_agents.items()}
    [restart] = of_kind(events, "transport.restarted")
    assert restart["reason"] == "its admin did not answer within 5 s" and restart["actors_lost"] >= 4
    restarted = {event["actor"] for event in of_kind(events, "actor.restarted")}
    assert {"jammer", "alice", "bob", "task_center/environment"} <= restarted


@thespian
def test_a_run_whose_admin_is_killed_goes_on(make: Make, log_dir: Path) -> None:
    """SIGKILL of the admin itself mid-step: the step ends with every reply, the next one too."""
    with logged_events(log_dir) as events:
        task_center = make(TaskCenter, "task_center")
        agents = [make(RolePlay, role, llm=scripted(f"{role} one two three.", f"{role} again.", chunk_latency=0.01))
                  for role in ("alice", "bob")]
        task_center.add_agents(agents)
        task_center.send_task_request(TASK)
        admin = psutil.Process(agents[0].ref.pid).parent()
        assert admin is not None and admin.pid != os.getpid()
        frames: list[Frame] = []
        for frame in task_center.step():
            if not frames:
                admin.send_signal(signal.SIGKILL)
            frames.append(frame)
        assert texts_by_role(frames) == {"alice": "alice one two three.", "bob": "bob one two three."}
        assert texts_by_role(task_center.step()) == {"alice": "alice again.", "bob": "bob again."}
        assert [m.content for m in task_center.environment.history()] == [
            TASK, "alice one two three.", "bob one two three.", "alice again.", "bob again."
        ]
    [restart] = of_kind(events, "transport.restarted")
    assert restart["reason"] == f"its admin (process {admin.pid}) is gone"


def test_a_driver_whose_system_was_restarted_exits_with_its_output_piped(tmp_path: Path) -> None:
    """Nothing of the jammed system keeps the driver from exiting, nor outlives it."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.jammed_driver", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    first_line, *died, last = result.stdout.splitlines()
    assert last == "exit"
    assert len(died) == 2 and "died (process" in died[0] and "lost with its Thespian actor system" in died[1]
    assert wait_until_gone([int(pid) for pid in first_line.split()], timeout=10) == []


def admin_that_hangs(marker: Path, times: int) -> Callable[..., None]:
    """Thespian's admin, but the first `times` started never answer: each writes its pid to `marker` and
    sleeps, as an admin forked from a driver whose heap was bad did."""
    real = multiprocCommon.startAdmin

    def start(*args: Any) -> None:
        hung = marker.read_text().split() if marker.exists() else []
        if len(hung) < times:
            marker.write_text(" ".join([*hung, str(os.getpid())]))
            time.sleep(600)
        real(*args)

    return start


@pytest.fixture
def hang_admins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Callable[[], list[int]]]:
    """`hang_admins(times)`: the next `times` admins Thespian starts never answer, and Thespian gives up on one
    after 1 s, not 5; what it returns reads their pids."""
    monkeypatch.setattr(multiprocCommon, "MAX_ADMIN_STARTUP_DELAY", datetime.timedelta(seconds=1))
    marker = tmp_path / "hung"

    def hang(times: int) -> Callable[[], list[int]]:
        monkeypatch.setattr(multiprocCommon, "startAdmin", admin_that_hangs(marker, times))
        return lambda: [int(pid) for pid in marker.read_text().split()]

    return hang


def test_an_admin_that_does_not_answer_is_killed_and_another_started(
    tmp_path: Path, hang_admins: Callable[[int], Callable[[], list[int]]]
) -> None:
    hung = hang_admins(1)
    transport = _thespian.ThespianTransport(output_path=tmp_path / "thespian.out")
    try:
        [admin] = hung()
        assert wait_until_gone([admin], timeout=10) == [], "the admin that did not answer is left running"
        actor = transport.spawn(Recorder, name="after", timeout=60)
        assert transport.ask(actor, GetPid(), timeout=60) == actor.pid
    finally:
        transport.shutdown()


def test_an_admin_that_never_answers_ends_the_start_with_an_error_and_no_process(
    tmp_path: Path, hang_admins: Callable[[int], Callable[[], list[int]]]
) -> None:
    hung = hang_admins(10)
    with pytest.raises(TransportStartError, match=r"Thespian's admin did not start .*2 times; its output is in"):
        _thespian.ThespianTransport(output_path=tmp_path / "thespian.out")
    assert len(hung()) == 2
    assert wait_until_gone(hung(), timeout=10) == []
