"""Runs that outlive their driver: a run's end always known, recorded inputs, memories that tell one truth,
and resuming a run whose driver was killed, by hand and by `actorsim run --resume-on-failure`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson
import psutil
import pytest

import actorsim
from actorsim import ReplayDivergence, RolePlay, RoutingError, TaskCenter
from actorsim.runs import read_run
from examples.swarm_crawl import Site, SiteServer
from tests.actors import Splitter
from tests.conftest import Make
from tests.helpers import TASK, scripted, texts_by_role, wait_until
from tests.openai_server import OpenAIServer, tool_reply

ROOT = Path(__file__).resolve().parent.parent


def dead_pid() -> int:
    """The id of a process of this machine that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_run(folder: Path, files: dict[str, list[dict[str, Any]]], truncated: dict[str, bytes] | None = None) -> Path:
    """A run folder of JSON-lines files, each event given the fields every line has; `truncated` ends files with
    half a line."""
    folder.mkdir(parents=True)
    for name, events in files.items():
        lines = b"".join(orjson.dumps({"v": 1, "host": socket.gethostname(), **event}) + b"\n" for event in events)
        (folder / name).write_bytes(lines + (truncated or {}).get(name, b""))
    return folder


class TestARunsEnd:
    def test_a_run_whose_driver_is_gone_reads_driver_died_with_when(self, tmp_path: Path) -> None:
        """No `run.stopped`, and the driver's process has ended: "driver died", last seen at its last event."""
        pid = dead_pid()
        now = time.time()
        driver = [
            {"event": "run.started", "ts": now - 5, "pid": pid, "process": "driver", "heartbeat_s": 5.0},
            {"event": "run.heartbeat", "ts": now - 1, "pid": pid, "process": "driver"},
        ]
        run = read_run(write_run(tmp_path / "run", {f"driver-{pid}.jsonl": driver}))
        assert run.ending == "driver died" and run.driver_last_seen == pytest.approx(now - 1)

    def test_a_run_whose_driver_runs_and_beats_is_going_on(self, tmp_path: Path) -> None:
        """This very process as the driver, with a heartbeat just now: the run has not ended."""
        now = time.time()
        driver = [{"event": "run.started", "ts": now, "pid": os.getpid(), "process": "driver", "heartbeat_s": 5.0}]
        assert read_run(write_run(tmp_path / "run", {f"driver-{os.getpid()}.jsonl": driver})).ending == ""

    def test_elsewhere_a_driver_is_dead_when_its_heartbeats_stop(self, tmp_path: Path) -> None:
        """A driver on another machine: alive while it beats, dead once it missed three heartbeats."""
        now = time.time()

        def run_beating(last: float, name: str) -> str:
            events = [{"event": "run.started", "ts": now - 60, "pid": 1, "process": "driver", "heartbeat_s": 5.0,
                       "host": "another-machine"},
                      {"event": "run.heartbeat", "ts": last, "pid": 1, "process": "driver", "host": "another-machine"}]
            return read_run(write_run(tmp_path / name, {"driver-1.jsonl": events})).ending

        assert run_beating(now - 2, "beating") == ""
        assert run_beating(now - 16, "silent") == "driver died"

    def test_the_truncated_last_line_of_a_dead_process_is_passed_over_and_said(self, tmp_path: Path) -> None:
        """A process killed while it wrote leaves half a line: read without it, with a note naming file and line;
        the same half line from a process that still runs, or corruption before the end, is refused."""
        pid = dead_pid()
        events = [{"event": "actor.started", "ts": time.time(), "pid": pid, "process": "ann"}]
        half = b'{"v": 1, "ev'
        run = read_run(write_run(tmp_path / "dead", {f"ann-{pid}.jsonl": events}, {f"ann-{pid}.jsonl": half}))
        assert len(run.events) == 1
        [note] = run.notes
        assert f"ann-{pid}.jsonl:2: a truncated last line" in note and f"process {pid} is gone" in note
        live = {f"ann-{os.getpid()}.jsonl": events}
        with pytest.raises(actorsim.RunLogError, match="truncated line"):
            read_run(write_run(tmp_path / "live", live, {f"ann-{os.getpid()}.jsonl": half}))
        corrupt = tmp_path / "corrupt"
        write_run(corrupt, {f"ann-{pid}.jsonl": events})
        (corrupt / f"ann-{pid}.jsonl").write_bytes(b"not json\n" + (corrupt / f"ann-{pid}.jsonl").read_bytes() + b"{")
        with pytest.raises(actorsim.RunLogError, match=f"ann-{pid}.jsonl:1: not a JSON event"):
            read_run(corrupt)

    def test_a_driver_beats_while_it_waits(self, tmp_path: Path) -> None:
        """A driver with nothing to say writes `run.heartbeat` every `heartbeat_s`, and nothing after `run.stopped`."""
        from actorsim._core.options import RunOptions
        from actorsim._runtime.driver_log import DriverLog
        from actorsim.transport import load_transport

        log = DriverLog(load_transport("inline"), RunOptions(log_dir=tmp_path), "beating", heartbeat_s=0.05)
        log.started("inline")
        time.sleep(0.3)
        log.close()
        run = read_run(tmp_path / "beating")
        kinds = [event["event"] for event in run.events]
        assert kinds[0] == "run.started" and kinds[-1] == "run.stopped"
        assert 3 <= kinds.count("run.heartbeat") <= 7
        assert run.ending == "stopped"


