"""A swarm submitted with `ray job submit` to a real two-node Ray cluster on this machine.

What a user of a cluster checks: the job joins the cluster (not a private
instance), its agents run on both nodes, every task is answered, and the run
log in the driver's `log_dir` holds both nodes' events; when a node dies
mid-run, the run still completes, its actors restarted elsewhere, and the log
says what the dead node's processes may have lost. The submitted program is a
parameter (`JOBS`): any script that takes `--log-dir`, `--result` and
`--progress` and writes the result file as `tests/cluster_job.py` does.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import psutil
import pytest

from actorsim.runs import read_run
from examples.swarm_crawl import CrawlConfig
from tests.otlp_receiver import OtlpReceiver
from tests.ray_cluster import RayCluster, wait_for
from tests.test_crawl import expected

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed"),
]

TESTS = Path(__file__).parent


@attrs.frozen
class Job:
    """A program to submit: its working dir (uploaded by Ray) and its entrypoint after the python."""

    working_dir: Path
    entrypoint: tuple[str, ...]


JOBS = [
    pytest.param(Job(TESTS, ("cluster_job.py", "--agents", "24", "--tasks", "24", "--rounds", "3")), id="cluster_job"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    # Under /tmp, short: Ray's socket paths must fit in 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="acl-", dir="/tmp"))
    ray_cluster = RayCluster.create(temp_dir)
    started = time.monotonic()
    try:
        ray_cluster.start(workers=1)
        print(f"cluster of 2 nodes up in {time.monotonic() - started:.1f} s")
        yield ray_cluster
    finally:
        ray_cluster.stop()
        left = ray_cluster.pids()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"processes of the test cluster still running: {left}"


@pytest.fixture
def two_nodes(cluster: RayCluster) -> RayCluster:
    """The module's cluster with two live nodes: a node an earlier test killed is replaced."""
    cluster.restore_workers()
    live = [index for index, node in enumerate(cluster.nodes) if node.pids()]
    assert len(live) == 2, f"the test cluster runs {len(live)} nodes"
    return cluster


@attrs.define
class Submitted:
    cluster: RayCluster
    job_id: str
    out: Path

    @property
    def result(self) -> dict:
        return json.loads((self.out / "result.json").read_text())

    def rounds_done(self) -> int:
        progress = self.out / "progress.json"
        try:
            return int(json.loads(progress.read_text())["rounds_done"])
        except (OSError, ValueError):
            return 0

    def status(self) -> str:
        out = self.cluster.ray("job", "status", f"--address={self.cluster.dashboard}", self.job_id, check=False)
        for status in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING", "PENDING"):
            if status in (out.stdout + out.stderr).upper():  # to stderr; "succeeded" when done
                return status
        return "?"

    def wait(self, timeout: float) -> None:
        """Until the job ends; it must have succeeded (its logs are shown otherwise)."""
        finished = wait_for(lambda: self.status() in ("SUCCEEDED", "FAILED", "STOPPED"), timeout, every=1.0)
        status = self.status()
        if status != "SUCCEEDED":
            logs = self.cluster.ray("job", "logs", f"--address={self.cluster.dashboard}", self.job_id, check=False)
            pytest.fail(f"job {self.job_id} {status if finished else 'still running'}:\n{logs.stdout[-6000:]}")


def submit(
    cluster: RayCluster, job: Job, out: Path, outputs: tuple[str, ...] | None = None, env: dict[str, str] | None = None
) -> Submitted:
    """`ray job submit` the job with the venv's python; returns at once. `outputs`: where it writes, as arguments;
    `env`: variables of the job's runtime environment."""
    job_id = f"actorsim-test-{secrets.token_hex(4)}"
    if outputs is None:
        outputs = ("--log-dir", str(out / "logs"), "--result", str(out / "result.json"),
                   "--progress", str(out / "progress.json"))
    cluster.ray(
        "job", "submit", f"--address={cluster.dashboard}", f"--working-dir={job.working_dir}",
        f"--submission-id={job_id}", "--no-wait",
        *(("--runtime-env-json", json.dumps({"env_vars": env})) if env else ()), "--",
        sys.executable, *job.entrypoint, *outputs,
    )
    return Submitted(cluster, job_id, out)


def check_complete(result: dict) -> None:
    """Every task was answered exactly once."""
    assert result["tasks"], "the job sent no task"
    unanswered = [t["content"] for t in result["tasks"] if len(result["answers"][t["id"]]) != 1]
    assert not unanswered, f"tasks not answered exactly once: {unanswered}"


