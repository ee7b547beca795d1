"""Routing policies: groups and topics, every policy in every mode, bad input, restarts and replay."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from actorsim import (
    AgentFailedError,
    Hash,
    LeastPending,
    Message,
    Random,
    RolePlay,
    RoundRobin,
    RoutingError,
    Supervision,
    TaskCenter,
    Topic,
)
from actorsim.runs import read_run
from tests.actors import TouchyAgent
from tests.conftest import Make
from tests.helpers import logged_events, of_kind, record_then_replay, scripted
from tests.test_replay import actorsim_command, frames
from tests.test_supervision import kill

WORKERS = ("w0", "w1", "w2")


def swarm(make: Make, *, boss: dict[str, Any] | None = None, **worker_options: Any) -> TaskCenter:
    """A boss outside the group, three workers in group "workers" (w1 also subscribed to "news")."""
    task_center: TaskCenter = make(TaskCenter, "task_center")
    agents = [make(RolePlay, "boss", llm=scripted(*(f"order {k}" for k in range(9))), **(boss or {}))]
    for role in WORKERS:
        agents.append(make(
            RolePlay, role, llm=scripted(*(f"{role} done {k}" for k in range(9))), group="workers",
            topics=["news"] if role == "w1" else [], **worker_options,
        ))
    task_center.add_agents(agents)
    return task_center


def recipients(task_center: TaskCenter, send_to: Any, times: int) -> list[tuple[str, ...]]:
    return [task_center.send_task_request(f"job {n}", send_to=send_to).send_to for n in range(times)]


class TestGroupsAndTopics:
    def test_the_registry_lists_groups_and_topics_declared_with_agents_or_at_add_agents(self, make: Make) -> None:
        """`group=`/`topics=` of the agent and of `add_agents` both end up in the Registry's AgentInfo."""
        task_center = swarm(make)
        extra = make(RolePlay, "late", llm=scripted("hi"), topics=["news"])
        task_center.add_agents([extra], group="workers", topics=["sports"])
        found = {info.role: (info.group, info.topics) for info in task_center.registry.agents()}
        assert found == {
            "boss": (None, ()), "w0": ("workers", ()), "w1": ("workers", ("news",)), "w2": ("workers", ()),
            "late": ("workers", ("news", "sports")),
        }

    def test_a_group_different_from_the_declared_one_is_refused(self, make: Make) -> None:
        task_center = make(TaskCenter, "task_center")
        agent = make(RolePlay, "w0", llm=scripted("hi"), group="spiders")
        with pytest.raises(ValueError, match="'w0' is in group 'spiders' already, not 'workers'"):
            task_center.add_agents([agent], group="workers")
        assert task_center.registry.agents() == []

    def test_the_chat_rooms_roles_table_shows_them(self) -> None:
        pytest.importorskip("gradio")
        from actorsim.ui import ChatRoom
        from actorsim.ui._gradio import _Session

        task_center = TaskCenter(log_dir=None)
        task_center.add_agents([
            RolePlay("ada", llm=scripted("hi"), group="spiders", topics=["pages", "news"]),
            RolePlay("bruno", llm=scripted("hi")),
        ])
        table = _Session(ChatRoom(task_center)).roles_table()
        assert "| group |" in table.splitlines()[0]
        [ada] = [line for line in table.splitlines() if ">ada<" in line]
        assert "| spiders #pages #news |" in ada


class TestRoundRobin:
    def test_it_takes_turns_through_the_group_from_the_first_when_asked(self, make: Make) -> None:
        task_center = swarm(make)
        assert recipients(task_center, RoundRobin("workers", start="first"), 5) == [
            ("w0",), ("w1",), ("w2",), ("w0",), ("w1",)
        ]

    def test_a_seeded_start_is_reproducible_and_not_always_the_first(self) -> None:
        """The same seed starts at the same agent; over ten seeds the start is not always w0."""
        def starts(seed: int) -> tuple[str, ...]:
            task_center = TaskCenter(log_dir=None)
            task_center.add_agents([RolePlay(role, llm=scripted("x"), group="workers") for role in WORKERS])
            return task_center.send_task_request("job", send_to=RoundRobin("workers", seed=seed)).send_to

        firsts = [starts(seed) for seed in range(10)]
        assert firsts == [starts(seed) for seed in range(10)]
        assert len(set(firsts)) > 1

    def test_each_agent_routes_its_own_replies_and_each_decision_is_logged(self, make: Make, log_dir: Path) -> None:
        """The boss's own `send_to` spreads its orders; the sender is skipped; the log has policy and roles."""
        with logged_events(log_dir) as events:
            task_center = swarm(make, boss={"send_to": RoundRobin("workers", start="first")})
            task_center.send_task_request("start", send_to="boss")
            for _ in range(4):
                list(task_center.step(allowed_roles="boss"))
            orders = [m.send_to for m in task_center.environment.history() if m.sent_from == "boss"]
        assert orders == [("w0",), ("w1",), ("w2",), ("w0",)]
        routed = of_kind(events, "message.routed")
        assert [(e["sent_from"], e["roles"]) for e in routed] == [("boss", list(roles)) for roles in orders]
        assert routed[0]["policy"] == "RoundRobin(group='workers', start='first', seed=None)"
        # A step's `send_to` overrides the agents' own; a worker is never sent its own reply.
        list(task_center.step(send_to=RoundRobin("workers", start="first")))
        replies = {m.sent_from: m.send_to for m in task_center.environment.history()[-3:]}
        assert all(role not in sent_to for role, sent_to in replies.items())


