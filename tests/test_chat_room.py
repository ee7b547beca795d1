"""The chat room's turn-taking, without a browser: director, human turn, trace, in every mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actorsim import ActorStoppedError, ChatMessage, RolePlay, TaskCenter
from actorsim.llm import ScriptedConfig, ScriptedModel
from actorsim.runs import TraceNode
from actorsim.ui import ChatRoom, HumanTurn, Speaking, WatcherDirector, round_robin
from tests.conftest import Make
from tests.helpers import TASK, prompt_text, scripted
from tests.openai_server import OpenAIServer


def room(make: Make, *, director_replies: tuple[str, ...] = (), max_turns: int = 6) -> ChatRoom:
    """ada and bruno answer what they heard; visitor is the human; an optional watcher directs."""
    task_center = make(TaskCenter, "task_center")
    agents = [
        make(RolePlay, role, llm=scripted(f"{role} heard {{speaker}}: {{heard}}"), instruction=f"You are {role}.")
        for role in ("ada", "bruno")
    ]
    agents.append(make(RolePlay, "visitor", human_input_mode="ON"))
    if director_replies:
        agents.append(make(RolePlay, "director", llm=scripted(*director_replies), is_watcher=True))
    task_center.add_agents(agents)
    director = WatcherDirector("director") if director_replies else round_robin
    chat_room = ChatRoom(task_center, director=director, max_turns=max_turns)
    chat_room.open(TASK)
    return chat_room


def spoken(events: list[object]) -> list[str]:
    return [f"speaking {e.role}" if isinstance(e, Speaking) else f"human {e.role}" for e in events
            if isinstance(e, Speaking | HumanTurn)]


class TestScriptedHeard:
    def test_heard_is_the_last_speakers_words(self) -> None:
        """A scripted reply quotes who spoke last and what they said, so offline agents answer visibly."""
        model = ScriptedModel(ScriptedConfig(["You said: {heard} ({speaker})"]))
        prompt = [ChatMessage("system", "Be brief."), ChatMessage("user", "ada: hi\nvisitor: Balloons!\n")]
        assert "".join(model.stream(prompt)) == "You said: Balloons! (Visitor)"

    def test_the_task_is_named_the_task(self) -> None:
        """The task's internal sender name never shows: {speaker} says "the task"."""
        model = ScriptedModel(ScriptedConfig(["{speaker} asks “{heard}”"]))
        prompt = [ChatMessage("user", f"user_requirement: {TASK}")]
        assert "".join(model.stream(prompt)) == f"The task asks “{TASK}”"

    def test_heard_leaves_out_what_the_speaker_quoted(self) -> None:
        """Only the speaker's own words are quoted, never a quote of a quote."""
        model = ScriptedModel(ScriptedConfig(["{speaker} said “{heard}” I agree."]))
        said = "bruno: I am bruno. Ada said “Test it first.” As bruno, I ask who pays."
        reply = "".join(model.stream([ChatMessage("user", said)]))
        assert reply == "Bruno said “I am bruno. As bruno, I ask who pays.” I agree."


