"""A swarm crawls a website: spiders fetch pages, processors count words, an aggregator writes the result.

    python examples/swarm_crawl.py --transport thespian --spiders 8 --processors 2
    python examples/swarm_crawl.py --transport ray --pages 500 --out result.json --log-dir /tmp/logs
    python examples/swarm_crawl.py --model-server openai --api-base URL --model NAME
    python examples/swarm_crawl.py --transport local --pages 300 && actorsim replay latest

The website is generated from `--seed` and served on 127.0.0.1 (`--site-host`) by
this process: pages linking to each other, some slow, some answering 500, links to
pages that are not there (404), and some pages that never answer within the
fetch timeout. Every agent is an ordinary actorsim agent, driven by
`TaskCenter.step`, so the run log, supervision, effectively-once delivery and
replay cover the crawl:

- a spider fetches its pages with a tool (`fetch_pages`, logged and replayable)
  and passes each link on with `Hash("spiders")` by the link's path: the same
  page always reaches the same spider, which skips what its memory says it
  has crawled (supervision gives that memory back after a crash); each page
  goes to a processor, `RoundRobin("processors")`;
- a processor counts a page's words and tells the aggregator;
- the aggregator keeps the totals in its memory and, asked at the end, has its
  model (scripted offline) sum the crawl up; the driver writes the result
  (top words, pages crawled, errors by kind) to `--out`.

One reply sends several messages to different places: a spider's step
returns a list of `Post`s, each with its own `send_to`.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.server
import json
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import httpx
import tenacity
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import actorsim
from actorsim import (
    USER_REQUIREMENT,
    Agent,
    ChatMessage,
    Frame,
    Hash,
    Message,
    Post,
    RoundRobin,
    Supervision,
    TaskCenter,
    create_component,
)

# -- the website

WORDS = (
    "actor message swarm spider page link crawl word count host queue memory restart supervisor replay "
    "moon rocket orbit launch balloon river mountain forest ocean city harbour garden library museum "
    "bread coffee lemon pepper salt honey apple cherry olive tomato violin piano drum guitar trumpet "
    "north south east west winter summer autumn spring morning evening quiet bright green silver"
).split()


@attrs.frozen
class PageSpec:
    """One page of the generated site: its words, its links, and how it answers."""

    words: tuple[str, ...]
    links: tuple[str, ...]
    behaviour: str = "ok"  # "ok", "slow", "error" (500) or "hang" (no answer within the fetch timeout)
    delay: float = 0.0


@attrs.frozen
class Site:
    """A website generated from a seed: `pages` by path; `/page/0` is where a crawl starts."""

    pages: dict[str, PageSpec]

    @classmethod
    def generate(cls, count: int, seed: int) -> Site:
        """`count` pages linking to each other; some slow, failing, hanging, or linking to missing pages."""
        rng = random.Random(seed)
        weights = [1 / (rank + 1) for rank in range(len(WORDS))]  # Zipf: a few words are everywhere
        pages = {}
        for number in range(count):
            links = [f"/page/{rng.randrange(count)}" for _ in range(rng.randint(2, 7))]
            if rng.random() < 0.15:
                links.append(f"/missing/{rng.randrange(count)}")
            roll = rng.random()
            behaviour = "ok" if number == 0 or roll >= 0.16 else (
                "slow" if roll < 0.1 else "error" if roll < 0.14 else "hang"
            )
            pages[f"/page/{number}"] = PageSpec(
                tuple(rng.choices(WORDS, weights, k=rng.randint(20, 80))), tuple(links), behaviour,
                rng.uniform(0.02, 0.1) if behaviour == "slow" else 0.0,
            )
        return cls(pages)

    def outcome(self, path: str) -> str:
        """What fetching `path` gives: "ok", "http_404", "http_500" or "timeout"."""
        page = self.pages.get(path)
        if page is None:
            return "http_404"
        return {"error": "http_500", "hang": "timeout"}.get(page.behaviour, "ok")

    def reachable(self, start: str = "/page/0") -> dict[str, str]:
        """Every path a crawl from `start` meets, with its outcome: what a crawl must find, from the link graph."""
        found = {start: self.outcome(start)}
        frontier = [start]
        while frontier:
            path = frontier.pop()
            if found[path] == "ok":
                for link in self.pages[path].links:
                    if link not in found:
                        found[link] = self.outcome(link)
                        frontier.append(link)
        return found

    def html(self, path: str) -> str:
        page = self.pages[path]
        anchors = " ".join(f'<a href="{link}">{link}</a>' for link in page.links)
        return f"<html><head><title>{path}</title></head><body><p>{' '.join(page.words)}</p>{anchors}</body></html>"


MOST_BREAKS = 2
"""Times at most that the site breaks the connection of one page's responses."""