class TestRandom:
    def test_k_distinct_members_drawn_from_a_seed(self, make: Make) -> None:
        task_center = swarm(make)
        drawn = recipients(task_center, Random("workers", k=2, seed=11), 8)
        assert all(len(set(roles)) == 2 and set(roles) <= set(WORKERS) for roles in drawn)
        again = TaskCenter(log_dir=None)
        again.add_agents([RolePlay(role, llm=scripted("x"), group="workers") for role in WORKERS])
        assert recipients(again, Random("workers", k=2, seed=11), 8) == drawn, "the same seed draws the same"
        assert len(set(drawn)) > 1


class TestTopic:
    def test_every_subscriber_but_the_sender(self, make: Make) -> None:
        task_center = swarm(make)
        late = make(RolePlay, "late", llm=scripted("late says news"), topics=["news"], send_to=Topic("news"))
        task_center.add_agents([late])
        assert task_center.send_task_request("headline", send_to=Topic("news")).send_to == ("w1", "late")
        list(task_center.step(allowed_roles="late"))
        assert task_center.environment.history()[-1].send_to == ("w1",)


class TestHash:
    def test_the_same_key_reaches_the_same_live_agent(self, make: Make) -> None:
        """Pages of one host go to one agent; when an agent fails, only its hosts move."""
        task_center = make(TaskCenter, "task_center")
        budget = Supervision(max_restarts=0, backoff_initial=0.0, backoff_jitter=0.0)
        task_center.add_agents([
            make(TouchyAgent, role, trigger="poison", llm=scripted(*["ok"] * 9), group="spiders", supervision=budget)
            for role in WORKERS
        ])
        by_host = Hash("spiders", key=lambda message: message.content.split("/")[2])
        hosts = [f"h{n}.example" for n in range(12)]
        placed = {host: task_center.send_task_request(f"http://{host}/a", send_to=by_host).send_to for host in hosts}
        assert all(
            task_center.send_task_request(f"http://{host}/b", send_to=by_host).send_to == placed[host] for host in hosts
        )
        assert len(set(placed.values())) > 1, "twelve hosts spread over the group"
        task_center.send_task_request("poison", send_to="w1")
        with pytest.raises(AgentFailedError, match="w1"):
            list(task_center.step())
        after = {host: task_center.send_task_request(f"http://{host}/c", send_to=by_host).send_to for host in hosts}
        assert all(after[host] == placed[host] for host in hosts if placed[host] != ("w1",))
        assert all(after[host] != ("w1",) for host in hosts)


class TestLeastPending:
    def test_the_shortest_queue_the_first_of_equals(self, make: Make) -> None:
        task_center = swarm(make)
        task_center.send_task_request("a", send_to="w0")
        task_center.send_task_request("b", send_to="w0")
        task_center.send_task_request("c", send_to="w1")
        assert recipients(task_center, LeastPending("workers"), 3) == [("w2",), ("w1",), ("w2",)]


class TestRoutingFunction:
    def test_a_function_gets_the_message_and_the_registry(self, make: Make, log_dir: Path) -> None:
        def by_topic(message: Message, registry: Any) -> list[str]:
            return [info.role for info in registry.agents() if info.group == "workers" and message.content in info.role]

        with logged_events(log_dir) as events:
            task_center = swarm(make)
            assert task_center.send_task_request("w2", send_to=by_topic).send_to == ("w2",)
        [routed] = of_kind(events, "message.routed")
        assert routed["policy"].endswith("by_topic") and routed["roles"] == ["w2"]


