"""A run's options: what the runtime waits for, where it logs, and what a transport is built from.

Here, below the transports, because a backend builds itself from them
(`Transport.from_options`) and the runtime hands them over: neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from actorsim._core.placement import Placement, placement_from
from actorsim._core.validators import positive


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Made absolute at once, before a transport starts: joining a Ray cluster may change the working dir."""
    return Path(path).absolute()


@attrs.frozen
class RunOptions:
    """How long to wait: `ask_timeout` for one answer, `step_timeout` for the next frame of a step.

    Also what a backend builds itself from (`Transport.from_options`): `address`
    is the Ray cluster to join, `placement` where Ray actors run unless their
    component says, `log_dir` holds Thespian's output.
    """

    ask_timeout: float = attrs.field(default=60.0, validator=positive)
    step_timeout: float = attrs.field(default=600.0, validator=positive)
    log_dir: Path | None = attrs.field(default=Path("logs"), converter=attrs.converters.optional(_absolute))
    console_log: bool = False
    address: str | None = None
    placement: Placement | None = attrs.field(default=None, converter=placement_from)
