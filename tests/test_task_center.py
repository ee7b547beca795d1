"""The seed's scenarios and the semantics of TaskCenter, in every mode."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from actorsim import USER_REQUIREMENT, ChatMessage, Frame, Memory, RolePlay, TaskCenter
from tests.conftest import Make
from tests.helpers import TASK, prompt_text, scripted, texts_by_role


def debate(make: Make, *roles: str) -> tuple[TaskCenter, dict[str, object]]:
    """A task center whose agents answer "<role> reply <n>." in turn."""
    task_center = make(TaskCenter, "task_center")
    agents = {
        role: make(
            RolePlay, role, llm=scripted(*(f"{role} reply {n}." for n in range(1, 6))), instruction=f"You are {role}."
        )
        for role in roles
    }
    task_center.add_agents(list(agents.values()))
    return task_center, agents


class TestTwoAgentDebate:
    def test_agents_take_turns_answering_each_other(self, make: Make) -> None:
        """The seed's debate: joe answers the task, then each answers the other."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        replies = [texts_by_role(task_center.step()) for _ in range(4)]
        assert replies == [
            {"joe_biden": "joe_biden reply 1."},
            {"donald_trump": "donald_trump reply 1."},
            {"joe_biden": "joe_biden reply 2."},
            {"donald_trump": "donald_trump reply 2."},
        ]
        history = task_center.environment.history()
        assert [(m.sent_from, m.send_to) for m in history] == [
            (USER_REQUIREMENT, ("joe_biden",)),
            ("joe_biden", ("donald_trump",)),
            ("donald_trump", ("joe_biden",)),
            ("joe_biden", ("donald_trump",)),
            ("donald_trump", ("joe_biden",)),
        ]
        for cause, reply in itertools.pairwise(history):
            assert reply.parent_ids == (cause.message_id,)
        assert {m.trace_id for m in history} == {history[0].message_id}

    def test_frames_name_the_role_and_the_message(self, make: Make) -> None:
        """Each frame reads "<role>: chunk" and carries the id of the reply it belongs to."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        frames = list(task_center.step())
        reply = task_center.environment.history()[-1]
        assert all(isinstance(frame, Frame) and isinstance(frame, str) for frame in frames)
        assert frames[0] == "<joe_biden>: joe_biden "
        assert {frame.message_id for frame in frames} == {reply.message_id}
        assert "".join(frame.content for frame in frames) == reply.content

    def test_a_queue_is_drained_when_its_role_responds(self, make: Make) -> None:
        """Pulled messages leave the queue; the reply waits in the other role's queue."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        assert task_center.environment.pending_roles() == ["joe_biden"]
        list(task_center.step())
        assert task_center.environment.pending("joe_biden") == []
        assert [m.content for m in task_center.environment.pending("donald_trump")] == ["joe_biden reply 1."]

    def test_round_repeats_the_step(self, make: Make) -> None:
        """step(round=3) is three steps in a row."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        frames = list(task_center.step(round=3))
        assert [m.sent_from for m in task_center.environment.history()[1:]] == [
            "joe_biden",
            "donald_trump",
            "joe_biden",
        ]
        assert texts_by_role(frames) == {
            "joe_biden": "joe_biden reply 1.joe_biden reply 2.",
            "donald_trump": "donald_trump reply 1.",
        }

    def test_no_pending_message_means_no_responder(self, make: Make) -> None:
        """A step with nobody to answer yields nothing and stores nothing."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        assert list(task_center.step()) == []
        assert task_center.environment.history() == []

    def test_each_agent_remembers_what_it_received_and_said(self, make: Make) -> None:
        """An agent's memory holds its prompts and its replies, in order."""
        task_center, agents = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        list(task_center.step(round=3))
        assert agents["joe_biden"].get_history() == [
            ChatMessage("user", f"{USER_REQUIREMENT}: {TASK}"),
            ChatMessage("assistant", "joe_biden reply 1."),
            ChatMessage("user", "donald_trump: donald_trump reply 1."),
            ChatMessage("assistant", "joe_biden reply 2."),
        ]

    def test_step_task_reaches_the_prompt(self, make: Make) -> None:
        """A `task` given to step() is part of each responder's prompt."""
        task_center, agents = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK, send_to="joe_biden")
        list(task_center.step(task="Answer in one sentence."))
        assert "Task: Answer in one sentence." in prompt_text(agents["joe_biden"])

    def test_user_requirements_are_kept(self, make: Make) -> None:
        """Tasks from outside are listed as user requirements; agents' messages are not."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK)
        list(task_center.step())
        assert [m.content for m in task_center.environment.user_requirements()] == [TASK]

    def test_send_from_an_agent(self, make: Make) -> None:
        """send_from names the agent the request speaks for; "all" then means the others."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK)
        message = task_center.send_task_request("I dont agree", send_from="donald_trump")
        assert message.send_to == ("joe_biden",)
        assert message.sent_from == "donald_trump"
        assert task_center.environment.user_requirements()[-1].content == TASK


