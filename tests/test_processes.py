"""Processes: nothing a run starts outlives it, and a piped driver never hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from actorsim import Runtime
from actorsim._core.options import RunOptions
from actorsim.transport import load_transport
from tests.actors import GetPid, Recorder
from tests.helpers import alive, wait_until_gone

ROOT = Path(__file__).resolve().parent.parent


class TestThespianProcesses:
    def test_shutdown_ends_every_process(self, tmp_path: Path) -> None:
        """After shutdown() the actor processes, the admin and its logger are gone."""
        transport = load_transport("thespian", output_path=tmp_path / "out")
        runtime = Runtime(transport, RunOptions(log_dir=tmp_path), "test")
        try:
            actor_pids = [runtime.ask(runtime.spawn(Recorder, name=f"r{n}"), GetPid()) for n in range(3)]
            admin_pid = psutil.Process(actor_pids[0]).ppid()
            assert admin_pid != os.getpid()
            children = [child.pid for child in psutil.Process(admin_pid).children()]
            assert set(actor_pids) < set(children), "the logger is a child of the admin too"
        finally:
            runtime.shutdown()
        assert wait_until_gone([*actor_pids, admin_pid, *children], timeout=10) == []

    def test_a_killed_driver_takes_its_run_down(self, tmp_path: Path) -> None:
        """SIGKILL of the driver: its actors, admin and logger exit by themselves within seconds."""
        driver = subprocess.Popen(
            [sys.executable, "-m", "tests.orphan_driver", str(tmp_path)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert driver.stdout is not None
            pids = [int(pid) for pid in driver.stdout.readline().split()]
            assert len(pids) >= 5 and all(alive(pid) for pid in pids[1:]), "driver, 2 actors, admin, logger"
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(10)
        assert wait_until_gone(pids[1:], timeout=15) == []


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
def test_the_debate_example_runs_with_piped_output(transport: str, tmp_path: Path) -> None:
    """examples/debate.py ends on its own when its output is a pipe, as under CI."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "debate.py"), "--transport", transport, "--rounds", "4",
         "--chunk-latency", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "<joe_biden>: We go to the Moon with NASA" in result.stdout
    assert "<donald_trump>: Nobody builds rockets like we do" in result.stdout
    assert f"5 messages on the {transport} transport." in result.stdout


def test_two_thespian_runs_at_once_do_not_meet(tmp_path: Path) -> None:
    """Two drivers on one machine each get their own actor system."""
    command = [sys.executable, str(ROOT / "examples" / "debate.py"), "--transport", "thespian", "--rounds", "2"]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert all("3 messages on the thespian transport." in output for output in outputs)


@pytest.mark.parametrize("transport_name", ["thespian"])
def test_thespians_output_goes_where_the_readme_says(runtime: Runtime) -> None:
    """The README names the file Thespian's processes write to; it is there."""
    folder = runtime.log_config.directory  # type: ignore[union-attr]
    assert (folder / f"thespian-{runtime.run_id}.out").is_file()
    assert "`logs/<run_id>/thespian-<run_id>.out`" in (ROOT / "README.md").read_text()