class TestRecordedInput:
    def test_a_live_run_logs_what_the_program_read_and_a_replay_gives_it_back(self, tmp_path: Path) -> None:
        """Live: `read()` is called, its value logged (a tuple as a list, as JSON has it). In a replay: the recorded
        values come back in order, and `read()` is not called."""
        reads: list[int] = []

        def program(**options: Any) -> TaskCenter:
            center = TaskCenter("inputs", log_dir=tmp_path, **options)
            center.add_agents([RolePlay("ann", llm=scripted("{heard}"))])
            port = actorsim.recorded("port", lambda: reads.append(1) or 4000 + len(reads), runtime=center.runtime)
            pair = actorsim.recorded("pair", lambda: (1, "two"), runtime=center.runtime)
            again = actorsim.recorded("port", lambda: reads.append(1) or 4000 + len(reads), runtime=center.runtime)
            center.send_task_request(f"serve on {port}, {again}, {pair}")
            list(center.step())
            return center

        recorded = program()
        assert reads == [1, 1]
        told = recorded.environment.history()[0].content
        assert told == "serve on 4001, 4002, [1, 'two']"
        folder = recorded.runtime.log_config.directory
        recorded.close()
        events = read_run(folder).of_type("input.recorded")
        assert [(e["input"], e["index"], e["value"]) for e in events] == [
            ("port", 0, 4001), ("pair", 0, [1, "two"]), ("port", 1, 4002)
        ]
        replayed = program(interventions=[actorsim.Replay(folder)])
        assert reads == [1, 1], "a replay reads nothing itself"
        assert replayed.environment.history()[0].content == told
        replayed.close()

    def test_a_value_that_is_not_json_is_refused_by_name(self) -> None:
        center = TaskCenter("not_json", log_dir=None)
        with pytest.raises(TypeError, match="recorded input 'clock' must be JSON"):
            actorsim.recorded("clock", object, runtime=center.runtime)
        center.close()

    def test_a_replay_reading_input_its_recording_lacks_diverges(self, tmp_path: Path) -> None:
        center = TaskCenter("plain", log_dir=tmp_path)
        folder = center.runtime.log_config.directory
        center.close()
        replayed = TaskCenter("plain", log_dir=tmp_path, interventions=[actorsim.Replay(folder)])
        with pytest.raises(ReplayDivergence, match="reads input 'seed' .* that the recording does not have"):
            actorsim.recorded("seed", lambda: 7, runtime=replayed.runtime)
        replayed.close()


