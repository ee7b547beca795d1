"""The chat room in a real headless browser (Debian's chromium, driven by Playwright), on every transport.

The app is examples/chat_room.py's, served in this process beside the actor
system, as a user runs it. Waits are Playwright's own (expect, wait_for_function).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from actorsim import Runtime
from tests.helpers import run_processes, wait_until, wait_until_gone

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", "1")  # a closed tab is noticed within a second or two

gradio = pytest.importorskip("gradio", reason="the ui extra is not installed")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright_sync.expect

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT = os.environ.get("ACTORSIM_UI_SCREENSHOT")  # e.g. docs/chat_room.png, to refresh the README's picture
STREAMED_PART_WAY = """([start, end, longer_than]) => {
    const chat = document.querySelector('#chat');
    const text = chat ? chat.innerText : '';
    return text.includes(start) && !text.includes(end) && text.length > longer_than && text.length;
}"""

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is missing: apt-get install chromium"),
    # Gradio's queue calls pandas the way pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_room_example", ROOT / "examples" / "chat_room.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = load_example()
ADA_FIRST = EXAMPLE.SCRIPTED_REPLIES["ada"][0]
BRUNO_FIRST = EXAMPLE.SCRIPTED_REPLIES["bruno"][0]


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's chromium, one per test, started after the test's actor system.

    A Thespian admin forked from this process after Playwright started would
    hold Playwright's pipe to its driver open, and closing the browser would
    wait for it: tests ask for `chat_app` (and so the runtime) before `browser`.
    """
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def chat_app(runtime: Runtime) -> Iterator[object]:
    """examples/chat_room.py's app on a free port of 127.0.0.1, on this test's transport."""
    from actorsim.ui import ChatApp

    args = argparse.Namespace(model_server="scripted", chunk_latency=0.1, director="watcher", model="", api_base=None)
    app = ChatApp(EXAMPLE.room_factory(args), title=EXAMPLE.TITLE)
    app.url = app.launch(0)  # type: ignore[attr-defined]
    yield app
    app.close()


@pytest.fixture
def dead_server_app(runtime: Runtime) -> Iterator[object]:
    """examples/chat_room.py's app whose agents call a model server at a port nothing listens on."""
    from actorsim.ui import ChatApp, free_port

    api_base = f"http://127.0.0.1:{free_port()}/v1"
    args = argparse.Namespace(model_server="openai", chunk_latency=0.0, director="round-robin", model="m",
                              api_base=api_base)
    app = ChatApp(EXAMPLE.room_factory(args), title=EXAMPLE.TITLE)
    app.url = app.launch(0)  # type: ignore[attr-defined]
    app.api_base = api_base  # type: ignore[attr-defined]
    yield app
    app.close()


YOUR_TURN = "Your turn, visitor: type your answer below and press Enter."
BROKEN_WORDS = """(selector) => {
    // The words of the element's text that the browser broke across two lines.
    const broken = [];
    const walker = document.createTreeWalker(document.querySelector(selector), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const match of node.textContent.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const tops = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
            if (tops.size > 1) broken.push(match[0]);
        }
    }
    return broken;
}"""


def outline(page: object) -> str:
    """How the text box is outlined: "solid" is the highlight of the user's turn."""
    return str(page.evaluate("getComputedStyle(document.querySelector('#say')).outlineStyle"))  # type: ignore[attr-defined]


def say(page: object, text: str) -> None:
    """Type as the human once the room waits for them, and send with Enter."""
    box = page.locator("#say textarea")  # type: ignore[attr-defined]
    expect(box).to_be_editable(timeout=60_000)
    box.fill(text)
    box.press("Enter")


