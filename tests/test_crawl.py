"""examples/swarm_crawl.py: every reachable page crawled and counted once, with spiders and processors killed or not."""

from __future__ import annotations

import collections
import http.server
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from actorsim import Frame, Runtime
from examples.swarm_crawl import TAG, WORD, CrawlConfig, Site, _Server, crawl, write_result
from tests.conftest import _runtime_for, on_transports
from tests.helpers import alive, logged_events, of_kind, restarts_after_kills, wait_until_gone

ROOT = Path(__file__).resolve().parent.parent
CONFIG = CrawlConfig(pages=300, seed=5, spiders=3, processors=2, fetch_timeout=1.0)


def expected(config: CrawlConfig) -> dict[str, Any]:
    """What a crawl must find, worked out from the site's link graph and pages, not by crawling."""
    site = Site.generate(config.pages, config.seed)
    visited = site.reachable()
    words: collections.Counter[str] = collections.Counter()
    for path, outcome in visited.items():
        if outcome == "ok":
            words.update(WORD.findall(TAG.sub(" ", site.html(path)).lower()))
    return {
        "pages_crawled": sum(outcome == "ok" for outcome in visited.values()),
        "errors": dict(sorted(collections.Counter(o for o in visited.values() if o != "ok").items())),
        "top_words": [list(item) for item in sorted(words.items(), key=lambda item: (-item[1], item[0]))[:20]],
        "visited": dict(sorted(visited.items())),
    }


def written(result: dict[str, Any], path: Path) -> str:
    write_result(path, result)
    return path.read_text()


class Killer:
    """Kills a spider or a processor every `every` pages that spiders report, at most `most` times."""

    def __init__(self, runtime: Runtime, config: CrawlConfig, *, every: int, most: int, seed: int) -> None:
        self.runtime = runtime
        self.names = [*(f"spider_{n}" for n in range(config.spiders)),
                      *(f"processor_{n}" for n in range(config.processors))]
        self.every = every
        self.most = most
        self.random = random.Random(seed)
        self.pages = 0
        self.killed: list[str] = []
        self.sharing: list[int] = []  # for each kill, how many of the agents lived in the killed process

    def __call__(self, frame: Frame) -> None:
        if not frame.role.startswith("spider") or not frame.content:
            return
        self.pages += frame.content.count("\n")
        if self.pages >= self.every * (len(self.killed) + 1) and len(self.killed) < self.most:
            # An actor lost with a restarted Thespian system (see `restarts_after_kills`) keeps its dead process
            # until its next request restarts it: only running ones are picked, or none until a later frame.
            running = {name: pid for name in self.names if alive(pid := self.pid(name))}
            if not running:
                return
            name = self.random.choice(list(running))
            pid = running[name]
            self.sharing.append(sum(self.runtime.supervisor.current(other).pid == pid for other in self.names))
            os.kill(pid, signal.SIGKILL)
            assert not wait_until_gone([pid], timeout=10)
            self.killed.append(name)

    def pid(self, name: str) -> int:
        pid = self.runtime.supervisor.current(name).pid
        assert pid is not None and pid != os.getpid(), f"{name} does not run in a process of its own"
        return pid


@on_transports("local")
def test_a_crawl_finds_every_reachable_page_once(runtime: Runtime, tmp_path: Path) -> None:
    """The result is what the link graph says; the site saw one request for each reachable page and no other."""
    done = crawl(CONFIG)
    want = expected(CONFIG)
    assert {key: done.result[key] for key in want} == want
    assert done.result["summary"]
    assert done.hits == collections.Counter(dict.fromkeys(want["visited"], 1))
    assert done.pages_per_second > 0


@on_transports("local", "thespian", "ray")
def test_connections_the_site_breaks_change_nothing(runtime: Runtime, tmp_path: Path, log_dir: Path) -> None:
    """A site that breaks one response's connection in five (cut off mid-body, reset, or its keep-alive connection
    closed behind it): the result equals a calm run's, and every broken connection a spider met is in its tool's
    events, fetched again rather than taken for the page's outcome."""
    calm = crawl(CONFIG)
    with logged_events(log_dir) as events:
        broken = crawl(attrs.evolve(CONFIG, breaks=0.2))
    assert set(broken.broken) == {"cut", "reset", "close"} and sum(broken.broken.values()) >= 20
    assert written(broken.result, tmp_path / "broken.json") == written(calm.result, tmp_path / "calm.json")
    pages = [page for event in of_kind(events, "tool.call.finished") for page in json.loads(event["result"])]
    met = [kind for page in pages for kind in page.get("broken_connections", ())]
    # Every response cut off or reset reached a spider that was waiting for it; a closed keep-alive connection
    # fails the next request on it unless the client sees it closed first.
    assert len(met) >= broken.broken["cut"] + broken.broken["reset"]
    assert {"ReadError", "RemoteProtocolError"} <= set(met)  # a reset connection; one closed mid-response
    assert not any(kind.endswith("Timeout") for kind in met)
    assert all("html" in page or page["error"] in {"timeout", "http_404", "http_500"} for page in pages)


