"""The seed's other single-agent inputs: description, use_history, generation settings, send_from's memory."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from actorsim import ChatMessage, Frame, RolePlay, TaskCenter, ToolFrame
from actorsim.ui import ChatRoom, TerminalView, round_robin
from tests import tools  # noqa: F401 - registers the "weather" tool
from tests.conftest import Make
from tests.helpers import TASK, logged_events, of_kind, scripted, texts_by_role
from tests.openai_server import OpenAIServer


def test_a_description_is_kept_in_the_registry(make: Make) -> None:
    """The Registry, and so the chat room, tells what an agent is for and which tools it has."""
    task_center = make(TaskCenter, "task_center")
    agent = make(RolePlay, "ada", llm=scripted("hi"), description="Forecasts the weather.", function_list=["weather"])
    task_center.add_agents([agent])
    info = task_center.registry.find("ada")
    assert (info.description, info.tools) == ("Forecasts the weather.", ("weather",))
    assert [(a.role, a.description) for a in ChatRoom(task_center, director=round_robin).agents()] == [
        ("ada", "Forecasts the weather.")
    ]


@pytest.mark.parametrize("use_history", [True, False])
def test_use_history_false_prompts_with_the_current_step_only(make: Make, use_history: bool, log_dir: Path) -> None:
    """Without history the second prompt holds the system turn and this step's messages; memory still grows."""
    task_center = make(TaskCenter, "task_center")
    agent = make(RolePlay, "ada", llm=scripted("One.", "Two."), use_history=use_history)
    task_center.add_agents([agent])
    with logged_events(log_dir) as events:
        for task in ("first", "second"):
            task_center.send_task_request(task)
            list(task_center.step())
    second = of_kind(events, "llm.call.started")[-1]["prompt"]
    assert [turn["role"] for turn in second] == (
        ["system", "user", "assistant", "user"] if use_history else ["system", "user"]
    )
    assert second[-1]["content"] == "user_requirement: second"
    assert len(agent.get_history()) == 4


def test_generation_settings_reach_every_responders_model(make: Make, log_dir: Path) -> None:
    """The llm dict's settings, overridden per step, are in every request of the step and in the run log."""
    with OpenAIServer(["Fine."]) as server:
        task_center = make(TaskCenter, "task_center")
        llm = {"model_server": "openai", "model": "m", "api_base": server.api_base}
        llm |= {"temperature": 0.1, "max_tokens": 64}
        task_center.add_agents([make(RolePlay, role, llm=llm) for role in ("ada", "bruno")])
        task_center.send_task_request(TASK)
        with logged_events(log_dir) as events:
            replies = texts_by_role(task_center.step(temperature=0.7, top_p=0.9, seed=3))
            assert replies == {"ada": "Fine.", "bruno": "Fine."}
            list(task_center.step(allowed_roles="ada"))
        wanted = {"temperature": 0.7, "top_p": 0.9, "seed": 3, "max_tokens": 64}
        assert [{k: r[k] for k in wanted} for r in server.requests[:2]] == [wanted, wanted]
        assert "seed" not in server.requests[2] and server.requests[2]["temperature"] == 0.1, "per step, not sticky"
    logged = [e["settings"] for e in of_kind(events, "llm.call.started")]
    assert logged == [wanted, wanted, {"temperature": 0.1, "max_tokens": 64}]


def test_bad_generation_settings_are_refused_before_the_step(make: Make) -> None:
    task_center = make(TaskCenter, "task_center")
    task_center.add_agents([make(RolePlay, "ada", llm=scripted("hi"))])
    task_center.send_task_request(TASK)
    with pytest.raises(ValueError, match=r"temperature must be a number in \[0.0, 2.0\]"):
        task_center.step(temperature=5)
    assert task_center.environment.pending_roles() == ["ada"]


def test_send_from_a_role_records_the_opener_in_its_memory(make: Make) -> None:
    """The sender remembers starting the task, as the seed's single agent would; the recipient answers it."""
    task_center = make(TaskCenter, "task_center")
    ada, bruno = (make(RolePlay, role, llm=scripted("Agreed.")) for role in ("ada", "bruno"))
    task_center.add_agents([ada, bruno])
    task_center.send_task_request("Shall we fly?", send_to="bruno", send_from="ada")
    assert ada.get_history() == [ChatMessage("assistant", "Shall we fly?")]
    assert texts_by_role(task_center.step()) == {"bruno": "Agreed."}
    assert texts_by_role(task_center.step()) == {"ada": "Agreed."}
    assert ada.get_history() == [
        ChatMessage("assistant", "Shall we fly?"),
        ChatMessage("user", "bruno: Agreed."),
        ChatMessage("assistant", "Agreed."),
    ]


def test_the_terminal_shows_tool_calls_compactly_apart_from_the_reply() -> None:
    output = io.StringIO()
    view = TerminalView(Console(file=output, width=200, highlight=False))
    view.show([
        ToolFrame("ada", "tool_call", "weather", "c1", '{"city": "Oslo"}', "m1"),
        ToolFrame("ada", "tool_result", "weather", "c1", "18 C in Oslo", "m1"),
    ])
    view.show([Frame("ada", "Mild.", "m1")])
    lines = [line.rstrip() for line in output.getvalue().splitlines() if line.strip()]
    assert '<ada> \u2699 weather({"city": "Oslo"})' in lines
    assert "<ada> \u2699 weather \u2192 18 C in Oslo" in lines
    assert lines[-1] == "<ada>: Mild."