def _returns_a_stranger(message: Message, registry: Any) -> list[str]:
    return ["w1", "zed"]


def _raises(message: Message, registry: Any) -> list[str]:
    raise KeyError("no route today")


BAD = [
    pytest.param(RoundRobin("nobody"), "RoundRobin\\(group='nobody'.*unknown group 'nobody'; known groups: workers",
                 id="unknown-group"),
    pytest.param(Topic("sports"), "Topic\\(name='sports'\\): unknown topic 'sports'; known topics: news",
                 id="unknown-topic"),
    pytest.param(_returns_a_stranger, "_returns_a_stranger returned unknown roles \\['zed'\\]", id="unknown-roles"),
    pytest.param(_raises, "_raises raised KeyError: 'no route today'", id="raises"),
]


class TestBadInput:
    @pytest.mark.parametrize(("send_to", "error"), BAD)
    def test_a_task_is_refused_before_anything_is_stored(self, make: Make, send_to: Any, error: str) -> None:
        task_center = swarm(make)
        with pytest.raises(RoutingError, match=error):
            task_center.send_task_request("job", send_to=send_to)
        assert task_center.environment.history() == []
        assert task_center.environment.pending_roles() == []

    @pytest.mark.parametrize(("send_to", "error"), BAD[:2])
    def test_a_step_naming_an_unknown_group_or_topic_is_refused_before_it_runs(
        self, make: Make, send_to: Any, error: str
    ) -> None:
        task_center = swarm(make)
        task_center.send_task_request("job", send_to="w0")
        with pytest.raises(RoutingError, match=error):
            task_center.step(send_to=send_to)
        assert task_center.environment.pending_roles() == ["w0"]

    def test_an_agent_whose_send_to_names_an_unknown_group_is_refused_with_its_batch(self, make: Make) -> None:
        task_center = make(TaskCenter, "task_center")
        agents = [
            make(RolePlay, "w0", llm=scripted("x"), group="workers"),
            make(RolePlay, "boss", llm=scripted("x"), send_to=RoundRobin("spiders")),
        ]
        with pytest.raises(RoutingError, match="boss's send_to: RoundRobin\\(group='spiders'.*known groups: workers"):
            task_center.add_agents(agents)
        assert task_center.registry.agents() == [] and task_center.roles == []

    @pytest.mark.parametrize(("send_to", "error"), BAD[2:])
    def test_a_reply_a_function_cannot_route_is_not_stored_and_is_made_again(
        self, make: Make, send_to: Any, error: str
    ) -> None:
        """The step raises naming the policy; the reply is not published; the next step answers once."""
        task_center = swarm(make)
        task = task_center.send_task_request("job", send_to="w0")
        with pytest.raises(RoutingError, match=error):
            list(task_center.step(send_to=send_to))
        assert task_center.environment.history() == [task]
        assert task_center.environment.pending("w0") == [task]
        list(task_center.step(send_to="w1"))
        assert [(m.sent_from, m.send_to, m.content) for m in task_center.environment.history()[1:]] == [
            ("w0", ("w1",), "w0 done 0")
        ]
        assert [turn.content for turn in task_center._steps.state().memories["w0"]] == [
            "user_requirement: job", "w0 done 0"
        ], "the step is in w0's memory once"

    def test_wrong_types_and_values_are_refused_by_name(self) -> None:
        with pytest.raises(ValueError, match="k must be an int >= 1"):
            Random("workers", k=0)
        with pytest.raises(TypeError, match="Hash: key must be a callable"):
            Hash("workers", key="host")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="RoundRobin: group must be a non-empty str"):
            RoundRobin("")
        with pytest.raises(ValueError, match="'start' must be in"):
            RoundRobin("workers", start="last")
        with pytest.raises(TypeError, match="send_to must be a role, a list of roles"):
            RolePlay("ada", llm=scripted("x"), send_to=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["thespian", "ray"], indirect=True)
def test_routing_state_survives_an_environment_restart(make: Make) -> None:
    """Killed between and during routed steps, the Environment comes back; the rotation and draws go on."""
    def routed(task_center: TaskCenter, killing: bool) -> list[tuple[str, ...]]:
        task_center.send_task_request("start", send_to="boss")
        for n in range(4):
            if killing and n == 1:
                kill(task_center, "task_center/environment")
            for count, _frame in enumerate(task_center.step(allowed_roles="boss")):
                if killing and n == 2 and count == 0:
                    kill(task_center, "task_center/environment")
            task_center.send_task_request(f"draw {n}", send_to=Random("workers", seed=4))
        return [m.send_to for m in task_center.environment.history()]

    killed = routed(swarm(make, boss={"send_to": RoundRobin("workers", seed=9)}), killing=True)

    def plain(cls: type, name: str, **options: Any) -> Any:
        return cls(name=name, log_dir=None) if cls is TaskCenter else cls(name=name, **options)

    calm = routed(swarm(plain, boss={"send_to": RoundRobin("workers", seed=9)}), killing=False)
    assert killed == calm
    assert len(killed) == 9


