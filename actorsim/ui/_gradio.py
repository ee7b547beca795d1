"""Chatbot mode: a Gradio app in which a room's replies stream in and a human takes part.

Every browser session gets its own room from the factory (two tabs never see
each other's messages); the room is closed when its tab goes away or the app
closes. A room's steps run on a thread of their own, so each step's stream is
read by the thread that began it whichever Gradio worker asks for the next
update (Thespian's driver endpoint is held for a whole stream).
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when Gradio is imported
try:
    import gradio as gr
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("the chat room app needs Gradio: pip install 'actorsim[ui]'") from error

from actorsim._core.envelope import Frame, Message, ToolFrame
from actorsim._errors import ActorsimError
from actorsim._protocol.registry import AgentInfo
from actorsim.runs import TraceNode
from actorsim.task_center import TaskCenter
from actorsim.ui._room import ChatRoom, Director, HumanTurn, RoomEvent, Speaking, Trace, describe, round_robin

COLOURS = ("#1f77b4", "#9467bd", "#2ca02c", "#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
TASK_LABEL = "the task"
notices = logging.getLogger("actorsim")

# Installed in the page when it loads (Gradio 6 takes css and js at launch, which `build_app` users
# would lose): the human's box is highlighted while it waits for them and takes the focus when it opens;
# the roles table breaks lines between words only; the chat's "clear" button goes (it cleared only the view, and the
# conversation came back on the next update).
PAGE_SCRIPT = """() => {
    const style = document.createElement('style');
    style.textContent = `
        #say:has(textarea:not(:disabled)) { outline: 3px solid #f5a623; outline-offset: -3px; }
        #trace ul ul, #trace ul li { font-size: inherit !important; }
        #turn.your-turn { color: #b26a00; }
        #roles th, #roles td { padding: 4px 8px; word-break: keep-all; overflow-wrap: normal; hyphens: none; }
        #chat button[aria-label="Clear"] { display: none; }
    `;
    document.head.appendChild(style);
    let wasOpen = false;
    const focusWhenOpen = () => {
        const box = document.querySelector('#say textarea');
        const open = !!box && !box.disabled;
        if (open && !wasOpen) box.focus();
        wasOpen = open;
    };
    new MutationObserver(focusWhenOpen).observe(document.body, {
        subtree: true, childList: true, attributes: true, attributeFilter: ['disabled'],
    });
}"""


_END = object()
TICK_S = 1.0
"""How often the page is drawn again while no frame comes (a step waiting for its model servers)."""


class _Tick:
    """No event for `TICK_S`: the page is drawn again, with what the model calls are doing now."""


def _on_own_thread(events: Iterable[RoomEvent], name: str) -> Iterator[RoomEvent | _Tick]:
    """Run `events` on one thread, handing them over as they come, and a `_Tick` each `TICK_S` without one.

    Closing this generator lets the current step finish on its thread (its
    actors are owed their replies), stops before the next one, and returns
    once the thread is done, so a room is never closed under a running step.
    """
    handover: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(events)
        try:
            for event in iterator:
                handover.put(event)
                if stop.is_set() and not isinstance(event, Frame):
                    break
        except BaseException as error:  # handed to the consumer, raised there
            handover.put(error)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            handover.put(_END)

    thread = threading.Thread(target=produce, name=f"actorsim-ui:{name}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = handover.get(timeout=TICK_S)
            except queue.Empty:
                yield _Tick()
                continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _Session:
    """One browser session: its room and what its chat pane shows."""

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.turns = threading.Condition()  # guards busy and ending; never held across a yield
        self.busy = False  # an update stream runs: one at a time per session
        self.ending = False  # the tab is gone: the room closes when its stream ends
        self.chat: list[dict[str, Any]] = []
        self.rows: dict[str, int] = {}  # message id -> row of the chat pane
        self.texts: dict[str, tuple[str, str]] = {}  # message id -> (role, text so far), for the trace picker
        self.colours: dict[str, str] = {}
        self.stopped: str | None = None  # why the room cannot go on: its run's error, as one line
        for role in room.roles:
            self.label(role)
        self.agents = room.agents()

    def refresh_agents(self) -> None:
        """Read the Registry again; done between streams, never per frame (a step may hold the transport)."""
        self.agents = self.room.agents()

    def label(self, role: str) -> str:
        """The role's name in its own colour, as chat lines and the role list show it."""
        colour = self.colours.setdefault(role, COLOURS[len(self.colours) % len(COLOURS)])
        return f'<b class="actorsim-role" style="color:{colour}">{html.escape(role)}</b>'

    def add_frame(self, frame: Frame) -> None:
        row = self.rows.get(frame.message_id)
        if row is None:
            self.rows[frame.message_id] = len(self.chat)
            self.chat.append({"role": "assistant", "content": f"{self.label(frame.role)}: "})
            row = len(self.chat) - 1
        if isinstance(frame, ToolFrame):  # compact, in the reply's own bubble; not part of its text
            shown = html.escape(str(frame).split(" ", 1)[1])
            self.chat[row]["content"] += f'<br><small class="actorsim-tool">{shown}</small><br>'
            return
        self.chat[row]["content"] += frame.content
        role, text = self.texts.get(frame.message_id, (frame.role, ""))
        self.texts[frame.message_id] = (role, text + frame.content)

    def add_requirements(self, messages: Iterable[Message]) -> None:
        """The task (and any later user requirement) as a bubble of its own, where it came."""
        for message in messages:
            if message.message_id not in self.rows:
                self.rows[message.message_id] = len(self.chat)
                label = f'<b class="actorsim-role actorsim-task">{TASK_LABEL}</b>'
                self.chat.append({"role": "user", "content": f"{label}: {html.escape(message.content)}"})
                self.texts[message.message_id] = (TASK_LABEL, message.content)

    def add_human(self, message: Message) -> None:
        self.rows[message.message_id] = len(self.chat)
        self.chat.append({"role": "user", "content": f"{self.label(message.sent_from)}: "
                          f"{message.content}"})
        self.texts[message.message_id] = (message.sent_from, message.content)

    def trace_choices(self) -> list[tuple[str, str]]:
        """(label, message id) of every message shown, oldest first and numbered, as the chat shows them."""
        choices = []
        for number, (message_id, (role, text)) in enumerate(self.texts.items(), start=1):
            snippet = text if len(text) <= 48 else text[:47] + "…"
            choices.append((f"{number}. {role}: {snippet}", message_id))
        return choices

    def number(self, message_id: str) -> int | None:
        """The message's number in the chat (and the trace picker), from 1."""
        for number, shown in enumerate(list(self.texts), start=1):
            if shown == message_id:
                return number
        return None

    def turn_line(self, waiting: bool) -> str:
        """Whose turn it is, said above the text box."""
        if self.stopped is not None:
            return f"**The room stopped**: {html.escape(self.stopped)} <small>(reload the page for a new room)</small>"
        human = self.room.human
        if waiting and human is not None:
            return f"**Your turn, {html.escape(human)}**: type your answer below and press Enter."
        line = "Waiting for the next speaker…"
        if self.room.speaking is not None:
            line = f"{self.label(self.room.speaking)} is speaking…"
        traffic = self.room.task_center.runtime.model_traffic()
        if traffic.in_flight or traffic.waiting or traffic.tokens:  # a model server's, not scripted replies
            line += f" <small>({traffic})</small>"
        return line

    def roles_table(self) -> str:
        """The registry's agents: kind, group and topics, what they are about, status, what each does now."""
        lines = ["| role | kind | group | about | status | now |", "|---|---|---|---|---|---|"]
        for info in self.agents:
            kind = "human" if info.is_human else "watcher" if info.is_watcher else type_name(info.agent_class)
            now = ""
            if info.role == self.room.speaking:
                now = "your turn" if info.role == self.room.human else "speaking"
            about = html.escape(info.description).replace("|", "\\|")
            if info.tools:
                about += f" (tools: {', '.join(info.tools)})"
            cells = [self.label(info.role), kind, routing_names(info), about, info.status, now]
            lines.append(f"| {' | '.join(cells)} |")
        return "\n".join(lines)


