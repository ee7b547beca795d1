"""Agents with tools: every form of function_list, tool services, faults, the run log; plain and on every transport."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from actorsim import Frame, RolePlay, Supervision, TaskCenter, ToolFrame, ToolService
from actorsim.llm import OpenAIChatModel, OpenAIConfig, ToolCall
from actorsim.tools import Tool, tool_from_callable
from tests import tools
from tests.conftest import Make
from tests.helpers import logged_events, of_kind, scripted, texts_by_role
from tests.openai_server import SHAPES, OpenAIServer, tool_reply

QUICK = Supervision(backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.0)


def calls(*made: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A scripted model turn that calls these tools."""
    return {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in made]}


def one_agent(make: Make, function_list: Sequence[Any], *replies: Any, **options: Any) -> tuple[TaskCenter, Any]:
    task_center = make(TaskCenter, "task_center")
    agent = make(RolePlay, "ada", llm=scripted(*replies), function_list=function_list, **options)
    task_center.add_agents([agent])
    return task_center, agent


def ask(task_center: TaskCenter, task: str = "What now?", **step: Any) -> list[Frame]:
    task_center.send_task_request(task)
    return list(task_center.step(**step))


def tool_frames(frames: Sequence[Frame]) -> list[tuple[str, str, str, bool]]:
    return [(f.kind, f.tool, f.detail, f.failed) for f in frames if isinstance(f, ToolFrame)]


class TestCallingTools:
    def test_a_registered_tool_answers_and_the_run_log_records_the_call(self, make: Make, log_dir: Path) -> None:
        """The model calls a tool by its registered name; its result reaches the reply; started/finished are logged."""
        with logged_events(log_dir) as events:
            task_center, agent = one_agent(make, ["weather"], calls(("weather", {"city": "Paris"})), "It is {heard}.")
            frames = ask(task_center)
            assert tool_frames(frames) == [
                ("tool_call", "weather", '{"city": "Paris"}', False),
                ("tool_result", "weather", "18 C in Paris", False),
            ]
            assert texts_by_role(frames) == {"ada": "It is 18 C in Paris."}, "tool frames add nothing to joined text"
            reply = task_center.environment.history()[-1]
            assert reply.content == "It is 18 C in Paris."
            assert [turn.role for turn in agent.get_history()] == ["user", "assistant", "tool", "assistant"]
        begun, finished = of_kind(events, "tool.call.started", "tool.call.finished")
        assert begun["arguments"] == {"city": "Paris"} and begun["tool"] == "weather"
        assert finished["call_id"] == begun["call_id"] and finished["result"] == "18 C in Paris"
        assert finished["reply_id"] == reply.message_id and finished["latency_s"] >= 0

    def test_every_form_of_function_list_runs_in_the_agents_process(self, make: Make) -> None:
        """{name: config}, a callable and a tool object, called in one turn; a tool runs where its agent runs."""
        task_center, _ = one_agent(
            make,
            [{"greeter": {"greeting": "Ahoy"}}, tools.pid, tools.Calculator()],
            calls(("greeter", {"who": "Ada"}), ("pid", {}), ("add", {"a": 2, "b": 3})),
            "Done.",
        )
        frames = ask(task_center)
        results = {f.tool: f.detail for f in frames if isinstance(f, ToolFrame) and f.kind == "tool_result"}
        agent_pid = task_center.runtime.supervisor.current("ada").pid or os.getpid()
        assert results == {"greeter": "Ahoy, Ada!", "pid": str(agent_pid), "add": "5"}

    def test_the_tool_loop_is_bounded_by_max_tool_rounds(self, make: Make, log_dir: Path) -> None:
        """A model that keeps calling tools is stopped after max_tool_rounds; the step still ends."""
        with logged_events(log_dir) as events:
            task_center, _ = one_agent(make, ["weather"], calls(("weather", {"city": "Rome"})), max_tool_rounds=2)
            ask(task_center)
        assert len(of_kind(events, "tool.call.finished")) == 2
        (exhausted,) = of_kind(events, "tool.rounds_exhausted")
        assert exhausted["rounds"] == 2 and exhausted["unanswered"] == ["weather"]
        assert len(task_center.environment.history()) == 2


