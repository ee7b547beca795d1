"""Frames stream while replies are generated, and a step's responders run at once."""

from __future__ import annotations

import time

from actorsim import RolePlay, TaskCenter
from tests.conftest import Make
from tests.helpers import TASK, scripted


class TestStreaming:
    def test_the_first_frame_arrives_before_the_reply_is_finished(self, make: Make) -> None:
        """A slow model's first words reach the caller while it is still producing the rest."""
        task_center = make(TaskCenter, "task_center")
        slow = make(RolePlay, "slow", llm=scripted("one two three four five six", chunk_latency=0.15))
        task_center.add_agents([slow])
        task_center.send_task_request(TASK)
        arrivals = [(time.time(), frame) for frame in task_center.step()]
        reply = task_center.environment.history()[-1]
        first_arrival, first_frame = arrivals[0]
        assert first_frame.content == "one "
        # The reply is made once its last chunk is produced, five chunk latencies after the first.
        assert first_arrival < reply.created_at - 0.5
        assert len(arrivals) == 6


class TestConcurrency:
    def test_twenty_slow_agents_take_about_one_latency(self, make: Make, mode: str) -> None:
        """20 agents whose model takes 0.3 s each finish one step well under the 6 s sum."""
        task_center = make(TaskCenter, "task_center")
        agents = [make(RolePlay, f"agent_{n}", llm=scripted(f"reply {n}", reply_latency=0.3)) for n in range(20)]
        task_center.add_agents(agents)
        task_center.send_task_request(TASK)
        started = time.perf_counter()
        frames = list(task_center.step())
        elapsed = time.perf_counter() - started
        print(f"\n[{mode}] one step of 20 agents x 0.3 s model latency: {elapsed:.2f} s (sum of latencies 6.0 s)")
        assert {frame.role for frame in frames} == {f"agent_{n}" for n in range(20)}
        assert elapsed < 2.0