class TestThreeManDebate:
    def test_a_whisper_reaches_only_its_recipient(self, make: Make) -> None:
        """step(send_to=...) publishes to that role alone; no other prompt ever holds it."""
        task_center, agents = debate(make, "joe_biden", "donald_trump", "hillary_clinton")
        task_center.send_task_request(TASK, send_to="joe_biden")
        assert texts_by_role(task_center.step(send_to="hillary_clinton")) == {"joe_biden": "joe_biden reply 1."}
        whisper = task_center.environment.history()[-1]
        assert whisper.send_to == ("hillary_clinton",)
        assert task_center.environment.pending_roles() == ["hillary_clinton"]

        assert texts_by_role(task_center.step(allowed_roles="donald_trump")) == {
            "donald_trump": "donald_trump reply 1."
        }
        assert texts_by_role(task_center.step()) == {
            "joe_biden": "joe_biden reply 2.",
            "hillary_clinton": "hillary_clinton reply 1.",
        }
        assert whisper.content in prompt_text(agents["hillary_clinton"])
        assert whisper.content not in prompt_text(agents["donald_trump"])
        assert whisper not in task_center.environment.history("donald_trump")

    def test_allowed_roles_answer_even_with_empty_queues(self, make: Make) -> None:
        """allowed_roles picks the responders, whatever is pending."""
        task_center, _ = debate(make, "joe_biden", "donald_trump", "hillary_clinton")
        task_center.send_task_request(TASK, send_to="joe_biden")
        frames = list(task_center.step(allowed_roles=["hillary_clinton", "donald_trump"]))
        assert set(texts_by_role(frames)) == {"hillary_clinton", "donald_trump"}
        assert "joe_biden" in task_center.environment.pending_roles()


class TestPublishing:
    def agents(self, make: Make) -> tuple[TaskCenter, Any]:
        """'slow' thinks for a while before it speaks; 'quick' answers at once."""
        task_center = make(TaskCenter, "task_center")
        slow = make(RolePlay, "slow", llm=scripted("Let me think.", reply_latency=0.3))
        task_center.add_agents([slow, make(RolePlay, "quick", llm=scripted("Done."))])
        task_center.send_task_request(TASK)
        return task_center, slow

    def test_replies_are_published_in_responder_order(self, make: Make) -> None:
        """Whoever finishes first, the history follows registration order: runs are reproducible."""
        task_center, _ = self.agents(make)
        frames = list(task_center.step())
        assert [frame.role for frame in frames][0] == "quick", "quick streamed first"
        assert [m.sent_from for m in task_center.environment.history()] == [USER_REQUIREMENT, "slow", "quick"]

    def test_a_step_left_part_way_loses_no_finished_reply(self, make: Make) -> None:
        """Stop iterating once 'slow' starts: 'quick' is published, 'slow' gets its task again."""
        task_center, slow_agent = self.agents(make)
        steps = task_center.step()
        for frame in steps:
            if frame.role == "slow":
                break
        steps.close()
        assert [m.content for m in task_center.environment.history()] == [TASK, "Done."]
        assert [m.content for m in task_center.environment.pending("slow")] == [TASK, "Done."]
        # Its next step answers both, and its memory holds that step alone, not the one left behind.
        assert texts_by_role(task_center.step(allowed_roles="slow")) == {"slow": "Let me think."}
        slow = task_center.environment.history()[-1]
        assert slow.parent_ids == tuple(m.message_id for m in task_center.environment.history()[:2])
        assert [(turn.role, turn.content) for turn in slow_agent.get_history()] == [
            ("user", f"user_requirement: {TASK}\nquick: Done."),
            ("assistant", "Let me think."),
        ]