class TestChatRoomInTheBrowser:
    def test_replies_stream_in_labelled_and_answer_the_human(self, chat_app: object, browser: object) -> None:
        """The task opens the chat, ada's reply grows word by word, the user's turn is said, focused and
        highlighted, and the agents answer the user's words."""
        context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(chat_app.url)  # type: ignore[attr-defined]
        chat = page.locator("#chat")
        # Seen part-way twice, growing, before the reply is whole: it streams as it is generated.
        partial = ["ada: Engineering first:", "margins everywhere."]
        seen = page.wait_for_function(STREAMED_PART_WAY, arg=[*partial, 0], timeout=60_000).json_value()
        page.wait_for_function(STREAMED_PART_WAY, arg=[*partial, seen], timeout=60_000)
        expect(chat).to_contain_text(f"ada: {ADA_FIRST}", timeout=60_000)
        expect(chat).to_contain_text(f"bruno: {BRUNO_FIRST}", timeout=60_000)
        text = chat.inner_text()
        assert text.index(f"the task: {EXAMPLE.TASK}") < text.index(ADA_FIRST), "the task is the first bubble"
        labels = chat.locator("b.actorsim-role")
        expect(labels.filter(has_text="ada").first).to_have_attribute("style", "color:#1f77b4")
        expect(page.locator("#roles")).to_contain_text("visitor")
        expect(page.locator("#roles tr", has_text="visitor")).to_contain_text("your turn")

        # The user's turn: said above the box, the box focused and highlighted.
        box = page.locator("#say textarea")
        turn = page.locator("#turn")
        expect(turn).to_have_text(YOUR_TURN, timeout=60_000)
        expect(box).to_be_focused()
        assert outline(page) == "solid"
        say(page, "What about a space elevator?")
        expect(chat).to_contain_text("visitor: What about a space elevator?")
        expect(turn).to_contain_text("is speaking…")
        assert outline(page) == "none", "the box is highlighted only while it waits for the user"
        expect(chat).to_contain_text(
            "ada: Visitor said “What about a space elevator?” As an engineer I say: test that on Earth", timeout=60_000
        )
        expect(chat).to_contain_text(  # the speaker's own words, not a quote of a quote
            "bruno: Ada said “As an engineer I say: test that on Earth before we fly it.” As an economist",
            timeout=60_000,
        )
        expect(box).to_be_editable(timeout=60_000)
        expect(box).to_be_focused()
        text = chat.inner_text()
        assert text.index(BRUNO_FIRST) < text.index("visitor: What about") < text.index("ada: Visitor said")

        # The trace picker lists the messages as the chat does, oldest first, numbered.
        page.locator("#trace-pick input").click()
        options = page.get_by_role("option").all_inner_texts()
        assert [option.split(".")[0] for option in options] == ["1", "2", "3", "4", "5", "6"]
        assert options[0].startswith("1. the task: How should we land")
        page.get_by_role("option").filter(has_text="5. ada: Visitor said").click()
        expect(page.get_by_role("option")).to_have_count(0)
        trace = page.locator("#trace")
        expect(trace.locator("h3")).to_have_text("5. ada → bruno, visitor", timeout=30_000)
        expect(trace.locator("blockquote")).to_have_text(
            "Visitor said “What about a space elevator?” As an engineer I say: test that on Earth before we fly it."
        )
        # Caused by: the tree from the task down to the human's words, each a level deeper.
        causes = trace.locator("p", has_text="caused by").locator("xpath=following-sibling::ul[1]")
        expect(causes.locator(":scope > li").first).to_contain_text(
            f"1. the task → ada, bruno, visitor: {EXAMPLE.TASK}"
        )
        expect(causes.locator(":scope > li > ul > li > ul > li > ul > li")).to_have_text(
            "4. visitor → ada, bruno: What about a space elevator?"
        )
        caused = trace.locator("p", has_text="what it caused").locator("xpath=following-sibling::ul[1]")
        expect(caused.locator(":scope > li")).to_contain_text("6. bruno → ada, visitor: Ada said “As an engineer")
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT)
        context.close()

    def test_at_800_pixels_no_word_is_broken_and_nothing_clears_the_chat(
        self, chat_app: object, browser: object
    ) -> None:
        """In a narrow window the roles table wraps between words only; no button empties the chat."""
        context = browser.new_context(viewport={"width": 800, "height": 700})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(chat_app.url)  # type: ignore[attr-defined]
        expect(page.locator("#say textarea")).to_be_editable(timeout=60_000)
        expect(page.locator("#roles tr", has_text="visitor")).to_contain_text("your turn")
        expect(page.locator("#roles")).to_contain_text("RolePlay")
        assert page.evaluate(BROKEN_WORDS, "#roles") == []
        expect(page.locator("#chat")).to_contain_text(f"bruno: {BRUNO_FIRST}")
        expect(page.get_by_role("button", name="Clear")).to_have_count(0)
        context.close()

    def test_words_typed_as_the_box_opens_survive_a_late_update(
        self, chat_app: object, browser: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The turn's last page update may come after the box opened (here the Registry is slow): it keeps the words.

        Two rooms on one Thespian run showed it: the other room's step held the
        transport, the update came late and emptied the box the test had filled.
        """
        from actorsim.ui import _gradio

        read_registry = _gradio._Session.refresh_agents

        def slow_on_the_humans_turn(session: Any) -> None:
            if session.room.speaking == session.room.human:
                time.sleep(2)  # the Registry answers late, as behind another room's step
            read_registry(session)

        monkeypatch.setattr(_gradio._Session, "refresh_agents", slow_on_the_humans_turn)
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(chat_app.url)  # type: ignore[attr-defined]
        box = page.locator("#say textarea")
        expect(box).to_be_editable(timeout=60_000)
        box.fill("Gamma gliders?")
        page.wait_for_timeout(3000)  # the visitor pauses before Enter, long enough for the late update to land
        expect(box).to_have_value("Gamma gliders?")
        box.press("Enter")
        expect(page.locator("#chat")).to_contain_text("ada: Visitor said “Gamma gliders?”", timeout=60_000)

    def test_two_sessions_at_once_never_see_each_other(self, chat_app: object, browser: object) -> None:
        """Two browser contexts in parallel get a room each; each sees only its own words; a closed tab's room ends."""
        contexts = [browser.new_context() for _ in range(2)]  # type: ignore[attr-defined]
        pages = [context.new_page() for context in contexts]
        for page in pages:
            page.goto(chat_app.url)  # type: ignore[attr-defined]
        words = ["Alpha rockets from the desert?", "Beta balloons over the sea?"]
        for page, text in zip(pages, words, strict=True):
            say(page, text)
        for page, text in zip(pages, words, strict=True):
            expect(page.locator("#chat")).to_contain_text(f"ada: Visitor said “{text}”", timeout=60_000)
        for page, other in zip(pages, reversed(words), strict=True):
            assert other not in page.locator("#chat").inner_text()
        sessions = chat_app.sessions  # type: ignore[attr-defined]
        assert len(sessions) == 2
        rooms = [session.room for session in sessions.values()]
        assert len({room.task_center.name for room in rooms}) == 2
        contexts[0].close()
        # Its room ends once its current step has finished.
        assert wait_until(lambda: sum(room.closed for room in rooms) == 1, timeout=30), "the closed tab's room lives"
        assert len(sessions) == 1
        contexts[1].close()

    def test_a_room_whose_model_server_is_gone_says_why_in_one_line(
        self, dead_server_app: object, browser: object
    ) -> None:
        """The first speaker cannot reach its server: the page says the room stopped and why, names the agent
        and the server, marks the agent failed and keeps the box shut; no bare "Error" badges."""
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(dead_server_app.url)  # type: ignore[attr-defined]
        turn = page.locator("#turn")
        expect(turn).to_contain_text("The room stopped: agent 'room1.ada' failed", timeout=60_000)
        api_base = dead_server_app.api_base  # type: ignore[attr-defined]
        expect(turn).to_contain_text(f"cannot connect to the model server at {api_base}")
        expect(turn).to_contain_text("reload the page for a new room")
        expect(page.locator("#roles tr", has_text="ada")).to_contain_text("failed")
        expect(page.locator("#say textarea")).to_be_disabled()
        expect(page.locator("#chat")).to_contain_text(f"the task: {EXAMPLE.TASK}")
        expect(page.get_by_text("Error", exact=True)).to_have_count(0)


@pytest.mark.parametrize("transport", ["thespian", "ray"])
def test_the_example_serves_then_ctrl_c_stops_everything(transport: str, browser: object, tmp_path: Path) -> None:
    """examples/chat_room.py as a user starts it: the page works; Ctrl-C exits 130 and leaves no process."""
    log_dir = tmp_path / "logs"
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "chat_room.py"), "--transport", transport, "--port", "0",
         "--log-dir", str(log_dir), "--chunk-latency", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert app.stdout is not None
        while "chat room on" not in (line := app.stdout.readline()):
            assert line, "the app ended before serving"
        url = line.split(": ", 1)[1].split()[0]
        context = browser.new_context()  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#say textarea")).to_be_editable(timeout=60_000)
        expect(page.locator("#chat")).to_contain_text(f"bruno: {BRUNO_FIRST}")
        processes = run_processes(app.pid, log_dir)
        assert len(processes) >= 3
        app.send_signal(signal.SIGINT)
        output, _ = app.communicate(timeout=60)
        context.close()
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 130, output
    assert "Traceback" not in output
    assert wait_until_gone(sorted(processes), timeout=15) == []
