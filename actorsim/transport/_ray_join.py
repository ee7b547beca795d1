"""Which Ray to use: the cluster a program was launched on, the one asked for, or a private instance.

`ray submit` and `ray job submit` set `RAY_ADDRESS` for the program they
start; a library that started its own instance there would never use the
cluster's other nodes (and, under `ray job submit --working-dir`, could not
even fetch the job's code). So an address, given or from the environment,
is joined; only without one (or with `local`) is a private instance started.
`ray.init` waits on an address nobody answers at without end, so the address
is tried first, with a deadline.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from actorsim._errors import ClusterUnreachableError

PRIVATE = "local"
JOIN_TIMEOUT = 15.0
"""Seconds to wait for a cluster's first answer before `ClusterUnreachableError`."""


def cluster_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The cluster to join, or None for a private instance.

    `address` wins over `$RAY_ADDRESS`; `"local"` in either means private.
    """
    chosen = address if address is not None else (environ.get("RAY_ADDRESS") or None)
    return None if chosen is None or chosen == PRIVATE else chosen


def _host_port(address: str) -> tuple[str, int] | None:
    """`host:port`, `[v6]:port` or `ray://host:port` split; None for what is not one."""
    rest = address.removeprefix("ray://").rstrip("/")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _resolve_auto() -> str:
    """The cluster `ray start` last started on this machine, as Ray finds it for `address="auto"`."""
    try:
        # Here, not at the top: ray is an optional package, and this is a private module of it that may move.
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray that moved it: let ray.init find it
        return "auto"
    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError as error:
        raise ClusterUnreachableError(f"address='auto': no Ray cluster started on this machine ({error})") from None
    return found or "auto"


def check_reachable(address: str, *, timeout: float = JOIN_TIMEOUT, source: str = "address") -> None:
    """Raise `ClusterUnreachableError` unless something answers at `address` within `timeout` seconds."""
    target = _resolve_auto() if address == "auto" else address
    where = _host_port(target)
    if where is None:
        if address == "auto":
            return
        raise ClusterUnreachableError(
            f"{source}={address!r} is not a Ray cluster address: write 'host:port', 'ray://host:port', "
            "'auto', or 'local' for a private instance"
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(where, timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise ClusterUnreachableError(
                    f"no Ray cluster answers at {target!r} ({source}) within {timeout:g} s: {error}; "
                    "is the head node up, and is this machine allowed to reach its port? "
                    "Unset RAY_ADDRESS (or pass address='local') for a private instance"
                ) from None
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
