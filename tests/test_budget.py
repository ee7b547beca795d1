"""Budgets: once a run's tokens or cost are spent no new model call starts, and the program can go on."""

from __future__ import annotations

import collections
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import actorsim
from actorsim import Budget, BudgetExceeded, RolePlay, Runtime, TaskCenter, create_component
from actorsim._core.budget import Allowance, SpendCheck, Spent
from actorsim._engine.permits import StepPermits
from actorsim._protocol.agent import ResumeStep
from actorsim._runtime.interventions import Interventions
from actorsim._runtime.limits import Limits
from actorsim._runtime.spending import Spending
from actorsim.cli import main as cli_main
from actorsim.runs import read_run
from tests import tools  # noqa: F401 - registers the tool "weather"
from tests.conftest import own_runtime
from tests.openai_server import OpenAIServer, weather_then_answer

CALL_TOKENS = 7 + 3
"""What each call costs on the test server: 7 prompt tokens, and a reply of 3 words."""


def debate(runtime: Runtime, api_base: str) -> list[tuple[str, Any]]:
    """Two agents, five steps, the budget raised on the way: what each step did (its replies, or what was spent)."""
    llm = {"model_server": "openai", "model": "m", "api_base": api_base, "api_key": "k"}
    center = create_component(TaskCenter, name="thrifty", remote=True, runtime=runtime)
    center.add_agents([create_component(RolePlay, name=role, remote=True, runtime=runtime, llm=llm)
                       for role in ("ann", "bob")])
    center.send_task_request("Rockets or balloons?")
    outcomes: list[tuple[str, Any]] = []
    for number in range(1, 6):
        if number == 3:
            runtime.budget = Budget(tokens=1000, per_agent_tokens=25)
        try:
            frames = list(center.step())
        except BudgetExceeded as spent:
            outcomes.append(("spent", (spent.spent, spent.waiting, center.environment.pending_roles())))
        else:
            outcomes.append(("answered", sorted({frame.role for frame in frames})))
    return outcomes


EXPECTED = [
    ("answered", ["ann", "bob"]),  # nothing spent yet: both calls start, and overshoot the 15 by one call
    ("spent", ("tokens: 20 of 15", ("ann", "bob"), ["ann", "bob"])),  # no call starts; their messages wait
    ("answered", ["ann", "bob"]),  # the budget raised: the run goes on where it was
    ("answered", ["ann", "bob"]),  # 20 each: under 25
    ("spent", ("ann's tokens: 30 of 25", ("ann", "bob"), ["ann", "bob"])),
]


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
def test_a_spent_budget_stops_new_calls_and_the_run_goes_on_once_raised(transport: str, tmp_path: Path) -> None:
    with OpenAIServer(["Up we go."]) as server:
        with own_runtime(transport, tmp_path, budget=Budget(tokens=15)) as runtime:
            assert debate(runtime, server.api_base) == EXPECTED
            directory = runtime.log_config.directory
    assert len(server.requests) == 2 * 3, "no call started once the budget was spent"
    run = read_run(directory)
    exhausted = run.of_type("budget.exhausted")
    assert [e["spent"] for e in exhausted] == ["tokens: 20 of 15", "ann's tokens: 30 of 25"]
    assert run.total_usage.total_tokens == 6 * CALL_TOKENS
    listed = CliRunner().invoke(cli_main, ["--log-dir", str(tmp_path), "runs"], terminal_width=300)
    assert "budget spent (ann's tokens: 30 of 25)" in listed.output


def test_a_replay_spends_its_budget_where_the_recording_did(tmp_path: Path) -> None:
    """Replayed calls count the tokens they were recorded with: the budget runs out at the same steps, offline."""
    with OpenAIServer(["Up we go."]) as server:
        with own_runtime("local", tmp_path, budget=Budget(tokens=15)) as runtime:
            assert debate(runtime, server.api_base) == EXPECTED
            recording = runtime.log_config.directory
    with actorsim.init(transport="local", log_dir=tmp_path, replay=recording, budget=Budget(tokens=15)) as replay:
        assert debate(replay, "http://127.0.0.1:9/v1") == EXPECTED  # the server is gone: every call is from the log


TOOL_ROLES = ("ann", "bob", "cy", "dee")


def tool_steps(runtime: Runtime, api_base: str) -> list[tuple[str, Any]]:
    """Four agents that call a tool between two model calls: a step on a spent budget, then one with it lifted."""
    llm = {"model_server": "openai", "model": "m", "api_base": api_base, "api_key": "k"}
    center = create_component(TaskCenter, name="thrifty_tools", remote=True, runtime=runtime)
    agents = [create_component(RolePlay, name=role, remote=True, runtime=runtime, llm=llm, function_list=["weather"])
              for role in TOOL_ROLES]
    center.add_agents(agents)
    center.send_task_request("What is the weather in Oslo?")
    outcomes: list[tuple[str, Any]] = []
    for _ in range(2):
        try:
            frames = list(center.step())
        except BudgetExceeded as spent:
            memories = {agent.role: len(agent.get_history()) for agent in agents}
            outcomes.append(("spent", (spent.waiting, center.environment.pending_roles(), memories)))
            runtime.budget = None
        else:
            replies = dict.fromkeys(TOOL_ROLES, "")
            for frame in frames:
                replies[frame.role] += frame.content
            outcomes.append(("answered", replies))
    return outcomes