def routing_names(info: AgentInfo) -> str:
    """An agent's group and its topics (`#topic`), as the roles table shows them."""
    return " ".join([*([info.group] if info.group else []), *(f"#{topic}" for topic in info.topics)])


def type_name(agent_class: str) -> str:
    return agent_class.rsplit(".", 1)[-1]


def trace_markdown(trace: Trace, number: Callable[[str], int | None]) -> str:
    """A traced message: its heading and text, then what caused it and what it caused, as trees.

    Both trees run oldest first, down the page, as the chat does; `number`
    gives a message's number in the chat.
    """
    message = trace.message
    shown = number(message.message_id)
    lines = [f"### {f'{shown}. ' if shown else ''}{html.escape(describe(message))}", "", _quote(message.content), ""]
    lines += ["**caused by**", ""]
    lines += _tree_lines(trace.causes, number) or ["nothing: it opens the conversation"]
    lines += ["", "**what it caused**", ""]
    lines += _tree_lines(trace.effects, number) or ["nothing yet"]
    lines += ["", f"<small>message id `{message.message_id}`</small>"]
    return "\n".join(lines)


def _tree_lines(nodes: Iterable[TraceNode], number: Callable[[str], int | None], depth: int = 0) -> list[str]:
    lines = []
    for node in nodes:
        shown = number(node.message.message_id)
        head = f"{shown}\\. " if shown else ""  # not an ordered list
        text = " ".join(node.message.content.split())
        lines.append(f"{'  ' * depth}- {head}{html.escape(describe(node.message))}: {html.escape(text)}")
        lines += _tree_lines(node.children, number, depth + 1)
    return lines