@on_transports("thespian", "ray")
def test_spiders_and_processors_killed_mid_crawl_change_nothing(
    runtime: Runtime, tmp_path: Path, log_dir: Path
) -> None:
    """With random SIGKILLs the result file equals a fault-free run's; each page is counted once."""
    calm = crawl(CONFIG)
    killer = Killer(runtime, CONFIG, every=40, most=5, seed=3)
    with logged_events(log_dir) as events:
        stormy = crawl(CONFIG, on_frame=killer)
    assert len(killer.killed) >= 3
    assert {name.split("_")[0] for name in killer.killed} >= {"spider"}
    assert written(stormy.result, tmp_path / "stormy.json") == written(calm.result, tmp_path / "calm.json")
    want = expected(CONFIG)
    assert {key: calm.result[key] for key in want} == want
    assert calm.hits == collections.Counter(dict.fromkeys(want["visited"], 1))
    # A spider killed mid-fetch fetches its pages again after its restart: never a page no one asked for.
    assert set(stormy.hits) == set(want["visited"])
    assert 1 <= len(restarts_after_kills(events)) <= len(killer.killed)


@pytest.mark.parametrize("transport", ["thespian", "ray"])
def test_hosts_killed_mid_crawl_change_nothing(transport: str, tmp_path: Path, log_dir: Path) -> None:
    """Hosted agents (2 hosts): a SIGKILLed host takes several agents down; the result still equals a calm run's."""
    runtime = _runtime_for(transport, log_dir, hosts=2)
    try:
        calm = crawl(CONFIG)
        killer = Killer(runtime, CONFIG, every=60, most=2, seed=4)
        with logged_events(log_dir) as events:
            stormy = crawl(CONFIG, on_frame=killer)
    finally:
        runtime.stop_all()
    assert len(killer.killed) == 2 and min(killer.sharing) >= 2, "each kill must take a host of several agents"
    assert written(stormy.result, tmp_path / "stormy.json") == written(calm.result, tmp_path / "calm.json")
    assert set(stormy.hits) == set(expected(CONFIG)["visited"])
    assert len(of_kind(events, "actor.restarted")) >= len(killer.killed)


@pytest.mark.parametrize("transport", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_the_example_runs_as_a_script_from_anywhere(transport: str, tmp_path: Path) -> None:
    """Started as a plain script elsewhere, it writes its result to --out, logs to --log-dir, prints pages/s.

    On Ray a script's own classes and functions travel by value (cloudpickle), as under `ray job submit`.
    """
    out, logs = tmp_path / "out" / "result.json", tmp_path / "logs"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "swarm_crawl.py"), "--transport", transport, "--pages", "120",
         "--seed", "5", "--spiders", "2", "--processors", "1", "--out", str(out), "--log-dir", str(logs)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert finished.returncode == 0, finished.stderr
    assert "pages/s" in finished.stdout
    config = CrawlConfig(pages=120, seed=5)
    result = json.loads(out.read_text())
    want = expected(config)
    assert {key: result[key] for key in want} == want
    assert len(list(logs.glob("*/driver-*.jsonl"))) == 1


def test_the_site_keeps_quiet_about_a_spider_whose_connection_broke(capsys: pytest.CaptureFixture[str]) -> None:
    """A spider's keep-alive connection reset as its process stops (a run ending in an error on Thespian) printed
    a 20-line traceback over the example's one-line error; the site's own errors are still shown."""
    server = _Server(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    try:
        for error in (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe"),
                      ValueError("a page the site cannot render")):
            try:
                raise error
            except Exception:
                server.handle_error(None, ("127.0.0.1", 50_000))
    finally:
        server.server_close()
    shown = capsys.readouterr().err
    assert "ConnectionResetError" not in shown and "BrokenPipeError" not in shown, shown
    assert "ValueError: a page the site cannot render" in shown
