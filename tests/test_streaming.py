"""Frames stream while replies are generated, and a step's responders run at once."""

from __future__ import annotations

from pathlib import Path

from actorsim import RolePlay, TaskCenter
from actorsim.llm import ScriptedConfig, ScriptedModel
from tests.conftest import Make
from tests.gates import Barrier, Gate
from tests.helpers import TASK

ONCE = {"max_restarts": 0}
"""A model that gives up waiting fails the step at once, rather than after restarts."""


class TestStreaming:
    def test_the_first_frame_arrives_before_the_reply_is_finished(self, make: Make, tmp_path: Path) -> None:
        """A model's first word reaches the caller while it is still producing the rest.

        The model makes its second word only once the test has seen the first: a frame that waited
        for the end of the reply would never come, and the model would give up waiting.
        """
        gate = Gate(tmp_path, timeout=30)
        model = ScriptedModel(ScriptedConfig(["one two three four five six"], chunk_latency=0.15), sleep=gate)
        task_center = make(TaskCenter, "task_center")
        slow = make(RolePlay, "slow", llm=model, supervision=ONCE)
        task_center.add_agents([slow])
        task_center.send_task_request(TASK)
        arrivals = []
        for frame in task_center.step():
            arrivals.append((gate.is_open(), frame))
            gate.open()
        first_seen_with_gate_open, first_frame = arrivals[0]
        assert first_frame.content == "one "
        assert not first_seen_with_gate_open, "the first frame came before the reply was finished"
        assert len(arrivals) == 6


class TestConcurrency:
    def test_twenty_slow_agents_answer_at_once(self, make: Make, tmp_path: Path) -> None:
        """20 agents of one step are all producing at once: each model answers only when all 20 are waiting."""
        barrier = Barrier(tmp_path, parties=20, timeout=60)
        task_center = make(TaskCenter, "task_center")
        agents = [
            make(
                RolePlay, f"agent_{n}", supervision=ONCE,
                llm=ScriptedModel(ScriptedConfig([f"reply {n}"], reply_latency=0.3), sleep=barrier),
            )
            for n in range(20)
        ]
        task_center.add_agents(agents)
        task_center.send_task_request(TASK)
        frames = list(task_center.step())
        assert {frame.role for frame in frames} == {f"agent_{n}" for n in range(20)}