def _quote(text: str) -> str:
    return "\n".join(f"> {html.escape(line)}" for line in text.splitlines() or [""])


class ChatApp:
    """The Gradio app of a chat room: one room per browser session.

    `make_room` gives a new room (or a task center, made a room with
    `director`) for each session; `task` opens each room.
    """

    def __init__(
        self,
        make_room: Callable[[], ChatRoom | TaskCenter],
        *,
        task: str | None = None,
        director: Director = round_robin,
        title: str = "actorsim chat room",
    ) -> None:
        self.make_room = make_room
        self.task = task
        self.director = director
        self.title = title
        self.sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self.blocks = self._build()

    # -- sessions

    def _new_session(self, session_hash: str) -> _Session:
        made = self.make_room()
        room = made if isinstance(made, ChatRoom) else ChatRoom(made, director=self.director)
        if self.task is not None:
            room.open(self.task)
        session = _Session(room)
        with self._sessions_lock:
            self.sessions[session_hash] = session
        return session

    def end_session(self, session_hash: str) -> None:
        """Close one session's room (its tab was closed), at once or when its running stream ends."""
        with self._sessions_lock:
            session = self.sessions.pop(session_hash, None)
        if session is None:
            return
        with session.turns:
            session.ending = True
            session.turns.notify_all()
            if session.busy:
                return
        session.room.close()

    def close(self) -> None:
        """Close every room and the server."""
        for session_hash in list(self.sessions):
            self.end_session(session_hash)
        self.blocks.close()

    # -- the page

    def _build(self) -> gr.Blocks:
        blocks: gr.Blocks
        with gr.Blocks(title=self.title) as blocks:
            gr.Markdown(f"## {self.title}")
            with gr.Row():
                with gr.Column(scale=3):
                    chat = gr.Chatbot(
                        label="chat", elem_id="chat", height=480, group_consecutive_messages=False,
                        feedback_options=None, buttons=[],
                    )
                    turn = gr.Markdown("Waiting for the next speaker…", elem_id="turn")
                    say = gr.Textbox(
                        label="you", elem_id="say", placeholder="wait for your turn...", interactive=False,
                        submit_btn="Send",
                    )
                with gr.Column(scale=2):
                    roles = gr.Markdown(elem_id="roles")
                    pick = gr.Dropdown(label="trace a message", elem_id="trace-pick", choices=[], interactive=True)
                    trace = gr.Markdown(elem_id="trace")
            outputs = [chat, turn, say, roles, pick]
            blocks.load(None, js=PAGE_SCRIPT)
            blocks.load(self._start, inputs=None, outputs=outputs, concurrency_limit=None)
            say.submit(self._speak, inputs=[say], outputs=outputs, concurrency_limit=None)
            pick.change(self._trace, inputs=[pick], outputs=[trace], concurrency_limit=None)
            blocks.unload(self._unload)
        return blocks

    def _updates(self, session: _Session, *, waiting: bool, clear: bool = False) -> tuple[Any, ...]:
        """The page now; `clear` empties the text box, once, when the human's words were taken.

        Any other update leaves the box's text alone: one that arrived after
        the box opened would wipe what the human had begun to type.
        """
        human = session.room.human
        box: dict[str, Any] = {
            "interactive": waiting,
            "placeholder": f"speak as {human}, then Enter" if waiting else "wait for your turn...",
            "label": human or "you",
        }
        say = gr.update(value="", **box) if clear else gr.update(**box)
        return (
            [dict(message) for message in session.chat],
            gr.update(value=session.turn_line(waiting), elem_classes=["your-turn"] if waiting else []),
            say,
            session.roles_table(),
            gr.update(choices=session.trace_choices()),
        )

    def _stream(self, session: _Session, *, clear: bool = False) -> Iterator[tuple[Any, ...]]:
        """Run the room until the human's turn, yielding the page after every frame; `clear`: see `_updates`."""
        session.refresh_agents()
        session.add_requirements(session.room.requirements())
        yield self._updates(session, waiting=False, clear=clear)
        waiting = False
        name = session.room.task_center.name
        try:
            for event in _on_own_thread(session.room.run(), name=name):
                if isinstance(event, Frame):
                    session.add_frame(event)
                elif isinstance(event, HumanTurn):
                    waiting = True
                elif not isinstance(event, Speaking | _Tick):
                    continue
                yield self._updates(session, waiting=waiting)
        except ActorsimError as error:  # its model server gone, its budget spent: said on the page, in one line
            session.stopped = " ".join(str(error).split())
            notices.warning("chat room %s stopped: %s", name, session.stopped)
            waiting = False
        session.refresh_agents()
        yield self._updates(session, waiting=waiting)

    @contextlib.contextmanager
    def _turn(self, session: _Session) -> Iterator[bool]:
        """Drive the room once the session's previous stream has ended; False if the tab is gone.

        The page may send the human's words before Gradio has finished the
        stream that opened the text box: they wait for it rather than being lost.
        """
        with session.turns:
            session.turns.wait_for(lambda: not session.busy or session.ending)
            mine = session.busy = not session.ending
        if not mine:
            yield False
            return
        try:
            yield True
        finally:
            with session.turns:
                session.busy = False
                session.turns.notify_all()
                ending = session.ending
            if ending:
                session.room.close()

    def _start(self, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        session = self._new_session(str(request.session_hash))
        with self._turn(session) as mine:
            if mine:
                yield from self._stream(session)

    def _speak(self, text: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        session = self.sessions.get(str(request.session_hash))
        if session is None or session.stopped is not None or not text.strip():
            return
        with self._turn(session) as mine:
            if mine and session.room.speaking == session.room.human:
                message = session.room.speak(text.strip())
                session.add_human(message)
                yield from self._stream(session, clear=True)

    def _trace(self, message_id: str | None, request: gr.Request) -> str:
        session = self.sessions.get(str(request.session_hash))
        if session is None or not message_id:
            return ""
        return trace_markdown(session.room.trace(message_id), session.number)

    def _unload(self, request: gr.Request) -> None:
        self.end_session(str(request.session_hash))

    # -- serving

    def launch(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (port 0: a free one), never shared, from a thread; returns the page's URL."""
        if port == 0:
            port = free_port()
        _, url, _ = self.blocks.launch(
            server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True,
            quiet=True, footer_links=[],
        )
        return str(url)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a test or an example to serve on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_app(
    make_room: Callable[[], ChatRoom | TaskCenter],
    *,
    task: str | None = None,
    director: Director = round_robin,
    title: str = "actorsim chat room",
) -> gr.Blocks:
    """The Gradio app of a chat room; see `ChatApp` (which also closes the rooms)."""
    return ChatApp(make_room, task=task, director=director, title=title).blocks