class TestDroppedSteps:
    """After a step is dropped, every view of an agent's memory shows it without that step, at once."""

    def test_an_unroutable_reply_leaves_no_trace_in_memory(self, make: Make) -> None:
        center = make(TaskCenter, "unroutable")
        ann = make(RolePlay, "ann", llm=scripted("first", "second"), send_to=lambda message, registry: ["nobody"])
        bob = make(RolePlay, "bob", llm=scripted("fine"))
        center.add_agents([ann, bob])
        center.send_task_request(TASK, send_to="ann")
        before = ann.get_history()
        with pytest.raises(RoutingError):
            list(center.step())
        assert ann.get_history() == before
        assert center.environment.history()[-1].content == TASK

    def test_a_step_left_part_way_leaves_no_trace_in_memory(self, make: Make) -> None:
        """The caller stops after the first frame, while both agents still speak: neither remembers the step."""
        center = make(TaskCenter, "left")
        slow = scripted("one two three four five six", chunk_latency=0.05)
        agents = [make(RolePlay, role, llm=slow) for role in ("ann", "bob")]
        center.add_agents(agents)
        center.send_task_request(TASK)
        before = {agent.role: agent.get_history() for agent in agents}
        steps = center.step()
        next(steps)
        steps.close()
        assert {agent.role: agent.get_history() for agent in agents} == before
        assert sorted(center.environment.pending_roles()) == ["ann", "bob"]
        assert texts_by_role(center.step()) == dict.fromkeys(("ann", "bob"), "one two three four five six")

    def test_posts_that_cannot_be_published_leave_no_trace_in_memory(self, make: Make) -> None:
        """A reply of posts, one of them to a role no one plays: none is stored, and the agent forgets the step."""
        center = make(TaskCenter, "posting")
        splitter = make(Splitter, "splitter", llm=scripted("-"), report_to="nowhere_at_all")
        center.add_agents([splitter, make(RolePlay, "worker", llm=scripted("ok"), group="workers")])
        center.send_task_request("a,b", send_to="splitter")
        before = splitter.get_history()
        with pytest.raises(ValueError, match="nowhere_at_all"):
            list(center.step())
        assert splitter.get_history() == before
        assert [m.content for m in center.environment.history()] == ["a,b"]


# -- a driver killed, and resumed


def debate_reply(body: dict[str, Any]) -> Any:
    """What the model server answers a debater: the same for the same prompt, whatever the order of requests."""
    messages = body["messages"]
    role = re.search(r"You are (\w+)\.", messages[0]["content"])[1]  # type: ignore[index]
    turn = sum(m["role"] == "assistant" and not m.get("tool_calls") for m in messages) + 1
    if role == "bob" and messages[-1]["role"] != "tool":
        return tool_reply((f"ledger-{turn}", "ledger", json.dumps({"entry": f"turn {turn}"})))
    heard = messages[-1]["content"].split("\n")[-1][:40]
    return f"{role} speaks in turn {turn}, after {heard}"


def shape(result: dict[str, Any]) -> dict[str, Any]:
    """A debate's result without its ids (drawn afresh in every run): who said what, when, to whom; and memories."""
    return {"history": [row[1:] for row in result["history"]], "memories": result["memories"]}


def run_chain(log_dir: Path) -> list[Any]:
    """The runs of `log_dir` from the first, each resuming the one before: the whole story of a killed program.

    Every run of the folder is in the one chain."""
    runs = {run.run_id: run for run in (read_run(path) for path in log_dir.iterdir() if path.is_dir())}
    [first] = [run for run in runs.values() if run.resumes is None]
    chain = [first]
    resumed_by = {run.resumes: run for run in runs.values() if run.resumes is not None}
    while chain[-1].run_id in resumed_by:
        chain.append(resumed_by[chain[-1].run_id])
    assert len(chain) == len(runs), "a run resumed twice, or one that resumes none of them"
    return chain


class Killer:
    """SIGKILLs the driver that `actorsim run` (process `supervisor`) runs, each time `progress()` has grown by 2 to
    4 since that driver started, `most` times at most."""

    def __init__(
        self, supervisor: subprocess.Popen[bytes], progress: Callable[[], int], *, most: int, seed: int
    ) -> None:
        self.supervisor = supervisor
        self.progress = progress
        self.most = most
        self.random = random.Random(seed)
        self.kills: list[int] = []

    def ended(self) -> bool:
        return self.supervisor.poll() is not None

    def driver(self) -> psutil.Process | None:
        """The driver now running (one not killed yet), once there is one; None once the supervisor has ended."""
        found: list[psutil.Process] = []

        def started() -> bool:
            found[:] = [child for child in psutil.Process(self.supervisor.pid).children()
                        if child.pid not in self.kills and child.status() != psutil.STATUS_ZOMBIE]
            return bool(found) or self.ended()

        assert wait_until(started, 60), "no driver was started again"
        return found[0] if found else None

    def run(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.kills) < self.most and time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                driver = self.driver()
                if driver is None:
                    return
                due = self.progress() + self.random.randint(2, 4)
                wait_until(lambda due=due, driver=driver: self.progress() >= due or self.ended()
                           or not driver.is_running(), 60)
                if self.ended():
                    return
                driver.kill()
                self.kills.append(driver.pid)


