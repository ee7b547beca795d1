"""Ray cluster options without a cluster: joining, placement, node choice, the run log's sink.

The real two-node cluster is `tests/test_cluster.py`; these check the rules
each piece follows, on fakes where Ray would take seconds.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

import actorsim
from actorsim import ClusterUnreachableError, PlacementError, RolePlay, Runtime, TaskCenter, create_component
from actorsim._core.options import RunOptions
from actorsim._core.placement import Placement, placement_from
from actorsim._core.supervision import Supervision
from actorsim._logsink import LogSink
from actorsim._runlog import RunLog, RunLogConfig
from actorsim._runtime.runtime import new_run_id
from actorsim._runtime.supervisor import Supervisor
from actorsim.runs import read_run
from actorsim.transport import ActorRef, load_transport
from actorsim.transport._ray_join import check_reachable, cluster_address

ray = pytest.importorskip("ray")

from actorsim.transport._ray_nodes import AVOID_FOR, Node, NodeChooser  # noqa: E402 - needs ray


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestPlacementValues:
    @pytest.mark.parametrize(
        ("written", "parsed"),
        [
            ("spread", Placement("spread")),
            ("pack", Placement("pack")),
            ("node:ABC123", Placement("node", "abc123")),
            ("label:zone = eu ", Placement("label", ("zone", "eu"))),
            (None, None),
        ],
    )
    def test_the_written_forms_parse(self, written: str | None, parsed: Placement | None) -> None:
        """Each documented form parses; a node id is case-insensitive."""
        assert placement_from(written) == parsed

    @pytest.mark.parametrize("written", ["spraed", "node:", "node:xyz", "label:zone", "label:=eu", "SPREAD", ""])
    def test_a_bad_value_names_the_forms(self, written: str) -> None:
        """A typo fails at once, with what it could have been."""
        with pytest.raises(ValueError, match=r'"spread", "pack", "node:<node id>" or "label:<key>=<value>"'):
            placement_from(written)

    def test_a_non_string_is_a_type_error(self) -> None:
        """A placement is written as a str."""
        with pytest.raises(TypeError, match="placement must be a str"):
            placement_from(3)  # type: ignore[arg-type]


class TestOtherTransportsRefusePlacement:
    @pytest.mark.parametrize("transport", ["local", "thespian"])
    def test_init_refuses_it(self, transport: str) -> None:
        """Only Ray places actors on nodes; the others say so rather than ignore it."""
        with pytest.raises(ValueError, match=f"placement= is for the 'ray' transport, not '{transport}'"):
            actorsim.init(transport=transport, placement="spread", log_dir=None)

    def test_a_bad_placement_fails_before_any_transport_starts(self) -> None:
        """The value is checked first, whatever the transport."""
        with pytest.raises(ValueError, match="is not a placement"):
            actorsim.init(transport="ray", placement="everywhere", log_dir=None)

    def test_a_plain_component_refuses_it(self) -> None:
        """`remote=False` runs in the calling process: there is nothing to place."""
        with pytest.raises(ValueError, match="remote=True"):
            create_component(RolePlay, name="a", placement="spread")
        with pytest.raises(ValueError, match="remote=True"):
            create_component(TaskCenter, name="tc", placement="spread")

    def test_a_remote_component_on_local_refuses_it(self, tmp_path: Path) -> None:
        """The per-component override follows the run's transport."""
        with Runtime(load_transport("local"), RunOptions(log_dir=tmp_path), new_run_id()) as runtime:
            with pytest.raises(ValueError, match="placement= is for the 'ray' transport, not 'local'"):
                create_component(RolePlay, name="a", remote=True, placement="spread", runtime=runtime)
            with pytest.raises(ValueError, match="placement= is for the 'ray' transport"):
                create_component(TaskCenter, name="tc", remote=True, placement="pack", runtime=runtime)
            assert not runtime.has_actors