@attrs.define
class SiteServer:
    """The site served by threads of this process (on 127.0.0.1 unless told); `hits` counts each path's requests.

    `breaks` is the share of responses whose connection the server breaks, as real sites and proxies do now
    and then: half of them are cut off mid-body (the connection closed or reset), the other half are sent
    whole and their keep-alive connection closed behind them, so that the client's next request on it fails.
    No page is broken more than `MOST_BREAKS` times, so a client that tries again reaches every page in the
    end. `broken` counts the breaks by kind; `break_seed` makes the draws repeatable.
    """

    site: Site
    hang_seconds: float
    breaks: float = 0.0
    break_seed: int = 0
    hits: collections.Counter[str] = attrs.Factory(collections.Counter)
    broken: collections.Counter[str] = attrs.Factory(collections.Counter)
    _broken_pages: collections.Counter[str] = attrs.Factory(collections.Counter)
    _stopping: threading.Event = attrs.Factory(threading.Event)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _draws: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._draws = random.Random(self.break_seed)

    def _break(self, path: str) -> str | None:
        """How to break the response for `path`: "cut", "reset", "close", or None (most often) to serve it whole."""
        with self._lock:
            roll = self._draws.random()
            if roll >= self.breaks or self._broken_pages[path] >= MOST_BREAKS:
                return None
            kind = ("cut", "reset", "close", "close")[int(roll / self.breaks * 4)]
            self.broken[kind] += 1
            self._broken_pages[path] += 1
            return kind

    @contextlib.contextmanager
    def running(self, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve on `host`:`port` (0: a free one) until the block ends; its base URL.

        Hanging requests are let go then.
        """
        server = _Server((host, port), self._handler())
        thread = threading.Thread(target=server.serve_forever, name="crawl-site", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            self._stopping.set()
            server.shutdown()
            server.server_close()
            thread.join()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with served._lock:
                    served.hits[self.path] += 1
                page = served.site.pages.get(self.path)
                if page is not None and page.behaviour == "hang":
                    served._stopping.wait(served.hang_seconds)
                    return self._send(503, "gave up", breakable=False)  # its client has stopped waiting
                if page is not None and page.delay:
                    time.sleep(page.delay)
                if page is None:
                    return self._send(404, "not found")
                if page.behaviour == "error":
                    return self._send(500, "server error")
                self._send(200, served.site.html(self.path))

            def _send(self, status: int, body: str, *, breakable: bool = True) -> None:
                data = body.encode()
                fault = served._break(self.path) if breakable else None
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a client that timed out is gone
                    self.wfile.write(data if fault in (None, "close") else data[: len(data) // 2])
                    self.wfile.flush()
                    if fault == "reset":  # closed at once, with a TCP reset rather than an orderly end
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                if fault is not None:
                    self.close_connection = True  # no "Connection: close" said: the client believes it still open

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a swarm's spiders connect all at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A spider whose connection broke (its process stopped as the run ended) is not the site's error: no
        traceback over the run's own one-line error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# -- the tool

_clients: dict[float, httpx.Client] = {}  # no lock here: Ray pickles a script's functions with the globals they use


def _client(timeout: float) -> httpx.Client:
    """One connection pool per process (an agent's, or a host's of many agents)."""
    client = _clients.get(timeout)
    if client is None:  # two threads may both make one: setdefault keeps the first
        client = _clients.setdefault(timeout, httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64)))
    return client


FETCH_RETRIES = 3
"""Tries after the first for a page whose connection broke; the site's answer, or its timeout, is never tried again.

A first try on a pooled connection the site closed, then `MOST_BREAKS` breaks of the page's own: the next try
reaches it."""


def _broken(error: BaseException | None) -> bool:
    """A connection that broke (reset, closed mid-response, a protocol error): not the page's doing, worth another
    try. A timeout is the page's outcome: the site hangs some pages on purpose."""
    return isinstance(error, httpx.TransportError) and not isinstance(error, httpx.TimeoutException)


def _fetch(client: httpx.Client, url: str) -> dict[str, Any]:
    """One page's outcome. A broken connection is tried again (`FETCH_RETRIES` times at most, after a short
    wait), each time on a connection of its own rather than one of the shared pool, which may be stale too;
    the result lists each broken connection met (`broken_connections`), so that the tool's events show it."""
    broken: list[str] = []
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(FETCH_RETRIES + 1),
        wait=tenacity.wait_exponential(multiplier=0.05, max=0.4),
        retry=tenacity.retry_if_exception(_broken),
        reraise=True,
    )
    outcome: dict[str, Any]
    try:
        for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    response = client.get(url)
                else:
                    with httpx.Client(timeout=client.timeout) as fresh:
                        response = fresh.get(url)
            failed = attempt.retry_state.outcome
            if failed is not None and failed.failed and _broken(cause := failed.exception()):
                broken.append(type(cause).__name__)
        outcome = {"url": url, "html": response.text} if response.status_code == 200 else {
            "url": url, "error": f"http_{response.status_code}"}
    except httpx.TimeoutException:
        outcome = {"url": url, "error": "timeout"}
    except httpx.HTTPError as error:
        outcome = {"url": url, "error": type(error).__name__}
    return {**outcome, "broken_connections": broken} if broken else outcome


