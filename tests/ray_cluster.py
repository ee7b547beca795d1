"""A real Ray cluster of two nodes on this machine, started and stopped by its own process ids.

Ray's defaults do not fit a shared test machine: two nodes' default ports
clash, `--node-ip-address=127.0.0.1` is rewritten, `~/.ray/auth_token` turns
token auth on, and `ray stop` would end every Ray process of the user. So
every port is chosen here from a free-port search, the second node joins as
`[::ffff:127.0.0.1]:PORT`, the cluster has its own temp dir and token, and
every process it starts carries a tag in its environment by which teardown
finds it (Ray's processes rename themselves; some ignore SIGTERM).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import psutil

BIN = Path(sys.executable).parent
TAG = "ACTORSIM_TEST_CLUSTER"


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now, outside Ray's default worker range."""
    sockets, ports = [], []
    while len(ports) < count:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        sockets.append(s)
        if not 10002 <= port <= 19999 and port not in ports:
            ports.append(port)
    for s in sockets:
        s.close()
    return ports


def free_range(size: int, taken: list[tuple[int, int]]) -> tuple[int, int]:
    """A run of `size` ports free now, for one node's workers, apart from the runs in `taken`.

    Below the kernel's ephemeral range, where `free_ports` (and every other
    `bind(0)`) finds its ports: a run drawn from anywhere may hold a port just
    handed to another of the node's components, and `ray start` refuses it
    (seen in CI), and above Ray's default worker ports, which other Ray
    instances on the machine use.
    """
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        start = 20000 + secrets.randbelow(ephemeral_low - 20000 - size)
        if any(start <= high and low <= start + size - 1 for low, high in taken):
            continue
        if all(_bindable(port) for port in range(start, start + size)):
            return start, start + size - 1
    raise RuntimeError(f"no run of {size} free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tagged_pids(tag: str) -> list[int]:
    """Every live process whose environment carries `TAG=tag`, and their descendants.

    Descendants too: a Ray process that renames itself (setproctitle) may
    overwrite its environment, but its parent, the raylet, keeps the tag.
    """
    needle = f"{TAG}={tag}".encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            continue  # gone, or not ours
    for pid in list(found):
        try:
            found.update(child.pid for child in psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            found.discard(pid)
    return sorted(pid for pid in found if _alive(pid))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_all(pids: Callable[[], set[int]], grace: float | None = 5.0) -> None:
    """SIGTERM the processes `pids()` names, then SIGKILL what is left after `grace` seconds (None: SIGKILL at once).

    `pids` is asked again before each signal: it may find more (a child just started).
    """
    steps = [(signal.SIGKILL, 10.0)] if grace is None else [(signal.SIGTERM, grace), (signal.SIGKILL, 10.0)]
    for sig, wait in steps:
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if wait_for(lambda: not pids(), wait):
            return


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
    """Poll `condition` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)


class RayStartFailed(RuntimeError):
    """`ray start` exited with an error; its message ends with what Ray wrote."""


@attrs.define
class Node:
    """One `ray start`: its processes carry `tag`; `seen` are every process found for it so far."""

    tag: str
    ports: dict[str, int]
    seen: set[int] = attrs.Factory(set)

    def pids(self) -> set[int]:
        """Its live processes: those tagged now, and those seen before (renamed ones lose the tag with their parent)."""
        self.seen.update(tagged_pids(self.tag))
        return {pid for pid in self.seen if _alive(pid)}


@attrs.define
class RayCluster:
    """Two (or more) `ray start` nodes on loopback; `env` is what every command against it needs."""

    temp_dir: Path
    env: dict[str, str]
    gcs_port: int
    dashboard_port: int
    nodes: list[Node] = attrs.Factory(list)
    cluster_tag: str = attrs.Factory(lambda: secrets.token_hex(6))
    replaced: set[int] = attrs.Factory(set)  # indexes of killed workers a new node has stood in for
    worker_ranges: list[tuple[int, int]] = attrs.Factory(list)  # every node's, so that no two share a port

    @classmethod
    def create(cls, temp_dir: Path) -> RayCluster:
        token = secrets.token_hex(32)
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        env.pop("RAY_ADDRESS", None)
        gcs, dashboard = free_ports(2)
        return cls(temp_dir, env, gcs, dashboard)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, head: bool) -> Node:
        """Start a node on ports free now. A node whose `ray start` fails is started again on new ports
        (the head on a new GCS port too, as no worker has joined it yet), after what the attempt left is
        killed: a port found free may be taken before Ray binds it (seen in CI)."""
        for _ in range(2):
            try:
                return self._start_once(head)
            except RayStartFailed:
                kill_all(self.nodes.pop().pids, grace=None)
                self.worker_ranges.pop()
                if head:
                    self.gcs_port, self.dashboard_port = free_ports(2)
        return self._start_once(head)

    def _start_once(self, head: bool) -> Node:
        names = ["node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc",
                 "runtime-env-agent", "metrics-export", "ray-client-server"]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        low, high = free_range(60, self.worker_ranges)
        self.worker_ranges.append((low, high))
        node = Node(f"{self.cluster_tag}-{len(self.nodes)}", ports)
        args = [str(BIN / "ray"), "start", "--num-cpus=1", "--object-store-memory=100000000",
                "--disable-usage-stats", f"--min-worker-port={low}", f"--max-worker-port={high}",
                *(f"--{name}-port={port}" for name, port in ports.items())]
        if head:
            args += ["--head", f"--port={self.gcs_port}", "--node-ip-address=127.0.0.1",
                     "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                     f"--temp-dir={self.temp_dir}"]
        else:
            args += [f"--address=[::ffff:127.0.0.1]:{self.gcs_port}"]
        env = {**self.env, TAG: node.tag}
        self.nodes.append(node)
        started = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
        if started.returncode:
            raise RayStartFailed(f"ray start exited with {started.returncode}: {started.stderr[-3000:]}")
        node.pids()
        return node

    def start(self, workers: int = 1) -> None:
        """Start the head, then `workers` more nodes; returns once Ray counts them all alive."""
        self._start(head=True)
        for _ in range(workers):
            self._start(head=False)
        if not wait_for(lambda: self.alive_nodes() == len(self.nodes), 60, every=0.5):
            self.stop()
            raise RuntimeError(f"the cluster did not come up with {len(self.nodes)} nodes")

    def live_worker(self) -> int:
        """The index of the last worker node that runs."""
        return max(index for index, node in enumerate(self.nodes) if index and node.pids())

    def restore_workers(self) -> None:
        """Start a new node for each worker a test killed; returns once Ray counts every live one."""
        dead = [index for index, node in enumerate(self.nodes) if index and index not in self.replaced
                and not node.pids()]
        for index in dead:  # once each: a node killed in one test and replaced for the next stays dead
            self.replaced.add(index)
            self._start(head=False)
        live = sum(1 for node in self.nodes if node.pids())
        if not wait_for(lambda: self.alive_nodes() == live, 60, every=0.5):
            raise RuntimeError(f"Ray does not count the {live} live nodes of the test cluster")

    def alive_nodes(self) -> int:
        out = self.ray("status", f"--address={self.address}", check=False).stdout
        return sum(line.strip().startswith("1 node_") for line in out.splitlines())

    def ray(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a `ray` command against this cluster."""
        return subprocess.run([str(BIN / "ray"), *args], env=self.env, check=check, capture_output=True,
                              text=True, timeout=timeout)

    def kill_node(self, index: int) -> None:
        """SIGKILL every process of one node at once: as a machine that dies."""
        kill_all(self.nodes[index].pids, grace=None)

    def node_pids(self, index: int) -> set[int]:
        return self.nodes[index].pids()

    def pids(self) -> set[int]:
        """Every live process of the cluster."""
        return {pid for node in self.nodes for pid in node.pids()}

    def stop(self) -> None:
        """Stop every node by its processes' ids, the head last."""
        for node in reversed(self.nodes):
            kill_all(node.pids)