class TestJoining:
    @pytest.mark.parametrize(
        ("address", "environ", "joined"),
        [
            (None, {}, None),
            (None, {"RAY_ADDRESS": "10.0.0.1:6379"}, "10.0.0.1:6379"),
            (None, {"RAY_ADDRESS": "local"}, None),
            (None, {"RAY_ADDRESS": ""}, None),
            ("auto", {}, "auto"),
            ("local", {"RAY_ADDRESS": "10.0.0.1:6379"}, None),
            ("10.0.0.2:6379", {"RAY_ADDRESS": "10.0.0.1:6379"}, "10.0.0.2:6379"),
        ],
    )
    def test_which_cluster_is_joined(self, address: str | None, environ: dict[str, str], joined: str | None) -> None:
        """`address` wins over $RAY_ADDRESS; "local" (or neither) means a private instance."""
        assert cluster_address(address, environ) == joined

    def test_an_unreachable_address_fails_within_the_timeout(self) -> None:
        """No hang: the address is tried with a deadline, and the error says what to do."""
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError, match=r"no Ray cluster answers at .* within 1 s.*RAY_ADDRESS"):
            check_reachable(f"127.0.0.1:{closed_port()}", timeout=1.0)
        assert time.monotonic() - started < 5

    def test_the_transport_fails_before_ray_starts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A $RAY_ADDRESS nobody answers at is an error, not a private instance, and not a hang."""
        from actorsim.transport._ray import RayTransport

        monkeypatch.setenv("RAY_ADDRESS", f"[::ffff:127.0.0.1]:{closed_port()}")
        with pytest.raises(ClusterUnreachableError, match=r"\(\$RAY_ADDRESS\)"):
            RayTransport(join_timeout=0.5)

    def test_a_malformed_address_is_named(self) -> None:
        """Something that is no address at all is refused at once."""
        with pytest.raises(ClusterUnreachableError, match="is not a Ray cluster address"):
            check_reachable("my-cluster", timeout=0.5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


A, B, C = ("a" * 56, "b" * 56, "c" * 56)  # Ray's node ids: 28 bytes in hex


def chooser(nodes: list[Node], clock: FakeClock | None = None) -> NodeChooser:
    return NodeChooser(A, nodes=lambda: list(nodes), clock=clock or FakeClock())


def chosen(options: dict[str, Any]) -> str:
    return str(options["scheduling_strategy"].node_id)


NODES = [Node(A, {"zone": "eu"}), Node(B, {"zone": "us"}), Node(C, {"zone": "us"})]


class TestNodeChoice:
    def test_spread_takes_each_live_node_in_turn(self) -> None:
        """Spread: one actor per node, round and round."""
        nodes = chooser(NODES)
        assert [chosen(nodes.options(Placement("spread"))) for _ in range(4)] == [A, B, C, A]

    def test_pack_keeps_actors_on_the_drivers_node(self) -> None:
        """Pack: the driver's node."""
        assert chosen(chooser(NODES).options(Placement("pack"))) == A

    def test_no_placement_leaves_the_choice_to_ray(self) -> None:
        """Without a placement and with every node healthy, Ray schedules as it likes."""
        assert chooser(NODES).options(None) == {}

    def test_a_label_picks_among_the_nodes_that_have_it(self) -> None:
        """label:zone=us: only nodes labelled so, in turn."""
        nodes = chooser(NODES)
        assert {chosen(nodes.options(Placement("label", ("zone", "us")))) for _ in range(4)} == {B, C}

    def test_an_unknown_node_or_label_lists_the_live_nodes(self) -> None:
        """A placement no node fits is a `PlacementError` naming what there is."""
        nodes = chooser(NODES)
        with pytest.raises(PlacementError, match=r"no live node has that id; live nodes: a{56} \(zone=eu\); b{56}"):
            nodes.options(Placement("node", "f" * 56))
        with pytest.raises(PlacementError, match="no live node has label zone=asia"):
            nodes.options(Placement("label", ("zone", "asia")))

    def test_a_node_where_an_actor_died_is_avoided(self) -> None:
        """Its raylet may be dead while Ray still lists it: new actors go elsewhere, even without a placement."""
        clock = FakeClock()
        nodes = chooser(NODES, clock)
        nodes.actor_died_on(A)
        assert chosen(nodes.options(Placement("pack"))) == B
        assert chosen(nodes.options(None)) == B
        assert A not in {chosen(nodes.options(Placement("spread"))) for _ in range(6)}

    def test_avoidance_ends_after_a_while(self) -> None:
        """A crash that was the actor's own leaves its node usable again."""
        clock = FakeClock()
        nodes = chooser(NODES, clock)
        nodes.actor_died_on(A)
        clock.now = AVOID_FOR + 5
        assert chosen(nodes.options(Placement("pack"))) == A
        assert nodes.options(None) == {}

    def test_a_node_asked_for_by_id_is_used_even_while_avoided(self) -> None:
        """The user's explicit choice stands."""
        nodes = chooser(NODES)
        nodes.actor_died_on(B)
        assert chosen(nodes.options(Placement("node", B))) == B

    def test_when_every_node_is_avoided_they_all_serve(self) -> None:
        """Better a suspect node than no actor."""
        nodes = chooser(NODES[:1])
        nodes.actor_died_on(A)
        assert chosen(nodes.options(Placement("spread"))) == A