class TestHumanAgent:
    def test_user_response_is_published_and_not_yielded(self, make: Make) -> None:
        """The seed's chatbot case: the human's words are published, nothing is yielded for them."""
        task_center, agents = debate(make, "joe_biden", "donald_trump", "hillary_clinton")
        user = make(RolePlay, "user", human_input_mode="ON")
        task_center.add_agents([user])
        task_center.send_task_request("best solution to land on moon, in one sentence?", send_to="joe_biden")
        assert set(texts_by_role(task_center.step())) == {"joe_biden"}

        result = ""
        for frame in task_center.step(
            allowed_roles="user", user_response="I dont agree with you about the landing project"
        ):
            result += frame
        assert result == ""
        said = task_center.environment.history()[-1]
        assert (said.sent_from, said.content) == ("user", "I dont agree with you about the landing project")
        assert said.send_to == ("joe_biden", "donald_trump", "hillary_clinton")

        assert set(texts_by_role(task_center.step())) == {"joe_biden", "donald_trump", "hillary_clinton"}
        assert "user: I dont agree" in prompt_text(agents["donald_trump"])

    def test_a_human_without_a_response_keeps_its_messages(self, make: Make) -> None:
        """A step without user_response passes the human by; its queue waits for it."""
        task_center, _ = debate(make, "joe_biden")
        user = make(RolePlay, "user", human_input_mode="ON")
        task_center.add_agents([user])
        task_center.send_task_request(TASK, send_to="joe_biden")
        list(task_center.step())
        assert list(task_center.step()) == []
        assert task_center.environment.pending_roles() == ["user"]
        list(task_center.step(user_response="Tell me more."))
        assert task_center.environment.history()[-1].content == "Tell me more."

    def test_allowing_a_human_needs_a_response(self, make: Make) -> None:
        """Naming a human in allowed_roles without user_response is refused before the step."""
        task_center, _ = debate(make, "joe_biden")
        task_center.add_agents([make(RolePlay, "user", human_input_mode="ON")])
        with pytest.raises(ValueError, match="'user'.*user_response"):
            task_center.step(allowed_roles="user")


class TestTerminalHuman:
    def test_a_terminal_player_is_asked_in_the_driver(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """human_input_mode="TERMINAL": the driver prompts with the role and publishes what is typed."""
        prompts: list[str] = []
        monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "Balloons are safer.")
        task_center, _ = debate(make, "joe_biden")
        task_center.add_agents([make(RolePlay, "player", human_input_mode="TERMINAL")])
        task_center.send_task_request(TASK, send_to="player")
        assert list(task_center.step()) == []
        assert prompts == ["<player>: "]
        said = task_center.environment.history()[-1]
        assert (said.sent_from, said.content, said.send_to) == ("player", "Balloons are safer.", ("joe_biden",))


class TestWatcher:
    def test_a_watcher_sees_everything_and_never_publishes(self, make: Make) -> None:
        """A watcher's prompt holds the whole history, whispers too; its reply is yielded, not stored."""
        task_center, _ = debate(make, "joe_biden", "donald_trump", "hillary_clinton")
        watcher = make(RolePlay, "watcher", llm=scripted("Joe whispered to Hillary."), is_watcher=True)
        task_center.add_agents([watcher])
        task_center.send_task_request(TASK, send_to="joe_biden")
        list(task_center.step(send_to="hillary_clinton"))
        history = task_center.environment.history()

        assert texts_by_role(task_center.step(allowed_roles="watcher")) == {"watcher": "Joe whispered to Hillary."}
        assert task_center.environment.history() == history
        assert all(message.content in prompt_text(watcher) for message in history)
        assert "watcher" not in task_center.environment.pending_roles()

    def test_messages_are_not_sent_to_a_watcher(self, make: Make) -> None:
        """ "all" leaves the watcher out, and naming it is an error."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.add_agents([make(RolePlay, "watcher", llm=scripted("ok"), is_watcher=True)])
        assert task_center.send_task_request(TASK).send_to == ("joe_biden", "donald_trump")
        with pytest.raises(ValueError, match="'watcher'"):
            task_center.send_task_request(TASK, send_to="watcher")


class TestRegistry:
    def test_agents_are_registered_in_order(self, make: Make) -> None:
        """The registry lists every agent with its role and kind, and finds one by role."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.add_agents([make(RolePlay, "user", human_input_mode="ON")])
        infos = task_center.registry.agents()
        assert [(i.role, i.is_human, i.status) for i in infos] == [
            ("joe_biden", False, "ready"),
            ("donald_trump", False, "ready"),
            ("user", True, "ready"),
        ]
        assert task_center.registry.find("donald_trump").agent_class == "actorsim.agents.RolePlay"
        assert task_center.roles == ["joe_biden", "donald_trump", "user"]


class TestPersistentMemory:
    def test_storage_path_keeps_the_memory_as_json(self, make: Make, tmp_path: Path) -> None:
        """With storage_path the memory is written as it grows and loads back."""
        path = tmp_path / "joe.json"
        task_center = make(TaskCenter, "task_center")
        joe = make(RolePlay, "joe_biden", llm=scripted("Rockets."), storage_path=str(path))
        task_center.add_agents([joe])
        task_center.send_task_request(TASK)
        list(task_center.step())
        assert (
            Memory(path).get_history()
            == joe.get_history()
            == [ChatMessage("user", f"{USER_REQUIREMENT}: {TASK}"), ChatMessage("assistant", "Rockets.")]
        )