def fetch_pages(urls: list[str], timeout: float = 1.0) -> list[dict[str, Any]]:
    """Fetch pages at once; each gives its HTML, or the kind of error ("timeout", "http_500", ...).

    Args:
        urls: the pages' URLs
        timeout: seconds to wait for each page
    """
    client = _client(timeout)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda url: _fetch(client, url), urls))


# -- the agents

LINK = re.compile(r'href="([^"]+)"')
TAG = re.compile(r"<[^>]+>")
WORD = re.compile(r"[a-z]+")


def page_path(message: Message) -> str:
    """`Hash`'s key: a link's path, so a page has one owner in every run (the site's port changes)."""
    return urlsplit(message.content).path


class Spider(Agent):
    """Fetches the pages it is sent, once each; passes each link to its owner and each page to a processor."""

    def __init__(self, name: str, *, fetch_timeout: float = 1.0, **options: Any) -> None:
        super().__init__(name, **options)
        self.fetch_timeout = fetch_timeout
        self._crawled: set[str] = set()
        self._known_turns = 0  # memory turns already read into `_crawled`

    def crawled(self) -> set[str]:
        """The paths this spider has crawled: read from its memory, which a restart gives back."""
        if self.memory.turn_count < self._known_turns:  # set back to an earlier memory
            self._crawled, self._known_turns = set(), 0
        for turn in self.memory.turns_since(self._known_turns):
            if turn.role == "user":
                self._crawled.update(turn.content.split())
        self._known_turns = self.memory.turn_count
        return self._crawled

    def step(
        self, received: Sequence[Message], *, reply_id: str | None = None, **_: Any
    ) -> Generator[Any, Any, list[Post]]:
        fresh = [m for m in received if not self.memory.has_handled(m.message_id)]
        crawled = self.crawled()
        asked: dict[str, str] = {}  # each new URL -> the message that asked for it first
        for message in fresh:
            if page_path(message) not in crawled:
                asked.setdefault(message.content, message.message_id)
        pages: list[dict[str, Any]] = []
        if asked:
            outcome = yield from self.use_tool("fetch_pages", {"urls": list(asked), "timeout": self.fetch_timeout},
                                               reply_id=reply_id)
            pages = json.loads(outcome.content) if outcome.error is None else [
                {"url": url, "error": "fetch_failed"} for url in asked
            ]
        done = crawled | {urlsplit(url).path for url in asked}
        posts, errors, linked = [], {}, set()
        for page in pages:
            path, cause = urlsplit(page["url"]).path, [asked[page["url"]]]
            yield f"{page.get('error', 'ok')} {path}\n"  # one line a page: the driver's progress bar counts them
            if "error" in page:
                errors[path] = page["error"]
                continue
            posts.append(Post(json.dumps({"path": path, "html": page["html"]}), send_to=RoundRobin("processors"),
                              parent_ids=cause))
            for link in (urljoin(page["url"], href) for href in LINK.findall(page["html"])):
                if urlsplit(link).path not in done and link not in linked:  # its owner skips the others
                    linked.add(link)
                    posts.append(Post(link, send_to=Hash("spiders", key=page_path), parent_ids=cause))
        if errors:
            posts.append(Post(json.dumps({"errors": errors}), send_to="aggregator"))
        self.memory.update_history(
            [ChatMessage("user", " ".join(urlsplit(url).path for url in asked)),
             ChatMessage("assistant", f"crawled {len(asked)} pages, {len(errors)} errors")],
            handled=[m.message_id for m in fresh],
        )
        return posts


