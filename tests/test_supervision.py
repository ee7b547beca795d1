"""Supervision: crashed and killed components come back with their state; nothing is lost or done twice."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from actorsim import AgentFailedError, Message, PoisonMessageError, RolePlay, Supervision, TaskCenter
from tests.actors import TouchyAgent
from tests.conftest import Make
from tests.helpers import (
    TASK,
    alive,
    logged_events,
    of_kind,
    restarts_after_kills,
    scripted,
    texts_by_role,
    wait_until_gone,
)

in_processes = pytest.mark.parametrize("mode", ["thespian", "ray"], indirect=True)
"""Modes whose agents are processes of their own, which a test can kill."""

QUICK = Supervision(backoff_initial=0.01, backoff_max=0.05, backoff_jitter=0.0)


def kill(task_center: TaskCenter, name: str) -> int:
    """SIGKILL the process that serves `name` now and wait until it is dead; its pid.

    A process tearing down a large address space still runs for milliseconds:
    a later kill could otherwise pick it again, one death counted twice.
    """
    pid = task_center.runtime.supervisor.current(name).pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    assert not wait_until_gone([pid], timeout=10)
    return pid


def shape(history: list[Message]) -> list[tuple[Any, ...]]:
    """A history without its ids: parents given by their place in it. Two runs of one script compare equal."""
    place = {message.message_id: index for index, message in enumerate(history)}
    return [
        (m.sent_from, m.send_to, m.content, m.step, m.round, tuple(place[p] for p in m.parent_ids)) for m in history
    ]


class TestPolicy:
    def test_backoff_doubles_up_to_its_bound(self) -> None:
        policy = Supervision(backoff_initial=0.1, backoff_max=0.5, backoff_jitter=0.05)
        most = [policy.backoff(n, draw=lambda low, high: high) for n in range(1, 6)]
        assert most == pytest.approx([0.15, 0.25, 0.45, 0.55, 0.55])
        least = [policy.backoff(n, draw=lambda low, high: low) for n in range(1, 6)]
        assert least == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"strategy": "one_for_some"}, "'strategy' must be in"),
            ({"max_restarts": -1}, "max_restarts must be >= 0"),
            ({"within": 0}, "within must be > 0"),
            ({"restarts": 3}, "unexpected keyword argument 'restarts'"),
        ],
    )
    def test_bad_policies_are_refused(self, make: Make, options: dict[str, Any], message: str) -> None:
        with pytest.raises((ValueError, TypeError), match=message):
            make(RolePlay, "joe_biden", llm=scripted("Hi."), supervision=options)


class TestCrash:
    def test_an_agent_that_raises_once_handles_the_message_once(
        self, make: Make, tmp_path: Path, log_dir: Path
    ) -> None:
        """Restarted, the message delivered again, answered once; the log shows crash, restart, redelivery."""
        with logged_events(log_dir) as events:
            task_center = make(TaskCenter, "task_center")
            touchy = make(
                TouchyAgent, "joe_biden", trigger="moon", once_marker=str(tmp_path / "raised"),
                llm=scripted("Artemis.", "Again."), supervision=QUICK,
            )
            task_center.add_agents([touchy, make(RolePlay, "donald_trump", llm=scripted("Rockets."))])
            task = task_center.send_task_request(TASK)
            frames = list(task_center.step())
            assert texts_by_role(frames) == {"joe_biden": "Artemis.", "donald_trump": "Rockets."}
            history = task_center.environment.history()
            assert [m.sent_from for m in history].count("joe_biden") == 1
            assert [(turn.role, turn.content) for turn in touchy.get_history()] == [
                ("user", f"user_requirement: {TASK}"),
                ("assistant", "Artemis."),
            ]
            assert task_center.environment.pending_roles() == ["joe_biden", "donald_trump"]  # each other's replies
            kinds = ("actor.crashed", "actor.restarted", "message.redelivered")
        crashed, restarted, redelivered = (of_kind(events, kind) for kind in kinds)
        assert [e["actor"] for e in crashed] == [e["actor"] for e in restarted] == ["joe_biden"]
        assert "cannot stand 'moon'" in crashed[0]["error"]
        assert redelivered[0]["message_ids"] == [task.message_id]
        assert redelivered[0]["reply_id"] == next(m.message_id for m in history if m.sent_from == "joe_biden")

    def test_a_poison_message_is_dead_lettered_once_the_budget_is_spent(self, make: Make, log_dir: Path) -> None:
        """Two restarts allowed: three crashes, then the message is a dead letter and the step names the role."""
        with logged_events(log_dir) as events:
            task_center = make(TaskCenter, "task_center")
            budget = Supervision(max_restarts=2, within=60, backoff_initial=0.01, backoff_jitter=0.0)
            touchy = make(TouchyAgent, "joe_biden", trigger="moon", llm=scripted("Never."), supervision=budget)
            task_center.add_agents([touchy, make(RolePlay, "donald_trump", llm=scripted("Rockets.", "Still here."))])
            task = task_center.send_task_request(TASK)
            frames: list[Any] = []
            gave_up = "agent 'joe_biden' failed after 2 restarts.*cannot stand"
            with pytest.raises(AgentFailedError, match=gave_up) as raised:
                frames.extend(task_center.step())
            assert raised.value.role == "joe_biden"
            assert texts_by_role(frames) == {"donald_trump": "Rockets."}, "the others answered in the same step"
        assert len(of_kind(events, "actor.restarted")) == 2
        [letter] = task_center.environment.dead_letters()
        assert (letter.message.message_id, letter.role) == (task.message_id, "joe_biden")
        assert "cannot stand 'moon'" in letter.error
        assert task_center.registry.find("joe_biden").status == "failed"
        # The rest keeps working; what the failed agent would need goes to the dead letters, and says so.
        task_center.send_task_request("And Mars?", send_to="donald_trump")
        frames.clear()
        with pytest.raises(AgentFailedError, match="joe_biden"):
            frames.extend(task_center.step())
        assert texts_by_role(frames) == {"donald_trump": "Still here."}
        assert [m.content for m in task_center.environment.history()][-1] == "Still here."
        assert {letter.message.sent_from for letter in task_center.environment.dead_letters()} == {
            "user_requirement", "donald_trump"
        }
        with pytest.raises(AgentFailedError, match="joe_biden"):
            task_center.step(allowed_roles="joe_biden")

    def test_a_step_that_crashes_on_every_delivery_is_dead_lettered_however_slow_its_crashes(
        self, make: Make, log_dir: Path
    ) -> None:
        """A restart budget that never fills (crashes spread out in time) still ends the step: after
        `max_deliveries` its messages are dead letters, and the agent, not given up on, answers the next step."""
        with logged_events(log_dir) as events:
            task_center = make(TaskCenter, "task_center")
            # `within` so short that no two crashes ever count together: only the delivery bound can stop them.
            slow = Supervision(max_restarts=1, within=1e-6, max_deliveries=3, backoff_initial=0.01, backoff_jitter=0.0)
            touchy = make(TouchyAgent, "joe_biden", trigger="moon", llm=scripted("Mars, then."), supervision=slow)
            task_center.add_agents([touchy, make(RolePlay, "donald_trump", llm=scripted("Rockets.", "Sure."))])
            task = task_center.send_task_request(TASK)
            frames: list[Any] = []
            with pytest.raises(PoisonMessageError, match="joe_biden.*3 deliveries.*cannot stand") as raised:
                frames.extend(task_center.step())
            assert isinstance(raised.value, AgentFailedError) and raised.value.role == "joe_biden"
            assert texts_by_role(frames) == {"donald_trump": "Rockets."}, "the others answered in the same step"
            [letter] = task_center.environment.dead_letters()
            assert (letter.message.message_id, letter.role) == (task.message_id, "joe_biden")
            assert task_center.registry.find("joe_biden").status != "failed"
            task_center.send_task_request("Where next?", send_to="joe_biden")
            frames = list(task_center.step(allowed_roles="joe_biden"))
            assert texts_by_role(frames) == {"joe_biden": "Mars, then."}
        assert [e["actor"] for e in of_kind(events, "actor.crashed")] == ["joe_biden"] * 3
        assert len(of_kind(events, "actor.restarted")) == 3, "restarted after the last crash too, for the next step"
        assert of_kind(events, "actor.given_up") == []
        [poisoned] = of_kind(events, "delivery.poisoned")
        assert (poisoned["actor"], poisoned["deliveries"]) == ("joe_biden", 3)

    def test_one_for_all_restarts_the_siblings_with_their_memories(
        self, make: Make, tmp_path: Path, log_dir: Path
    ) -> None:
        with logged_events(log_dir) as events:
            task_center = make(TaskCenter, "task_center")
            policy = Supervision(strategy="one_for_all", backoff_initial=0.01, backoff_jitter=0.0)
            touchy = make(
                TouchyAgent, "joe_biden", trigger="Mars", once_marker=str(tmp_path / "raised"),
                llm=scripted("Moon first.", "Mars later."), supervision=policy,
            )
            trump = make(RolePlay, "donald_trump", llm=scripted("Moon, believe me.", "Mars, big."))
            task_center.add_agents([touchy, trump])
            task_center.send_task_request(TASK)
            list(task_center.step())
            trump_memory = trump.get_history()
            task_center.send_task_request("And Mars?", send_to="joe_biden")
            assert texts_by_role(task_center.step()) == {"joe_biden": "Mars later.", "donald_trump": "Mars, big."}
        restarted = of_kind(events, "actor.restarted")
        assert sorted(e["actor"] for e in restarted) == [
            "donald_trump", "joe_biden", "task_center/environment", "task_center/registry"
        ]
        assert trump.get_history()[: len(trump_memory)] == trump_memory
        assert [m.content for m in task_center.environment.history()][:2] == [TASK, "Moon first."]


@in_processes
class TestKill:
    def test_an_agent_killed_mid_reply_finishes_it_once(self, make: Make, log_dir: Path) -> None:
        """Frames are not shown twice; one reply is published; the memory holds the step once."""
        with logged_events(log_dir) as events:
            task_center = make(TaskCenter, "task_center")
            reply = "one two three four five six seven eight"
            agent = make(RolePlay, "joe_biden", llm=scripted(reply, chunk_latency=0.05), supervision=QUICK)
            task_center.add_agents([agent])
            task_center.send_task_request(TASK)
            frames = []
            for frame in task_center.step():
                if not frames:
                    killed = kill(task_center, "joe_biden")
                frames.append(frame)
            assert "".join(frame.content for frame in frames) == reply
            assert [m.content for m in task_center.environment.history()] == [TASK, reply]
            assert [turn.content for turn in agent.get_history()] == [f"user_requirement: {TASK}", reply]
            assert not alive(killed)
        assert [e["actor"] for e in restarts_after_kills(events)] == ["joe_biden"]

    def test_the_environment_killed_keeps_its_queues_and_history(self, make: Make) -> None:
        task_center = make(TaskCenter, "task_center", supervision=QUICK)
        agents = [make(RolePlay, role, llm=scripted(f"{role} says hi.", f"{role} again.")) for role in ("a", "b")]
        task_center.add_agents(agents)
        task_center.send_task_request(TASK)
        list(task_center.step())
        history, pending = task_center.environment.history(), task_center.environment.pending("a")
        kill(task_center, "task_center/environment")
        assert task_center.environment.history() == history
        assert task_center.environment.pending("a") == pending
        # Killed again in the middle of a step: the step completes, and every reply is there once.
        frames = []
        for frame in task_center.step():
            if not frames:
                kill(task_center, "task_center/environment")
            frames.append(frame)
        assert texts_by_role(frames) == {"a": "a again.", "b": "b again."}
        assert [m.content for m in task_center.environment.history()] == [
            TASK, "a says hi.", "b says hi.", "a again.", "b again."
        ]
        assert task_center.environment.pending_roles() == ["a", "b"]


def chaos_run(make: Make, kills: random.Random | None) -> tuple[TaskCenter, dict[str, Any], list[int]]:
    """20 agents debate for 10 rounds; with `kills`, some agent is SIGKILLed every few frames."""
    task_center = make(TaskCenter, "task_center")
    policy = Supervision(max_restarts=20, within=60, backoff_initial=0.01, backoff_jitter=0.0)
    agents = {
        f"agent_{n}": make(
            RolePlay, f"agent_{n}", supervision=policy,
            llm=scripted(*(f"agent_{n} point {k} stands." for k in range(3)), chunk_latency=0.002),
        )
        for n in range(20)
    }
    task_center.add_agents(list(agents.values()))
    task_center.send_task_request(TASK)
    killed: list[int] = []
    for _ in range(10):
        for count, _frame in enumerate(task_center.step(), start=1):
            if kills is not None and count % 37 == 0:
                name = kills.choice(sorted(agents))
                pid = task_center.runtime.supervisor.current(name).pid
                if pid is not None and alive(pid):
                    killed.append(kill(task_center, name))
    return task_center, agents, killed


@in_processes
def test_chaos_agents_killed_at_random_leave_no_trace(make: Make, log_dir: Path) -> None:
    """The final history and every memory equal those of a run without faults; every kill was a restart."""
    with logged_events(log_dir) as events:
        task_center, agents, killed = chaos_run(make, random.Random(7))
        history = task_center.environment.history()
        memories = {name: agent.get_history() for name, agent in agents.items()}

        def plain(cls: type, name: str, **options: Any) -> Any:
            return cls(name=name, log_dir=None) if cls is TaskCenter else cls(name=name, **options)

        calm, calm_agents, _ = chaos_run(plain, None)
        assert len(killed) >= 5
        assert shape(history) == shape(calm.environment.history())
        assert len({m.message_id for m in history}) == len(history) == 1 + 10 * 20
        assert memories == {name: agent.get_history() for name, agent in calm_agents.items()}
    assert len(restarts_after_kills(events)) == len(killed)


@in_processes
def test_a_killed_agent_restarts_while_the_others_still_stream(make: Make, log_dir: Path) -> None:
    """A restart does not wait for the step's end: the killed agent is back before a slow sibling has finished."""
    with logged_events(log_dir) as events:
        task_center = make(TaskCenter, "task_center")
        slow = make(RolePlay, "slow", llm=scripted(" ".join(["word"] * 60), chunk_latency=0.05))
        doomed = make(RolePlay, "doomed", llm=scripted("one two three four", chunk_latency=0.05), supervision=QUICK)
        task_center.add_agents([slow, doomed])
        task_center.send_task_request(TASK)
        frames = []
        for frame in task_center.step():
            if frame.role == "doomed" and not any(f.role == "doomed" for f in frames):
                kill(task_center, "doomed")
            frames.append(frame)
    assert texts_by_role(frames)["doomed"] == "one two three four"
    order = [
        (e["event"], e.get("actor") if e["event"] == "actor.restarted" else e["role"])
        for e in of_kind(events, "actor.restarted", "llm.call.finished")
    ]
    assert order.index(("actor.restarted", "doomed")) < order.index(("llm.call.finished", "slow"))