@pytest.mark.slow
@pytest.mark.parametrize(("transport", "kills"), [("thespian", 10), ("ray", 4)])
def test_a_debate_whose_driver_is_killed_again_and_again_ends_as_a_calm_one(
    transport: str, kills: int, tmp_path: Path
) -> None:
    """`actorsim run --resume-on-failure` resumes a debate (a tool agent, a terminal human, a model server) whose
    driver is SIGKILLed at random points `kills` times: its result equals a calm run's; no message id is stored
    twice; the server answered at most the calm run's calls and those in flight at each kill; each tool call's
    side effect happened once. Four times on Ray, where each new driver starts a Ray instance of its own
    (about 14 s a resume on 2 cores): the same path as ten times, in a third of the suite's time."""
    human = tmp_path / "human.txt"
    human.write_text("yes\n" * 100_000)  # every process reads ahead: enough for all

    def debate(server: OpenAIServer, name: str, *prefix: str) -> list[str]:
        return [*prefix, str(ROOT / "tests" / "resume_debate.py"), "--transport", transport, "--api-base",
                server.api_base, "--rounds", "14", "--log-dir", str(tmp_path / name), "--out",
                str(tmp_path / f"{name}.json"), "--ledger", str(tmp_path / f"{name}.ledger")]

    with OpenAIServer(debate_reply, piece_latency=0.02) as calm_server, human.open() as stdin:
        subprocess.run(debate(calm_server, "calm", sys.executable), stdin=stdin, stdout=subprocess.DEVNULL,
                       check=True, timeout=300, cwd=tmp_path)
    with OpenAIServer(debate_reply, piece_latency=0.02) as server, human.open() as stdin, \
            (tmp_path / "killed.out").open("w") as output:
        supervisor = subprocess.Popen(
            debate(server, "killed", sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path / "killed"), "run",
                   "--resume-on-failure", "12", "--backoff", "0.01"),
            stdin=stdin, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
        killer = Killer(supervisor, lambda: len(server.requests), most=kills, seed=5)
        killer.run(timeout=400)
        assert supervisor.wait(timeout=400) == 0, (tmp_path / "killed.out").read_text()[-3000:]
    assert len(killer.kills) == kills
    calm = json.loads((tmp_path / "calm.json").read_text())
    killed = json.loads((tmp_path / "killed.json").read_text())
    assert shape(killed) == shape(calm)
    ids = [row[0] for row in killed["history"]]
    assert len(set(ids)) == len(ids)
    chain = run_chain(tmp_path / "killed")
    assert len(chain) == kills + 1
    assert [run.ending for run in chain] == ["driver died"] * kills + ["stopped"]
    assert [m.message_id for m in chain[-1].messages] == ids  # the last run holds the whole history, once
    # Calls made again: at most those of the steps each killed driver had not seen answered (two for bob's).
    in_flight = sum(
        2 * len({r for e in run.of_type("step.started") for r in e["reply_ids"].values()}
                - {m.message_id for m in run.messages})
        for run in chain[:-1]
    )
    print(f"model calls: calm {len(calm_server.requests)}, killed {kills} times {len(server.requests)}, "
          f"bound {len(calm_server.requests) + in_flight}")
    assert len(calm_server.requests) <= len(server.requests) <= len(calm_server.requests) + in_flight
    keys = [line.split("\t")[0] for line in (tmp_path / "killed.ledger").read_text().splitlines()]
    calm_keys = (tmp_path / "calm.ledger").read_text().splitlines()
    assert len(keys) == len(set(keys)) == len(calm_keys)


def reads_its_terminal(process: psutil.Process) -> bool:
    """Whether `process`'s main thread waits in `read` on standard input: a terminal human is being asked."""
    try:
        syscall = Path(f"/proc/{process.pid}/syscall").read_text().split()
    except OSError:
        return False
    return syscall[:2] == ["0", "0x0"]