class TestChatRoom:
    def test_round_robin_speaks_until_the_human(self, make: Make) -> None:
        """Round robin lets ada then bruno speak, then waits for the human without stepping it."""
        chat_room = room(make)
        events = list(chat_room.run())
        assert spoken(events) == ["speaking ada", "speaking bruno", "human visitor"]
        assert chat_room.speaking == "visitor"
        assert [m.sent_from for m in chat_room.history()] == ["user_requirement", "ada", "bruno"]
        text = "".join(e.content for e in events if not isinstance(e, Speaking | HumanTurn))
        assert text.startswith("ada heard The task: " + TASK)

    def test_the_others_answer_the_human(self, make: Make) -> None:
        """After the human speaks, the next speakers are prompted with the human's words."""
        chat_room = room(make)
        list(chat_room.run())
        message = chat_room.speak("What about balloons?")
        assert (message.sent_from, message.content) == ("visitor", "What about balloons?")
        assert spoken(list(chat_room.run())) == ["speaking ada", "speaking bruno", "human visitor"]
        ada_reply = chat_room.history()[4]
        assert (ada_reply.sent_from, ada_reply.content) == ("ada", "ada heard Visitor: What about balloons?")
        assert message.message_id in ada_reply.parent_ids

    def test_a_watcher_directs_and_a_reply_naming_nobody_falls_back(self, make: Make) -> None:
        """The watcher's reply names the next speaker; "nobody" falls back to round robin."""
        chat_room = room(make, director_replies=("Bruno, please.", "nobody", "the VISITOR now"))
        assert spoken(list(chat_room.run())) == ["speaking bruno", "human visitor"]
        assert [m.sent_from for m in chat_room.history()] == ["user_requirement", "bruno"]

    def test_without_the_human_chosen_the_human_is_asked_after_max_turns(self, make: Make) -> None:
        """A director that never picks the human still hands the room over after max_turns replies."""
        chat_room = room(make, director_replies=("ada",), max_turns=3)
        assert spoken(list(chat_room.run())) == ["speaking ada"] * 3 + ["human visitor"]

    def test_trace_shows_what_caused_a_reply_and_what_it_caused(self, make: Make) -> None:
        """From the run log: the tree from the task down to the reply, and the tree of what answered it."""
        chat_room = room(make)
        list(chat_room.run())
        visitor = chat_room.speak("Balloons!")
        list(chat_room.run(turns=1))
        trace = chat_room.trace(visitor.message_id[:20])
        assert trace.message == visitor

        def shape(nodes: tuple[TraceNode, ...]) -> list[object]:
            return [(node.message.sent_from, shape(node.children)) for node in nodes]

        # ada answered the task; bruno answered the task and ada; visitor answered both.
        assert shape(trace.causes) == [("user_requirement", [("ada", [("bruno", [])])])]
        assert shape(trace.effects) == [("ada", [])]

    def test_close_stops_the_rooms_agents(self, make: Make) -> None:
        """Closing a room stops its task center's actors; a second close does nothing."""
        chat_room = room(make)
        chat_room.close()
        chat_room.close()
        with pytest.raises(ActorStoppedError):
            chat_room.history()

    def test_prompt_holds_the_human_words(self, make: Make) -> None:
        """The agent's own memory shows it was prompted with what the human said."""
        task_center = make(TaskCenter, "task_center")
        ada = make(RolePlay, "ada", llm=scripted("ok {heard}"))
        task_center.add_agents([ada, make(RolePlay, "visitor", human_input_mode="ON")])
        chat_room = ChatRoom(task_center)
        chat_room.open(TASK)
        list(chat_room.run())
        chat_room.speak("Catapults?")
        list(chat_room.run())
        assert "visitor: Catapults?" in prompt_text(ada)


def test_importing_actorsim_and_its_room_leaves_gradio_unimported() -> None:
    """Gradio is an optional extra: only the app's names import it, on first use."""
    code = (
        "import sys, actorsim, actorsim.ui; assert 'gradio' not in sys.modules; "
        "actorsim.ui.ChatApp; assert 'gradio' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_without_gradio_the_app_says_what_to_install() -> None:
    """The app's error names the extra to install when Gradio is missing."""
    code = (
        "import sys; sys.modules['gradio'] = None\n"
        "try:\n    from actorsim.ui import ChatApp\nexcept ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "pip install 'actorsim[ui]'" in result.stdout


def test_the_turn_line_shows_what_the_model_calls_are_doing(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """`actorsim chat` against a model server: while a reply is slow to come, the page is drawn again and its turn
    line says how many calls are in flight; once they are done, the tokens they used."""
    from actorsim.ui import _gradio

    monkeypatch.setattr(_gradio, "TICK_S", 0.2)
    with OpenAIServer(["Up."], piece_latency=0.5, keep_alive=True) as server:
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base, "api_key": "k"}
        task_center = make(TaskCenter, "served_room")
        task_center.add_agents([make(RolePlay, "ada", llm=llm), make(RolePlay, "visitor", human_input_mode="ON")])
        chat_room = ChatRoom(task_center, director=round_robin, max_turns=2)
        chat_room.open(TASK)
        session = _gradio._Session(chat_room)
        before = task_center.runtime.model_traffic().tokens  # this mode's run may have served other tests
        drawn = [session.turn_line(waiting=False) for event in _gradio._on_own_thread(chat_room.run(turns=1), "t")
                 if isinstance(event, _gradio._Tick)]
        assert any(f"is speaking… <small>(1 model call in flight, 0 waiting · {before:,} tokens)" in line
                   for line in drawn), drawn
        after = f"(0 model calls in flight, 0 waiting · {before + 7 + 1:,} tokens)"
        assert after in session.turn_line(waiting=False), "the reply's usage, as the server counted it"
        chat_room.close()
