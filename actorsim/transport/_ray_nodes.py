"""Which Ray node an actor starts on: its placement, minus the nodes where actors just died.

A node whose raylet was killed keeps its workers answering for about 15 s
before Ray declares it dead; an actor restarted there meanwhile dies again,
and its supervisor spends its restart budget on a dying machine. So a node
where one of our actors died is avoided for new actors until Ray declares it
dead or `AVOID_FOR` passes (a crash that was the actor's own leaves the node
fine). Every placement becomes a hard node affinity to one chosen live node:
the choice is ours, so avoidance applies to every kind alike.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actorsim._core.placement import Placement
from actorsim._errors import PlacementError

AVOID_FOR = 60.0
"""Seconds a node where an actor died is avoided, unless Ray declares it dead first."""
_FRESH_FOR = 2.0  # seconds a listing of the nodes is reused
_ID_LABEL = "ray.io/node-id"  # every node has it: not worth listing


@attrs.frozen
class Node:
    node_id: str
    labels: dict[str, str] = attrs.field(eq=False)


def _live_nodes() -> list[Node]:
    listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sorted(
        (Node(n["NodeID"], dict(n.get("Labels") or {})) for n in listed if n.get("Alive")),
        key=lambda node: node.node_id,
    )


class NodeChooser:
    """Turns a placement into Ray scheduling options; told of deaths, it steers new actors elsewhere."""

    def __init__(
        self,
        driver_node: str,
        nodes: Callable[[], list[Node]] = _live_nodes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._driver_node = driver_node
        self._list_nodes = nodes
        self._clock = clock
        self._avoid: dict[str, float] = {}  # node id: when an actor died there
        self._listing: tuple[float, list[Node]] | None = None
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def actor_died_on(self, node_id: str | None) -> None:
        """One of our actors died on `node_id`: steer new actors elsewhere for a while."""
        if node_id is not None:
            with self._lock:
                self._avoid[node_id] = self._clock()
                self._listing = None

    def avoided(self) -> set[str]:
        """The live nodes being avoided now."""
        with self._lock:
            return self._avoided(self._nodes())

    def options(self, placement: Placement | None) -> dict[str, Any]:
        """Keyword options for `.options(...)` of a Ray actor class; raises `PlacementError` when no node fits."""
        with self._lock:
            nodes = self._nodes()
            avoided = self._avoided(nodes)
            if placement is None and not avoided:
                return {}  # Ray's default: in practice, the driver's node
            node_id = self._choose(placement or Placement("pack"), nodes, avoided)
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}

    def _nodes(self) -> list[Node]:
        now = self._clock()
        if self._listing is None or now - self._listing[0] > _FRESH_FOR:
            self._listing = (now, self._list_nodes())
        return self._listing[1]

    def _avoided(self, nodes: list[Node]) -> set[str]:
        live = {node.node_id for node in nodes}
        now = self._clock()
        for node_id, since in list(self._avoid.items()):
            if node_id not in live or now - since > AVOID_FOR:
                del self._avoid[node_id]  # declared dead (gone from the list), or long enough ago
        return set(self._avoid)

    def _choose(self, placement: Placement, nodes: list[Node], avoided: set[str]) -> str:
        if not nodes:
            raise PlacementError(f"placement {placement}: Ray lists no live node")
        usable = [node for node in nodes if node.node_id not in avoided] or nodes
        if placement.kind == "spread":
            return usable[next(self._turn) % len(usable)].node_id
        if placement.kind == "pack":
            ids = [node.node_id for node in usable]
            return self._driver_node if self._driver_node in ids else ids[0]
        if placement.kind == "node":
            assert isinstance(placement.value, str)
            for node in nodes:
                if node.node_id.startswith(placement.value):
                    return node.node_id  # asked for by the user: used even while avoided
            raise PlacementError(f"placement {placement}: no live node has that id; live nodes: {_listed(nodes)}")
        assert isinstance(placement.value, tuple)
        key, value = placement.value
        matching = [node for node in usable if node.labels.get(key) == value] or [
            node for node in nodes if node.labels.get(key) == value
        ]
        if not matching:
            raise PlacementError(f"placement {placement}: no live node has label {key}={value}; "
                                 f"live nodes: {_listed(nodes)}")
        return matching[next(self._turn) % len(matching)].node_id


def _listed(nodes: list[Node]) -> str:
    """The live nodes and their labels, for an error a person reads."""

    def labels(node: Node) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(node.labels.items()) if k != _ID_LABEL) or "no labels"

    return "; ".join(f"{node.node_id} ({labels(node)})" for node in nodes) or "none"