def unread_bytes(pipe: IO[bytes]) -> int:
    """How many bytes written to `pipe` no reader has taken yet (Linux answers `FIONREAD` on either end)."""
    return int(struct.unpack("i", fcntl.ioctl(pipe.fileno(), termios.FIONREAD, bytes(4)))[0])


def test_a_driver_killed_while_a_terminal_human_is_asked_is_resumed_and_asks_again(tmp_path: Path) -> None:
    """The driver is SIGKILLed while it waits for a terminal human's second answer: the resumed run takes the
    first answer from the log, asks the terminal for the second again, and ends as a calm run does; every answer
    was typed once."""
    rounds = 4
    with OpenAIServer(debate_reply) as server:
        def debate(name: str, *prefix: str) -> list[str]:
            return [*prefix, str(ROOT / "tests" / "resume_debate.py"), "--transport", "thespian", "--api-base",
                    server.api_base, "--rounds", str(rounds), "--log-dir", str(tmp_path / name), "--out",
                    str(tmp_path / f"{name}.json"), "--ledger", str(tmp_path / f"{name}.ledger")]

        subprocess.run(debate("calm", sys.executable), input=b"yes\n" * rounds, stdout=subprocess.DEVNULL,
                       check=True, timeout=300, cwd=tmp_path)
        with (tmp_path / "killed.out").open("w") as output:
            supervisor = subprocess.Popen(
                debate("killed", sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path / "killed"), "run",
                       "--resume-on-failure", "2", "--backoff", "0.01"),
                stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
            )
            assert supervisor.stdin is not None
            typed, killed = 0, None

            def asked() -> psutil.Process | None:
                """The driver now waiting for the human's answer, if any."""
                with contextlib.suppress(psutil.NoSuchProcess):
                    for driver in psutil.Process(supervisor.pid).children():
                        if driver.pid != killed and reads_its_terminal(driver):
                            return driver
                return None

            while supervisor.poll() is None:  # one answer whenever asked, none ahead (a killed driver's is lost)
                if not wait_until(lambda: supervisor.poll() is not None or asked() is not None, 120):
                    break
                driver = asked()
                if driver is None:
                    continue
                if typed == 1 and killed is None:
                    killed = driver.pid
                    driver.kill()
                    continue
                supervisor.stdin.write(b"yes\n")
                supervisor.stdin.flush()
                typed += 1
                # Read once the pipe is empty: the driver may ask the next round's question before a poll of
                # its `read` would see it stop waiting.
                assert wait_until(lambda: unread_bytes(supervisor.stdin) == 0, 30), (
                    f"answer {typed} was not read:\n" + (tmp_path / "killed.out").read_text()[-3000:])
            supervisor.stdin.close()
        assert supervisor.wait(timeout=60) == 0, (tmp_path / "killed.out").read_text()[-3000:]
    assert killed is not None and typed == rounds
    calm = json.loads((tmp_path / "calm.json").read_text())
    assert shape(json.loads((tmp_path / "killed.json").read_text())) == shape(calm)
    died, resumed = run_chain(tmp_path / "killed")
    assert (died.ending, resumed.ending) == ("driver died", "stopped")
    assert len(died.of_type("human.input")) == 1
    assert [e["text"] for e in resumed.of_type("human.input")] == ["yes"] * rounds


@pytest.mark.slow
def test_a_crawl_whose_driver_is_killed_ten_times_writes_the_calm_result(tmp_path: Path) -> None:
    """The crawl example under `actorsim run --resume-on-failure`, its driver SIGKILLed ten times as pages come in:
    the result file equals a calm crawl's. The site is served apart (`--site-url`), as a real one would be: a
    driver that serves it itself takes it down when it dies, and the fetches in flight then fail for good."""
    site = SiteServer(Site.generate(2000, 5), hang_seconds=5.0)

    def crawl(name: str, *prefix: str) -> list[str]:
        return [*prefix, str(ROOT / "examples" / "swarm_crawl.py"), "--transport", "thespian", "--pages", "2000",
                "--seed", "5", "--spiders", "3", "--fetch-timeout", "0.5", "--out", str(tmp_path / f"{name}.json"),
                "--log-dir", str(tmp_path / name), "--progress", str(tmp_path / f"{name}.pages"), "--site-url", url]

    with site.running() as url:
        subprocess.run(crawl("calm", sys.executable), check=True, timeout=300, cwd=tmp_path, capture_output=True)
        killed_crawl(tmp_path, crawl)