class TestRefusedTools:
    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ("nowhere", r"tool 'nowhere': no tool is registered by that name"),
            ({"weather": {"colour": "red"}}, r"tool 'weather': unknown config key\(s\) \['colour'\]"),
            (
                Tool("bad", "x", {"type": "object", "properties": {"x": {"type": "strin"}}}, tools.pid),
                r"tool 'bad': parameter 'x': type 'strin' is not one of",
            ),
            (
                Tool("bad", "x", {"type": "object", "properties": {}, "required": ["y"]}, tools.pid),
                r"tool 'bad': required parameter\(s\) \['y'\] are not in",
            ),
            (Tool("bad", "x", {"type": "array"}, tools.pid), r"tool 'bad': parameters must have \"type\": \"object\""),
        ],
    )
    def test_unknown_names_and_malformed_schemas_are_refused_at_create_component(
        self, make: Make, entry: Any, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            make(RolePlay, "ada", llm=scripted("hi"), function_list=[entry])

    def test_a_schema_comes_from_type_hints_and_docstring(self) -> None:
        """Parameters without a default are required; the docstring describes tool and parameters."""
        tool = tool_from_callable(tools.weather)
        assert tool.description == "The weather in a city."
        assert tool.parameters == {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "the city's name"},
                "unit": {"type": "string", "description": "C or F"},
            },
            "required": ["city"],
        }


class TestToolFaults:
    def test_a_raising_a_hanging_and_an_unserialisable_tool_give_the_model_errors(
        self, make: Make, log_dir: Path
    ) -> None:
        """Each fault is an error result, logged as tool.call.failed; the agent replies and answers again."""
        with logged_events(log_dir) as events:
            task_center, agent = one_agent(
                make,
                [tools.broken, tool_from_callable(tools.stuck, timeout=0.2), tools.unserialisable],
                calls(("broken", {"reason": "rust"}), ("stuck", {}), ("unserialisable", {})),
                "I heard {heard}",
            )
            frames = ask(task_center)
            results = [(tool, failed) for kind, tool, _, failed in tool_frames(frames) if kind == "tool_result"]
            assert results == [("broken", True), ("stuck", True), ("unserialisable", True)]
        errors = [e["error"] for e in of_kind(events, "tool.call.failed")]
        assert errors[0] == "RuntimeError: broken: rust"
        assert "longer than its timeout of 0.2 s" in errors[1]
        assert "does not serialise to JSON" in errors[2]
        told = [turn.content for turn in agent.get_history() if turn.role == "tool"]
        assert [text.startswith("error: ") for text in told] == [True, True, True]
        assert task_center.environment.history()[-1].content.startswith("I heard error: the result (set)")
        assert texts_by_role(ask(task_center)) != {}, "the agent goes on"


class TestToolService:
    def test_a_pool_serves_two_agents_in_processes_of_its_own(self, make: Make, log_dir: Path, mode: str) -> None:
        """Both agents' calls are answered by the service's actors, not by the agents' processes."""
        service = make(ToolService, "pids", tools=[tools.pid], pool=2)
        task_center = make(TaskCenter, "task_center")
        llm = scripted(calls(("pid", {})), "{heard}")
        task_center.add_agents([make(RolePlay, role, llm=llm, function_list=[service]) for role in ("ada", "bruno")])
        with logged_events(log_dir) as events:
            frames = ask(task_center)
            served = {f.role: int(f.detail) for f in frames if isinstance(f, ToolFrame) and f.kind == "tool_result"}
            assert sorted(served) == ["ada", "bruno"]
            if mode == "plain":
                assert set(served.values()) == {os.getpid()}
            else:
                current = task_center.runtime.supervisor.current
                assert set(served.values()) <= {current("pids/0").pid, current("pids/1").pid}
        assert {e["service"] for e in of_kind(events, "tool.call.started")} == {"pids"}
        assert texts_by_role(frames) == {role: str(pid) for role, pid in served.items()}

    @pytest.mark.parametrize("mode", ["thespian", "ray"], indirect=True)
    @pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
    def test_a_service_killed_mid_call_is_restarted_and_only_idempotent_calls_run_again(
        self, make: Make, tmp_path: Any, idempotent: bool, log_dir: Path
    ) -> None:
        """The tool SIGKILLs its service once; the supervisor restarts it; the call is made again only if idempotent."""
        service = make(
            ToolService, "flaky", tools=[tool_from_callable(tools.die_once, idempotent=idempotent)], supervision=QUICK
        )
        marker = str(tmp_path / "died")
        task_center, _ = one_agent(make, [service], calls(("die_once", {"marker": marker})), "{heard}")
        with logged_events(log_dir) as events:
            reply = texts_by_role(ask(task_center))["ada"]
        restarted = [e for e in of_kind(events, "actor.restarted") if e["actor"] == "flaky"]
        assert len(restarted) == 1
        if idempotent:
            assert reply == f"served by {restarted[0]['new_pid']}"
            assert len(of_kind(events, "tool.call.redelivered")) == 1
        else:
            assert "'die_once' is not declared idempotent, so it was not called again" in reply
            assert len(of_kind(events, "tool.call.failed")) == 1