class Processor(Agent):
    """Counts the words of the pages it is sent; its reply (to its own `send_to`, the aggregator) holds the counts."""

    def step(self, received: Sequence[Message], **_: Any) -> Generator[Any, Any, str | list[Post]]:
        yield from ()  # a step is a generator, even one that streams nothing
        fresh = [m for m in received if not self.memory.has_handled(m.message_id)]
        counts: collections.Counter[str] = collections.Counter()
        paths = []
        for message in fresh:
            page = json.loads(message.content)
            paths.append(page["path"])
            counts.update(WORD.findall(TAG.sub(" ", page["html"]).lower()))
        self.memory.update_history([ChatMessage("assistant", f"counted {len(paths)} pages")],
                                   handled=[m.message_id for m in fresh])
        if not paths:
            return []
        return json.dumps({"pages": paths, "words": counts})


COUNTS = "counts "  # how the aggregator marks the reports it keeps in its memory


class Aggregator(Agent):
    """Keeps every report in its memory; asked for the result, has its model sum it up and replies with the JSON."""

    def totals(self) -> dict[str, Any]:
        """Pages crawled, errors by kind and word counts, from the reports in memory (a restart gives them back)."""
        pages: set[str] = set()
        errors: dict[str, str] = {}
        words: collections.Counter[str] = collections.Counter()
        for turn in self.memory.get_history():
            if turn.role != "user" or not turn.content.startswith(COUNTS):
                continue
            report = json.loads(turn.content[len(COUNTS):])
            pages.update(report.get("pages", ()))
            errors.update(report.get("errors", {}))
            words.update(report.get("words", {}))
        return {
            "pages_crawled": len(pages),
            "errors": dict(sorted(collections.Counter(errors.values()).items())),
            "top_words": sorted(words.items(), key=lambda item: (-item[1], item[0]))[:20],
            "visited": dict(sorted({**errors, **dict.fromkeys(pages, "ok")}.items())),
        }

    def user_turn(self, received: Sequence[Message], task: str | None) -> str:
        totals = self.totals()
        top = ", ".join(f"{word} ({count})" for word, count in totals["top_words"][:10])
        return (f"A crawl fetched {totals['pages_crawled']} pages; errors: {totals['errors']}. "
                f"The most common words: {top}. Sum the crawl up in one sentence.")

    def step(self, received: Sequence[Message], **options: Any) -> Generator[Any, Any, str | list[Post]]:
        fresh = [m for m in received if not self.memory.has_handled(m.message_id)]
        reports = [m for m in fresh if m.sent_from != USER_REQUIREMENT]
        self.memory.update_history([ChatMessage("user", COUNTS + m.content) for m in reports],
                                   handled=[m.message_id for m in reports])
        asked = [m for m in fresh if m.sent_from == USER_REQUIREMENT]
        if not asked:
            return []  # the reports are answered; nothing to send
        summary = yield from super().step(asked, **options)  # the model's turn (use_history=False: a short prompt)
        return json.dumps({**self.totals(), "summary": summary})


