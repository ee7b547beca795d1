"""Transports: how actors run and how requests reach them.

One module per backend, each ending with ``transport_class = ...``, loaded by
name only when asked for, so that `local` needs neither Thespian nor Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

from actorsim._errors import TransportUnavailableError
from actorsim.transport._base import ActorRef, Behaviour, BehaviourFactory, CallFailed, Transport

TRANSPORTS = ("local", "thespian", "ray")
"""The transports a user can choose; `inline` serves `remote=False` only."""

_PACKAGE_OF = {"thespian": "thespian", "ray": "ray"}


def load_transport(name: str, **options: Any) -> Transport:
    """Start the transport called `name`."""
    if name not in (*TRANSPORTS, "inline"):
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")
    try:
        module = importlib.import_module(f"actorsim.transport._{name}")
    except ImportError as error:
        package = _PACKAGE_OF.get(name)
        if package is None or error.name != package:
            raise
        raise TransportUnavailableError(
            f"the {name!r} transport needs the {package!r} package: pip install 'actorsim[{name}]'"
        ) from error
    transport: Transport = module.transport_class(**options)
    return transport


__all__ = [
    "ActorRef",
    "Behaviour",
    "BehaviourFactory",
    "CallFailed",
    "TRANSPORTS",
    "Transport",
    "load_transport",
]