def killed_crawl(tmp_path: Path, crawl: Callable[..., list[str]]) -> None:
    progress = tmp_path / "killed.pages"

    def pages() -> int:
        try:
            return int(json.loads(progress.read_text())["pages"]) // 3  # a kill every 6 to 12 new pages
        except (OSError, ValueError):
            return 0

    with (tmp_path / "killed.out").open("w") as output:
        supervisor = subprocess.Popen(
            crawl("killed", sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path / "killed"), "run",
                  "--resume-on-failure", "12", "--backoff", "0.01"),
            stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
        killer = Killer(supervisor, pages, most=10, seed=7)
        killer.run(timeout=400)
        assert supervisor.wait(timeout=400) == 0, (tmp_path / "killed.out").read_text()[-3000:]
    assert len(killer.kills) == 10
    assert (tmp_path / "killed.json").read_text() == (tmp_path / "calm.json").read_text()
    chain = run_chain(tmp_path / "killed")
    assert len(chain) == 11 and chain[-1].ending == "stopped"
    urls = {e["value"] for run in chain for e in run.of_type("input.recorded") if e["input"] == "site.url"}
    assert len(urls) == 1, "every resumed driver crawled the site its messages name"


def test_make_crawl_then_replay_latest_matches(tmp_path: Path) -> None:
    """The README's crawl, as `make crawl` runs it, replays: its site and port are recorded inputs."""
    subprocess.run(["make", "-C", str(ROOT), "crawl", f"LOGS={tmp_path}"], check=True, timeout=600,
                   capture_output=True)
    replayed = subprocess.run(
        [sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path), "replay", "latest"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    [recorded] = [run for run in (read_run(path) for path in tmp_path.iterdir() if path.is_dir()) if not run.replay_of]
    assert f"replay matched {len(recorded.messages)} messages" in replayed.stdout


class TestCommands:
    def test_a_run_that_stopped_is_not_resumed(self, tmp_path: Path) -> None:
        """`actorsim resume` goes on only with a run that did not end, and says why not otherwise."""
        center = TaskCenter("done", log_dir=tmp_path)
        center.close()
        refused = subprocess.run([sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path), "resume", "latest"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "ended (stopped): there is nothing to resume" in refused.stderr

    def test_actorsim_run_passes_the_exit_code_on_and_resumes_only_a_killed_driver(self, tmp_path: Path) -> None:
        """A program that ends by itself, with any exit code, is not resumed: its code is `actorsim run`'s."""
        program = tmp_path / "program.py"
        program.write_text("import sys\nprint('ran')\nsys.exit(3)\n")
        finished = subprocess.run(
            [sys.executable, "-m", "actorsim", "--log-dir", str(tmp_path), "run", "--resume-on-failure", "2",
             str(program)], capture_output=True, text=True, timeout=60,
        )
        assert finished.returncode == 3 and finished.stdout.count("ran") == 1 and "resum" not in finished.stdout


def test_a_keyed_tool_is_given_its_calls_key_which_the_model_never_sees(log_dir: Path) -> None:
    """A tool that takes `idempotency_key` gets `<reply id>/<call id>`; its schema does not offer the parameter."""
    from actorsim.tools import tool_from_callable

    keys: list[str] = []

    def charge(amount: int, idempotency_key: str) -> str:
        """Charge an amount, once per key."""
        keys.append(idempotency_key)
        return f"charged {amount}"

    tool = tool_from_callable(charge)
    assert tool.keyed and tool.parameters["properties"].keys() == {"amount"}
    assert tool.parameters["required"] == ["amount"]
    center = TaskCenter("keyed", log_dir=log_dir)
    llm = {"model_server": "scripted", "replies": [{"tool_calls": [{"name": "charge", "arguments": {"amount": 5}}]},
                                                    "{heard}"]}
    center.add_agents([RolePlay("payer", llm=llm, function_list=[tool])])
    center.send_task_request(TASK)
    assert texts_by_role(center.step()) == {"payer": "charged 5"}
    run = read_run(center.runtime.log_config.directory)
    [started] = run.of_type("tool.call.started")
    assert keys == [f"{started['reply_id']}/{started['call_id']}"]
    center.close()