class TestLogSink:
    def test_shipped_lines_read_back_as_the_processes_own_files(self, tmp_path: Path) -> None:
        """A process that ships writes nothing itself; the sink's files read as if it had."""
        config = RunLogConfig("run-1", tmp_path / "run-1")
        sink = LogSink(config)
        shipping = RunLog(RunLogConfig("run-1", tmp_path / "run-1", sink=sink), process="worker")
        driver = RunLog(config, process="driver")
        driver.event("run.started", transport="ray")
        driver.flush()
        shipping.event("actor.started", behaviour="AgentBehaviour")
        shipping.event("llm.call.finished")
        assert not shipping.path.exists()  # kept until a flush ships them
        shipping.flush()
        assert shipping.path.exists()
        sink.close()
        run = read_run(tmp_path / "run-1")
        assert [e["event"] for e in run.events] == [
            "run.started", "actor.started", "llm.call.finished", "runlog.sink_closed"
        ]

    def test_a_missing_batch_and_a_dead_process_are_recorded(self, tmp_path: Path) -> None:
        """What never arrived is said in the log: a gap between batches, a process that died."""
        sink = LogSink(RunLogConfig("run-2", tmp_path / "run-2"))
        line = b'{"event":"x","ts":1.0,"v":1,"pid":42}\n'
        sink.ship("agent-42.jsonl", line, 1)
        sink.ship("agent-42.jsonl", line, 3)  # line 2 never came
        sink.lost(42, "agent", "node-b", "ActorDiedError")
        sink.close()
        run = read_run(tmp_path / "run-2")
        gap, = run.of_type("runlog.gap")
        assert (gap["after_line"], gap["next_line"]) == (1, 3)
        lost, = run.of_type("runlog.lost")
        assert (lost["actor"], lost["lost_node"], lost["shipped_lines"]) == ("agent", "node-b", 3)


class RecordingTransport:
    """Just enough of a transport for the supervisor: records where each spawn was placed."""

    name = "fake"
    takes_placement = True

    def __init__(self) -> None:
        self.placements: list[Placement | None] = []

    def spawn(self, factory: Any, *, name: str, timeout: float, placement: Placement | None = None) -> ActorRef:
        self.placements.append(placement)
        return ActorRef(name, object(), len(self.placements), node=f"n{len(self.placements)}")

    def stop(self, ref: ActorRef) -> None:
        pass


def test_a_restart_keeps_the_components_placement() -> None:
    """The successor is placed as its predecessor was asked to be; the log names both nodes."""
    transport = RecordingTransport()
    events: list[tuple[str, dict[str, Any]]] = []
    supervisor = Supervisor(
        transport,  # type: ignore[arg-type]
        timeout=1, sleep=lambda s: None, log=lambda event, **fields: events.append((event, fields)) or None,
    )
    ref = supervisor.spawn(lambda: None, "agent", Supervision(), placement=Placement("spread"))  # type: ignore[arg-type,return-value]
    supervisor.crashed(ref, RuntimeError("gone"))
    assert transport.placements == [Placement("spread"), Placement("spread")]
    assert [(e, f.get("actor_node")) for e, f in events] == [("actor.crashed", "n1"), ("actor.restarted", "n2")]