class TestOpenAIToolCalls:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_streamed_tool_call_deltas_are_assembled_in_every_shape(self, shape: str) -> None:
        """Two parallel calls, streamed as OpenAI does and in each deviant shape, come out whole."""
        reply = tool_reply(("c1", "get_weather", '{"city": "Oslo"}'), ("c2", "add", '{"a": 1, "b": 2}'), shape=shape)
        with OpenAIServer([reply]) as server:
            model = OpenAIChatModel(OpenAIConfig(model="m", api_base=server.api_base))
            items = list(model.stream([], tools=[tools_spec()]))
        assert items == [
            ToolCall("c1", "get_weather", '{"city": "Oslo"}'),
            ToolCall("c2", "add", '{"a": 1, "b": 2}'),
        ]
        assert server.requests[0]["tools"] == [tools_spec()]

    def test_results_go_back_as_tool_messages_after_the_assistant_message(self, make: Make) -> None:
        """The follow-up request holds the assistant message with its tool_calls, then one tool message per call."""
        reply = tool_reply(("c1", "weather", '{"city": "Oslo"}'), ("c2", "weather", '{"city": "Rome"}'))
        with OpenAIServer([reply, "Both mild."]) as server:
            task_center, _ = one_agent_openai(make, server, ["weather"])
            assert texts_by_role(ask(task_center)) == {"ada": "Both mild."}
        first, second = server.requests
        assert [tool["function"]["name"] for tool in first["tools"]] == ["weather"]
        assert second["messages"][-3:] == [
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
                {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
            ]},
            {"role": "tool", "content": "18 C in Oslo", "tool_call_id": "c1"},
            {"role": "tool", "content": "18 C in Rome", "tool_call_id": "c2"},
        ]

    def test_a_model_without_function_calling_is_prompted_react_style(self, make: Make) -> None:
        """No `tools` in the request: the prompt describes them, an Action line calls one, an Observation answers."""
        action = 'Thought: I need the weather.\nAction: weather\nAction Input: {"city": "Oslo"}'
        with OpenAIServer([action, "Oslo is mild."]) as server:
            task_center, _ = one_agent_openai(make, server, ["weather"], function_calling=False)
            frames = ask(task_center)
        assert texts_by_role(frames) == {"ada": "Oslo is mild."}
        assert tool_frames(frames)[1] == ("tool_result", "weather", "18 C in Oslo", False)
        first, second = server.requests
        assert "tools" not in first and "Action Input:" in first["messages"][0]["content"]
        assert second["messages"][-1] == {"role": "user", "content": "Observation: 18 C in Oslo"}


def tools_spec() -> dict[str, Any]:
    return tool_from_callable(tools.weather).spec()


def one_agent_openai(make: Make, server: OpenAIServer, function_list: Sequence[Any], **llm: Any) -> tuple[Any, Any]:
    task_center = make(TaskCenter, "task_center")
    config = {"model_server": "openai", "model": "m", "api_base": server.api_base, **llm}
    agent = make(RolePlay, "ada", llm=config, function_list=function_list)
    task_center.add_agents([agent])
    return task_center, agent


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
def test_the_tools_example_runs_offline(transport: str, tmp_path: Any) -> None:
    """examples/tools.py: a local tool in the agent's process, a shared service in processes of its own."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "tools.py"
    done = subprocess.run(
        [sys.executable, str(example), "--transport", transport, "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "  forecaster: Launch weather: mild and clear in Houston.\n" in done.stdout
    assert '<navigator> \u2699 lookup({"topic": "moon"})' in done.stdout
    assert '"fact": "384,400 km away"' in done.stdout
