"""Transports: how actors run and how requests reach them.

One module per backend, each ending with ``transport_class = ...``, loaded by
name only when asked for, so that `local` needs neither Thespian nor Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

from actorsim._core.ref import ActorRef
from actorsim._errors import TransportUnavailableError
from actorsim.transport._base import Behaviour, BehaviourFactory, CallFailed, Transport

TRANSPORTS = ("local", "thespian", "ray")
"""The transports a user can choose; `inline` serves `remote=False` only."""

_PACKAGE_OF = {"thespian": "thespian", "ray": "ray"}


def load_transport_class(name: str) -> type[Transport]:
    """The backend called `name`, imported on first use.

    Raises ValueError for an unknown name, `TransportUnavailableError` naming
    what to install when its package is missing, and TypeError for a module
    whose `transport_class` is not a `Transport`.
    """
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
    backend = getattr(module, "transport_class", None)
    if not (isinstance(backend, type) and issubclass(backend, Transport)):
        raise TypeError(f"actorsim.transport._{name}.transport_class must subclass Transport, not {backend!r}")
    return backend


def load_transport(name: str, **options: Any) -> Transport:
    """Start the transport called `name` with its backend's own keyword `options`."""
    return load_transport_class(name)(**options)


__all__ = [
    "ActorRef",
    "Behaviour",
    "BehaviourFactory",
    "CallFailed",
    "TRANSPORTS",
    "Transport",
    "load_transport",
    "load_transport_class",
]