class TestJobOnACluster:
    @pytest.mark.parametrize("job", JOBS)
    def test_agents_run_on_both_nodes_and_the_driver_logs_them_all(
        self, two_nodes: RayCluster, job: Job, tmp_path: Path
    ) -> None:
        """The job joins the cluster, spreads its agents over both nodes, and every node's events reach its log_dir."""
        started = time.monotonic()
        submitted = submit(two_nodes, job, tmp_path)
        submitted.wait(timeout=240)
        result = submitted.result
        print(f"job took {time.monotonic() - started:.1f} s: init (joining) {result['init_s']:.1f} s, "
              f"{len(result['agents'])} agents started in {result['spawn_s']:.1f} s, run {result['run_s']:.1f} s")
        assert result["joined"], "the job started a private Ray instead of joining the cluster"
        check_complete(result)
        run = read_run(tmp_path / "logs" / result["run_id"])
        agent_nodes = {e["node"] for e in run.of_type("actor.started") if e.get("behaviour") == "AgentBehaviour"}
        assert len(agent_nodes) == 2, f"agents ran on {agent_nodes}"
        model_calls = run.of_type("llm.call.finished")
        assert {e["node"] for e in model_calls} == agent_nodes, "a node's model calls are missing from the log"
        driver_node = run.of_type("run.started")[0]["node"]
        assert {e["node"] for e in run.events} == agent_nodes | {driver_node}
        assert not run.of_type("runlog.lost", "runlog.gap")

    def test_a_job_sends_its_spans_live_from_both_nodes_into_one_trace_per_task(
        self, two_nodes: RayCluster, tmp_path: Path
    ) -> None:
        """`OTEL_EXPORTER_OTLP_ENDPOINT` in the job's environment turns live export on: every process on either
        node sends its own spans, and the trace context the messages carry joins them, a trace per task."""
        job = Job(TESTS, ("cluster_job.py", "--agents", "8", "--tasks", "8", "--rounds", "2"))
        with OtlpReceiver() as receiver:
            submitted = submit(two_nodes, job, tmp_path, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
            submitted.wait(timeout=240)
            spans = list(receiver.spans)
        result = submitted.result
        check_complete(result)
        run = read_run(tmp_path / "logs" / result["run_id"])
        tasks = {t["id"] for t in result["tasks"]}
        replies = {m.message_id: m for m in run.messages if m.trace_id in tasks and m.message_id not in tasks}
        assert all(m.traceparent for m in run.messages), "live export on: each message carries its trace context"
        steps = {span["attributes"]["actorsim.message_id"]: span for span in spans
                 if span["name"].startswith("invoke_agent")}
        received = sorted({span["name"] for span in spans})
        assert set(steps) == set(replies), f"a span for every reply, from whichever node made it; got {received}"
        roots = {span["trace_id"]: span for span in spans if span["name"] == "invoke_workflow actorsim"}
        assert set(roots) == tasks == {span["trace_id"] for span in spans}
        for reply_id, span in steps.items():
            assert span["trace_id"] == replies[reply_id].trace_id
            assert span["parent_id"] == roots[span["trace_id"]]["span_id"], "a worker's step: under its task"
        worker_nodes = {e["node"] for e in run.of_type("actor.started")
                        if e.get("behaviour") == "AgentBehaviour" and e["actor"].startswith("worker")}
        assert {span["resource"]["actorsim.ray_node"] for span in steps.values()} == worker_nodes
        assert len(worker_nodes) == 2

    @pytest.mark.parametrize("job", JOBS)
    def test_a_node_dying_mid_run_loses_no_task(self, two_nodes: RayCluster, job: Job, tmp_path: Path) -> None:
        """Killing every process of the second node during a run: the run completes, restarted on the head node."""
        # Slower rounds, more of them: the kill must land while the run goes on. Half the agents: each costs
        # about a second to start on a node of one CPU, and a dozen still spread over both nodes.
        rounds = 8
        job = attrs.evolve(job, entrypoint=(*job.entrypoint, "--agents", "12", "--tasks", "12", "--rounds", str(rounds),
                                            "--reply-latency", "1.0"))
        submitted = submit(two_nodes, job, tmp_path)
        assert wait_for(lambda: submitted.rounds_done() >= 1 or submitted.status() == "FAILED", 240, every=0.1)
        killed_at = time.monotonic()
        two_nodes.kill_node(worker := two_nodes.live_worker())
        assert not two_nodes.node_pids(worker), "the second node still has processes"
        assert submitted.rounds_done() < rounds, "the run ended before the node died"
        submitted.wait(timeout=300)
        print(f"job ended {time.monotonic() - killed_at:.1f} s after the node died")
        result = submitted.result
        check_complete(result)
        run = read_run(tmp_path / "logs" / result["run_id"])
        head = run.of_type("run.started")[0]["node"]
        dead = {node for node in result["agents"].values()} - {head}
        assert dead, "no agent ran on the second node"
        restarted = run.of_type("actor.restarted")
        assert restarted, "no actor was restarted"
        assert {e["actor_node"] for e in restarted} == {head}, "an actor was restarted on the dead node"
        lost = run.of_type("runlog.lost")
        assert {e["lost_node"] for e in lost} == dead, "the log does not record what the dead node's processes lost"
        assert {e["actor"] for e in lost} == {e["actor"] for e in restarted}

    def test_a_job_whose_driver_is_killed_is_resumed_by_actorsim_run(
        self, two_nodes: RayCluster, tmp_path: Path
    ) -> None:
        """`ray job submit -- python -m actorsim run --resume-on-failure 3 cluster_job.py ...`: the job's driver
        SIGKILLed mid-run; `actorsim run` resumes its run on the cluster, and every task is answered once."""
        logs = tmp_path / "logs"
        job = Job(TESTS, ("-m", "actorsim", "--log-dir", str(logs), "run", "--resume-on-failure", "3", "--backoff",
                          "0.5", "cluster_job.py", "--agents", "8", "--tasks", "8", "--rounds", "6",
                          "--reply-latency", "0.5"))
        submitted = submit(two_nodes, job, tmp_path)
        assert wait_for(lambda: submitted.rounds_done() >= 1 or submitted.status() == "FAILED", 240, every=0.1)
        [supervisor] = [process for process in psutil.process_iter(["cmdline"])
                        if {"--resume-on-failure", str(logs)} <= set(process.info["cmdline"] or [])]
        [driver] = supervisor.children()
        driver.kill()
        assert submitted.rounds_done() < 6, "the run ended before its driver died"
        submitted.wait(timeout=300)
        check_complete(submitted.result)
        runs = {run.run_id: run for run in (read_run(folder) for folder in logs.iterdir())}
        assert len(runs) == 2, f"runs: {sorted(runs)}"
        [died] = [run for run in runs.values() if run.resumes is None]
        [resumed] = [run for run in runs.values() if run.resumes == died.run_id]
        assert died.ending == "driver died" and resumed.ending == "stopped"
        assert submitted.result["run_id"] == resumed.run_id
        assert resumed.transport == "ray" and submitted.result["joined"], "the resumed run did not join the cluster"


CRAWL = CrawlConfig(pages=1000, seed=5)


def submit_crawl(cluster: RayCluster, out: Path) -> Submitted:
    """examples/swarm_crawl.py, hosted on 2 hosts spread over the nodes, as `ray job submit` runs it."""
    job = Job(TESTS.parent / "examples", (
        "swarm_crawl.py", "--transport", "ray", "--hosted", "2", "--placement", "spread", "--fetch-timeout", "2",
        "--pages", str(CRAWL.pages), "--seed", str(CRAWL.seed), "--spiders", "4", "--processors", "2",
    ))
    outputs = ("--log-dir", str(out / "logs"), "--out", str(out / "result.json"), "--progress", str(out / "pages.json"))
    return submit(cluster, job, out, outputs=outputs)


def pages_reported(progress: Path) -> int:
    try:
        return int(json.loads(progress.read_text())["pages"])
    except (OSError, ValueError):
        return 0


def test_the_crawl_on_a_cluster_loses_no_page_when_a_node_dies(two_nodes: RayCluster, tmp_path: Path) -> None:
    """`ray job submit` of the crawl, hosted and spread; the second node SIGKILLed mid-crawl (a host and its
    agents with it): the result is still the link graph's, and the driver's log has fetches from both nodes."""
    want = expected(CRAWL)
    submitted = submit_crawl(two_nodes, tmp_path)
    progress = tmp_path / "pages.json"
    assert wait_for(lambda: pages_reported(progress) >= 100 or submitted.status() == "FAILED", 240, every=0.1)
    two_nodes.kill_node(worker := two_nodes.live_worker())
    assert not two_nodes.node_pids(worker), "the second node still has processes"
    assert pages_reported(progress) < len(want["visited"]), "the crawl ended before the node died"
    submitted.wait(timeout=300)
    result = json.loads((tmp_path / "result.json").read_text())
    assert {key: result[key] for key in want} == want
    [folder] = (tmp_path / "logs").iterdir()
    run = read_run(folder)
    fetching_nodes = {e["node"] for e in run.of_type("tool.call.finished")}
    assert len(fetching_nodes) == 2, f"spiders fetched on {fetching_nodes}"
    assert run.of_type("actor.restarted"), "no agent of the dead node was restarted"