def test_a_routed_run_replays_in_process(tmp_path: Path) -> None:
    """Unseeded policies draw from the task center's routing seed; the replay is given the recorded one."""
    def program(**options: Any) -> TaskCenter:
        task_center = TaskCenter(log_dir=tmp_path / "logs", **options)
        agents = [RolePlay("boss", llm=scripted(*(f"order {k}" for k in range(6))), send_to=RoundRobin("workers"))]
        agents += [RolePlay(role, llm=scripted(*(f"{role} {k}" for k in range(6)))) for role in WORKERS]
        task_center.add_agents(agents[1:], group="workers")  # before the boss, whose send_to names their group
        task_center.add_agents(agents[:1])
        task_center.send_task_request("start", send_to=Random("workers", k=2))
        for _ in range(3):
            list(task_center.step(send_to=Random("workers")))
            list(task_center.step(allowed_roles="boss"))
        return task_center

    original, history, replay, replayed = record_then_replay(program)
    assert replay.matched == replay.recorded == len(history)
    assert [(m.message_id, m.send_to) for m in replayed.environment.history()] == [
        (m.message_id, m.send_to) for m in history
    ]
    replayed.close()
    seeds = [read_run(folder).of_type("routing.seeded")[0]["seed"] for folder in (original, replay_folder(tmp_path))]
    assert seeds[0] == seeds[1]


def replay_folder(tmp_path: Path) -> Path:
    return max((tmp_path / "logs").iterdir())


SWARM = """
import sys
import actorsim
from actorsim import RolePlay, RoundRobin, Random, TaskCenter, create_component

with actorsim.init(transport=sys.argv[1], hosts=int(sys.argv[2]) if len(sys.argv) > 2 else None):
    tc = create_component(TaskCenter, name="task_center", remote=True)
    llm = lambda role: {"model_server": "scripted", "replies": [f"{role} says {k}." for k in range(4)]}
    workers = [create_component(RolePlay, name=role, remote=True, llm=llm(role)) for role in ("w0", "w1", "w2")]
    tc.add_agents(workers, group="workers")
    boss = create_component(RolePlay, name="boss", remote=True, llm=llm("boss"), send_to=RoundRobin("workers"))
    tc.add_agents([boss])
    print("agent processes:", len({agent.ref.pid for agent in [*workers, boss]}))
    tc.send_task_request("Start.", send_to=Random("workers"))
    for _ in range(3):
        for frame in tc.step():
            print(frame)
    for message in tc.environment.history():
        print("routed", message.sent_from, "->", ",".join(message.send_to))
"""


@pytest.mark.parametrize(
    ("transport", "hosts"), [("local", None), ("thespian", None), ("ray", None), ("thespian", 2), ("ray", 2)]
)
def test_a_routed_run_replays_from_the_command_line(transport: str, hosts: int | None, tmp_path: Path) -> None:
    """Recorded, then replayed by `actorsim replay`: the same routes and frames, agents hosted or not."""
    (tmp_path / "swarm.py").write_text(SWARM)
    recorded = actorsim_command_run(tmp_path, transport, *([] if hosts is None else [str(hosts)]))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    replayed = actorsim_command(tmp_path, "replay", "latest")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"agent processes: {hosts or (1 if transport == 'local' else 4)}" in recorded.stdout
    routes = [line for line in recorded.stdout.splitlines() if line.startswith("routed")]
    assert [line for line in replayed.stdout.splitlines() if line.startswith("routed")] == routes
    assert by_role(replayed.stdout) == by_role(recorded.stdout) != {}, "concurrent frames interleave differently"
    assert f"replay matched {len(routes)} messages" in replayed.stdout


def by_role(output: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for line in frames(output):
        role, chunk = line[1:].split(">: ", 1)
        texts[role] = texts.get(role, "") + chunk
    return texts


def actorsim_command_run(tmp_path: Path, transport: str, *arguments: str) -> Any:
    from tests.test_replay import run

    return run([sys.executable, "swarm.py", transport, *arguments], tmp_path)
