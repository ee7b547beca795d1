"""Replies of several posts (`Post`), each routed on its own, and tools an agent calls from its own code."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsim import Hash, Message, Post, RolePlay, TaskCenter
from tests.actors import Splitter, count_items, item_key
from tests.conftest import Make
from tests.helpers import logged_events, of_kind, record_then_replay, restarts_after_kills, scripted
from tests.test_supervision import in_processes, kill

WORKERS = ("w0", "w1", "w2")


def splitting(make: Make, **options: object) -> TaskCenter:
    """A splitter that hashes items over three workers and reports to a boss."""
    task_center: TaskCenter = make(TaskCenter, "task_center")
    options = {"report_to": "boss", **options}
    agents = [make(RolePlay, "boss", llm=scripted("ok")), make(Splitter, "splitter", llm=scripted("unused"), **options)]
    agents += [make(RolePlay, role, llm=scripted(f"{role} done"), group="workers") for role in WORKERS]
    task_center.add_agents(agents)
    return task_center


def owner(item: str) -> str:
    """Which worker `Hash` gives an item to, asked of a task center of its own."""
    task_center = TaskCenter(log_dir=None)
    task_center.add_agents([RolePlay(role, llm=scripted("hi"), group="workers") for role in WORKERS])
    return task_center.send_task_request(item, send_to=Hash("workers", key=item_key)).send_to[0]


class TestPosts:
    def test_each_post_goes_where_its_own_send_to_says(self, make: Make) -> None:
        """Items reach the worker their key hashes to, the count reaches the boss; the task is answered."""
        task_center = splitting(make)
        task_center.send_task_request("a,b,c,d,e", send_to="splitter")
        list(task_center.step())
        posts = task_center.environment.history()[1:]
        assert [(m.content, m.send_to) for m in posts] == [
            *((item, (owner(item),)) for item in "abcde"), ("5 items", ("boss",))
        ]
        assert task_center.environment.pending("splitter") == []

    def test_posts_have_the_reply_id_and_numbered_ids_after_it(self, make: Make) -> None:
        """The first post carries the reply's id; the others that id and their place, all with the same causes."""
        task_center = splitting(make)
        task = task_center.send_task_request("a,b", send_to="splitter")
        frames = list(task_center.step())
        posts = task_center.environment.history()[1:]
        first = posts[0].message_id
        assert [m.message_id for m in posts] == [first, f"{first}.1", f"{first}.2"]
        assert all(m.parent_ids == (task.message_id,) and m.trace_id == task.trace_id for m in posts)
        assert all(frame.message_id == first for frame in frames)

    def test_a_post_names_its_own_causes(self, make: Make) -> None:
        """`parent_ids` narrows a post's causes to the messages it came from; a post without them has all."""
        task_center = splitting(make)
        first = task_center.send_task_request("a,b", send_to="splitter")
        second = task_center.send_task_request("b,c", send_to="splitter")
        list(task_center.step(allowed_roles=["splitter"]))
        causes = {m.content: m.parent_ids for m in task_center.environment.history()[2:]}
        assert causes == {
            "a": (first.message_id,), "b": (first.message_id,), "c": (second.message_id,),
            "3 items": (first.message_id, second.message_id),
        }

    def test_no_posts_answer_what_came_and_send_nothing(self, make: Make) -> None:
        """An empty list of posts (every item seen before) still answers the messages it was given."""
        task_center = splitting(make)
        task_center.send_task_request("a", send_to="splitter")
        list(task_center.step())
        before = len(task_center.environment.history())
        task_center.send_task_request("a", send_to="splitter")
        list(task_center.step(allowed_roles=["splitter"]))
        history = task_center.environment.history()
        assert [m.content for m in history[before + 1:]] == ["0 items"]
        assert task_center.environment.pending("splitter") == []

    @pytest.mark.parametrize(
        ("options", "problem"),
        [({"report_to": "nobody"}, "post 2: send_to: unknown role 'nobody'"),
         ({"workers": "loafers"}, "post 0: send_to: Hash.*unknown group 'loafers'")],
    )
    def test_a_post_to_an_unknown_role_or_group_stores_nothing(
        self, make: Make, options: dict[str, str], problem: str
    ) -> None:
        """The step raises naming the post; no post of the reply is stored and the message waits again."""
        task_center = splitting(make, **options)
        task = task_center.send_task_request("a,b", send_to="splitter")
        with pytest.raises(ValueError, match=problem):
            for _ in task_center.step():
                pass
        assert task_center.environment.history() == [task]
        assert task_center.environment.pending("splitter") == [task]

    def test_a_post_is_checked_when_made(self) -> None:
        with pytest.raises(TypeError, match="Post.send_to must be a role"):
            Post("hi", send_to=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Post(b"hi")  # type: ignore[arg-type]


@in_processes
def test_a_splitter_killed_mid_step_posts_each_item_once(make: Make, log_dir: Path) -> None:
    """Killed after its tool answered (mid-step, or just after its reply left), each post is stored once.

    Its memory comes back with the restart: an item it met before the kill is not sent again.
    """
    with logged_events(log_dir) as events:
        task_center = splitting(make, tool="count_items", function_list=[count_items])
        task_center.send_task_request("a,b,c", send_to="splitter")
        killed = False
        for frame in task_center.step(allowed_roles=["splitter"]):
            if frame.kind == "tool_result" and not killed:
                kill(task_center, "splitter")
                killed = True
        task_center.send_task_request("c,d", send_to="splitter")
        list(task_center.step(allowed_roles=["splitter"]))
        history = task_center.environment.history()
    assert killed
    assert [m.content for m in history if m.sent_from == "splitter"] == ["a", "b", "c", "3 items", "d", "1 items"]
    assert len({m.message_id for m in history}) == len(history)
    assert len(restarts_after_kills(events)) == 1


class TestUseTool:
    def test_an_agents_own_tool_call_is_logged_and_shown(self, make: Make, log_dir: Path) -> None:
        """`use_tool` runs the tool as a model's call would: frames, `tool.call.*` events, the outcome."""
        with logged_events(log_dir) as events:
            task_center = splitting(make, tool="count_items", function_list=[count_items])
            task_center.send_task_request("a,b", send_to="splitter")
            frames = list(task_center.step(allowed_roles=["splitter"]))
        assert [(f.kind, f.tool, f.call_id, f.detail) for f in frames if f.kind != "text"] == [
            ("tool_call", "count_items", "count_items-1", '{"items": ["a", "b"]}'),
            ("tool_result", "count_items", "count_items-1", "2"),
        ]
        assert "".join(f.content for f in frames) == "count_items: 2"
        finished = of_kind(events, "tool.call.finished")
        assert [(e["role"], e["call_id"], e["result"]) for e in finished] == [("splitter", "count_items-1", "2")]

    def test_a_tool_it_does_not_have_is_refused_by_name(self) -> None:
        agent = Splitter("splitter", llm=scripted("unused"), tool="missing")
        with pytest.raises(ValueError, match="agent 'splitter' has no tool 'missing'; its tools: \\(none\\)"):
            list(agent.step([Message("a", "user_requirement", ["splitter"])], reply_id="r1"))


def test_a_run_with_posts_and_tool_calls_replays(tmp_path: Path) -> None:
    """Posts' ids are made from their reply's, not drawn: a replay gives back the drawn ones and matches every post."""
    def program(**options: object) -> TaskCenter:
        task_center = TaskCenter(log_dir=tmp_path / "logs", **options)  # type: ignore[arg-type]
        task_center.add_agents([
            RolePlay("boss", llm=scripted("ok")),
            Splitter("splitter", llm=scripted("unused"), report_to="boss", tool="count_items",
                     function_list=[count_items]),
            *(RolePlay(role, llm=scripted(f"{role} done"), group="workers") for role in WORKERS),
        ])
        task_center.send_task_request("a,b,c", send_to="splitter")
        for _ in range(2):
            list(task_center.step())
        return task_center

    _, history, replay, replayed = record_then_replay(program)
    assert replay.matched == replay.recorded == len(history) > 5
    assert [m.message_id for m in replayed.environment.history()] == [m.message_id for m in history]
    replayed.close()