TOOL_EXPECTED = [
    # Every first call starts (nothing is spent yet) and spends 10 tokens of the 1: no second call starts. The
    # steps are withdrawn: their messages wait, and their agents remember nothing of them.
    ("spent", (TOOL_ROLES, list(TOOL_ROLES), dict.fromkeys(TOOL_ROLES, 0))),
    ("answered", dict.fromkeys(TOOL_ROLES, "Mild and clear.")),  # the budget lifted: the steps are made again
]


@pytest.mark.parametrize("transport", ["local", "thespian", "ray"])
@pytest.mark.parametrize("hosts", [None, 2], ids=["own-actors", "hosted"])
def test_a_step_that_ran_its_tools_starts_no_model_call_once_the_budget_is_spent(
    transport: str, hosts: int | None, tmp_path: Path
) -> None:
    with OpenAIServer(weather_then_answer) as server:
        with own_runtime(transport, tmp_path, budget=Budget(tokens=1), hosts=hosts) as runtime:
            assert tool_steps(runtime, server.api_base) == TOOL_EXPECTED
            directory = runtime.log_config.directory
    asked = [body["messages"][-1]["role"] for body in server.requests]
    assert asked.count("tool") == len(TOOL_ROLES), "no call after a tool started until the budget was lifted"
    assert len(asked) == 3 * len(TOOL_ROLES), "the withdrawn steps were made again, whole"
    run = read_run(directory)
    refused = run.of_type("budget.call_refused")
    assert sorted(e["actor"] for e in refused) == sorted(TOOL_ROLES)
    assert all(e["call"] == 2 and e["spent"].startswith("tokens: ") for e in refused)
    assert run.total_usage.total_tokens == 3 * len(TOOL_ROLES) * CALL_TOKENS, "the withdrawn steps' calls count"


def test_a_replay_stops_the_calls_the_recording_stopped(tmp_path: Path) -> None:
    with OpenAIServer(weather_then_answer) as server:
        with own_runtime("local", tmp_path, budget=Budget(tokens=1)) as runtime:
            assert tool_steps(runtime, server.api_base) == TOOL_EXPECTED
            recording = runtime.log_config.directory
    with actorsim.init(transport="local", log_dir=tmp_path, replay=recording, budget=Budget(tokens=1)) as replay:
        assert tool_steps(replay, "http://127.0.0.1:9/v1") == TOOL_EXPECTED


def test_the_run_lends_steps_what_is_neither_spent_nor_lent() -> None:
    spending = Spending(Budget(tokens=100, per_agent_tokens=30))
    assert spending.lend(["a", "b"]) == {"a": Allowance(25, None), "b": Allowance(25, None)}  # 100 / (2 x 2)
    spending.add("a", 10, 0.0)  # a's call uses 10 of its 25
    spending.add("z", 28, 0.0)  # z, with no allowance (a call past one), spends what no one was lent
    # Spent 38, lent 15 + 25: 22 is spare, shared as if the 3 steps in flight were 6.
    assert spending.lend(["c"])["c"].tokens == pytest.approx(22 / 6)
    # z may spend 2 more of its own 30, less than its share of the run's.
    assert spending.lend(["z"]) == {"z": Allowance(2, None)}
    spending.end("b")  # its 25 comes back
    assert spending.lend(["e"])["e"].tokens == pytest.approx((100 - 38 - (15 + 22 / 6 + 2)) / 8)
    assert Spending(Budget(cost=1.0)).lend(["a"]) == {"a": Allowance(None, 0.5)}, "a cost budget lends cost"
    assert Spending(None).lend(["a"]) is None, "no budget: nothing bounds a step"


def test_a_later_call_waits_while_every_spare_token_is_lent_and_goes_once_one_comes_back() -> None:
    spending = Spending(Budget(tokens=100))
    runtime = types.SimpleNamespace(
        limits=Limits(), spending=spending, hosts_agents=False, host_of=lambda name: None,
        interventions=Interventions(), log=lambda *args, **fields: None,
    )
    permits = StepPermits(runtime, calls_model=lambda name: True, on_blocked=lambda name: None)  # type: ignore[arg-type]
    assert spending.lend(["a", "b"]) == {"a": Allowance(25, None), "b": Allowance(25, None)}
    spending.add("b", 80, 0.0)  # b's one call: 25 of it lent, 55 past it; a holds its 25 unused
    resumed: collections.deque[tuple[str, Any]] = collections.deque()
    permits.spend_check("b", "r-b", SpendCheck(2), resumed)
    assert not resumed and permits.held_back() is not None, "80 spent and 25 lent to a: b waits"
    permits.replied("a")  # a's step answers without using its 25
    permits.let_go(resumed)
    [(name, answer)] = resumed
    assert name == "b" and isinstance(answer, ResumeStep) and answer.outcome == Allowance(10, None)  # 20 / (2 x 1)
    spending.add("b", 30, 0.0)
    permits.spend_check("b", "r-b", SpendCheck(3), resumed)
    assert resumed[-1][1].outcome == Spent("tokens: 110 of 100")
    assert permits.blocked == {"b": "tokens: 110 of 100"}


def test_a_bad_budget_is_named() -> None:
    with pytest.raises(ValueError, match="Budget: tokens must be a number > 0"):
        Budget(tokens=0)
    with pytest.raises(TypeError, match="budget must be a Budget"):
        actorsim.init(transport="local", log_dir=None, budget=100)