# -- the crawl

@attrs.frozen
class CrawlConfig:
    """What a crawl needs besides its run: the site, the swarm's size, the aggregator's model."""

    pages: int = 2000
    seed: int = 13
    spiders: int = 8
    processors: int = 2
    fetch_timeout: float = 1.0
    port: int = 0  # the site's (0: a free one); recorded in the run log, as a replay and a resume need it
    site_host: str = "127.0.0.1"  # on a cluster of several machines: the driver's address, which the nodes reach
    breaks: float = 0.0  # the share of responses whose connection the site breaks (see `SiteServer`)
    site_url: str | None = None  # a site served elsewhere, from the same pages and seed: crawled, not served here
    llm: dict[str, Any] = attrs.field(factory=lambda: {"model_server": "scripted", "replies": [SUMMARY]})


SUMMARY = "The swarm crawled the site once, page by page, and counted every word."
UNUSED = {"model_server": "scripted", "replies": ["(spiders and processors do not call a model)"]}
SUPERVISION = Supervision(max_restarts=50, within=60.0, backoff_initial=0.01, backoff_max=0.5)


@attrs.frozen
class CrawlResult:
    """The aggregator's result, how long starting the agents and crawling took, the site's requests by path,
    and the connections it broke, by kind."""

    result: dict[str, Any]
    start_seconds: float
    seconds: float
    hits: collections.Counter[str]
    broken: collections.Counter[str] = attrs.Factory(collections.Counter)

    @property
    def pages_per_second(self) -> float:
        """Pages visited (crawled or failed) per second of crawling, the agents' start left out."""
        return len(self.result["visited"]) / self.seconds


