"""The name of one actor: what transports hand out and everything above them addresses actors by.

A value of its own, below the transports, so that code which only passes refs
around (the supervisor, a tool service asking the current run to spawn) needs
no transport to name one.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ActorRef:
    """Names one actor of one transport; `address` is the backend's own handle.

    `pid` is the process the actor runs in (the caller's own for in-process transports);
    `node` the Ray node it runs on (None elsewhere).
    """

    name: str
    address: Any = attrs.field(eq=False, repr=False)
    pid: int | None = attrs.field(default=None, eq=False)
    node: str | None = attrs.field(default=None, eq=False)
