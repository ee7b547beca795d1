"""Budgets: once a run's tokens or cost are spent no new model call starts, and the program can go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import actorsim
from actorsim import Budget, BudgetExceeded, RolePlay, Runtime, TaskCenter, create_component
from actorsim.cli import main as cli_main
from actorsim.runs import read_run
from tests.conftest import own_runtime
from tests.openai_server import OpenAIServer

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


def test_a_bad_budget_is_named() -> None:
    with pytest.raises(ValueError, match="Budget: tokens must be a number > 0"):
        Budget(tokens=0)
    with pytest.raises(TypeError, match="budget must be a Budget"):
        actorsim.init(transport="local", log_dir=None, budget=100)