def crawl(config: CrawlConfig, *, on_frame: Callable[[Frame], None] = lambda frame: None,
          progress: Progress | None = None) -> CrawlResult:
    """Serve the site (or take `config.site_url`'s) and crawl it on the current run (`actorsim.init`); `on_frame`
    sees every frame.

    The site, its port and its address are the crawl's input: recorded in the run log (`actorsim.recorded`),
    so that `actorsim replay` and `actorsim resume` serve the same site on the same port, which its messages name.
    """
    shape = actorsim.recorded("site", lambda: {"pages": config.pages, "seed": config.seed})
    site = Site.generate(shape["pages"], shape["seed"])
    server = SiteServer(site, hang_seconds=config.fetch_timeout * 10, breaks=config.breaks, break_seed=shape["seed"])
    with contextlib.ExitStack() as serving:
        if config.site_url is not None:
            base = actorsim.recorded("site.url", lambda: config.site_url)
        else:
            port = actorsim.recorded("site.port", lambda: config.port or free_port(config.site_host))
            base = serving.enter_context(server.running(port, config.site_host))
        starting = time.perf_counter()
        task_center = create_component(TaskCenter, name="crawl", remote=True)
        aggregator = create_component(Aggregator, name="aggregator", remote=True, llm=config.llm, use_history=False,
                                      send_to=[], supervision=SUPERVISION)
        processors = [
            create_component(Processor, name=f"processor_{n}", remote=True, llm=UNUSED, group="processors",
                             send_to="aggregator", supervision=SUPERVISION)
            for n in range(config.processors)
        ]
        spiders = [
            create_component(Spider, name=f"spider_{n}", remote=True, llm=UNUSED, group="spiders",
                             function_list=[fetch_pages], fetch_timeout=config.fetch_timeout, supervision=SUPERVISION)
            for n in range(config.spiders)
        ]
        task_center.add_agents([aggregator, *processors, *spiders])
        started = time.perf_counter()
        task_center.send_task_request(f"{base}/page/0", send_to=Hash("spiders", key=page_path))
        task = progress.add_task("crawling", total=None) if progress is not None else None
        while task_center.environment.pending_roles():
            for frame in task_center.step():
                on_frame(frame)
                if progress is not None and task is not None:
                    # The model calls too, when the crawl has a model server: in flight, waiting, tokens, cost.
                    traffic = task_center.runtime.model_traffic()
                    shown = f"crawling ({traffic})" if traffic.tokens or traffic.in_flight else "crawling"
                    progress.update(task, description=shown,
                                    advance=frame.content.count("\n") if frame.role.startswith("spider") else 0)
        crawled = time.perf_counter() - started
        task_center.send_task_request("Sum the crawl up.", send_to="aggregator")
        for frame in task_center.step():
            on_frame(frame)
        answer = task_center.environment.history(role="aggregator")[-1]
        task_center.close()
    return CrawlResult(json.loads(answer.content), started - starting, crawled, server.hits, server.broken)


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def progress_file(path: Path | None) -> Callable[[Frame], None]:
    """What `--progress` asks for: `{"pages": n}` rewritten as spiders report pages (for whoever watches a job)."""
    pages = 0

    def seen(frame: Frame) -> None:
        nonlocal pages
        if path is not None and frame.role.startswith("spider") and (count := frame.content.count("\n")):
            pages += count
            path.write_text(json.dumps({"pages": pages}))

    return seen


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    if args.model_server == "scripted":
        return {"model_server": "scripted", "replies": [SUMMARY]}
    config: dict[str, Any] = {"model_server": args.model_server, "model": args.model}
    if args.api_base:
        config["api_base"] = args.api_base
    return config


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=actorsim.TRANSPORTS, default="thespian")
    parser.add_argument("--spiders", type=int, default=8)
    parser.add_argument("--processors", type=int, default=2)
    parser.add_argument("--pages", type=int, default=2000, help="pages of the generated site")
    parser.add_argument("--seed", type=int, default=13, help="the site's seed")
    parser.add_argument("--fetch-timeout", type=float, default=1.0, help="seconds a spider waits for a page")
    parser.add_argument("--port", type=int, default=0, help="the site's port (default: a free one)")
    parser.add_argument("--site-host", default="127.0.0.1",
                        help="the address the site listens on; on a cluster of several machines, the driver's")
    parser.add_argument("--breaks", type=float, default=0.0,
                        help="the share of responses whose connection the site breaks (spiders fetch them again)")
    parser.add_argument("--site-url", help="crawl the site served there (from the same --pages and --seed) "
                        "instead of serving one")
    parser.add_argument("--hosted", type=int, metavar="N", help="host the agents in N processes (hosted agents)")
    parser.add_argument("--placement", help='on a Ray cluster, where actors go: "spread", "pack", "node:<id>", ...')
    parser.add_argument("--model-server", choices=["scripted", "openai", "dashscope"], default="scripted",
                        help="the aggregator's model (the others use none)")
    parser.add_argument("--model", default="qwen-max")
    parser.add_argument("--api-base")
    parser.add_argument("--out", type=Path, default=Path("crawl_result.json"), help="where the result goes (JSON)")
    parser.add_argument("--log-dir", default="logs", help="where the run log goes")
    parser.add_argument("--progress", type=Path, help="a file saying how many pages spiders have reported so far")
    return parser.parse_args(argv)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """The result as a JSON file (its folder made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the crawl as the command line says; the exit code."""
    args = parse(argv)
    options: dict[str, Any] = {"transport": args.transport, "log_dir": args.log_dir}
    if args.hosted:
        options["hosts"] = args.hosted
    if args.placement:
        options["placement"] = args.placement
    config = CrawlConfig(args.pages, args.seed, args.spiders, args.processors, args.fetch_timeout, args.port,
                         args.site_host, args.breaks, args.site_url, model_config(args))
    try:
        with actorsim.init(**options), Progress(
            SpinnerColumn(), TextColumn("{task.description}: {task.completed} pages"), TimeElapsedColumn(),
        ) as progress:
            done = crawl(config, progress=progress, on_frame=progress_file(args.progress))
    except actorsim.ActorsimError as error:  # one line a person can act on, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_result(args.out, done.result)
    result = done.result
    print(f"{result['pages_crawled']} pages crawled, errors {result['errors']}: {len(result['visited'])} pages "
          f"in {done.seconds:.1f} s, {done.pages_per_second:.0f} pages/s ({config.spiders} spiders, "
          f"{config.processors} processors, {args.transport}; agents started in {done.start_seconds:.1f} s); "
          f"result in {args.out}")
    print(f"summary: {result['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
