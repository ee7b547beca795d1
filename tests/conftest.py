"""One suite, every transport.

`runtime` runs a test on local, thespian and ray; `transport` gives the bare
transport, and with `every_transport` also inline's (behind `remote=False`),
the one no user picks by name; `make` builds components in
each of the seed's modes: plain objects (`remote=False`) and actors on each
transport. One actor system per transport serves the whole session (Ray takes
seconds to start); only one is up at a time, and every actor a test started is
stopped after it, so names can be reused and nothing leaks between tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import actorsim
from actorsim import Runtime, TaskCenter, create_component
from actorsim.transport import ActorRef, BehaviourFactory, Transport, load_transport


def _available(name: str) -> bool:
    return name == "local" or importlib.util.find_spec(name) is not None


TRANSPORT_PARAMS = [
    pytest.param(name, id=name, marks=pytest.mark.skipif(not _available(name), reason=f"{name} is not installed"))
    for name in actorsim.TRANSPORTS
]

_ALL_PARAMS = {param.values[0]: param for param in [pytest.param("inline", id="inline"), *TRANSPORT_PARAMS]}


def on_transports(*names: str) -> pytest.MarkDecorator:
    """Runs a test of the `transport` fixture on the transports `names` (inline among them if asked)."""
    return pytest.mark.parametrize("transport_name", [_ALL_PARAMS[name] for name in names], indirect=True)


every_transport = on_transports("inline", *actorsim.TRANSPORTS)
"""Inline (behind `remote=False`) as well as the three a user chooses."""

_live: dict[str, Runtime] = {}


def _runtime_for(name: str, log_dir: Path, hosts: int | None = None) -> Runtime:
    """The session's runtime for `name` (with `hosts`: hosted agents), shutting down any other one first."""
    key = name if hosts is None else f"{name}+{hosts} hosts"
    if key not in _live:
        for other in list(_live):
            _live.pop(other).shutdown()
        _live[key] = actorsim.init(transport=name, ask_timeout=60, step_timeout=120, log_dir=log_dir, hosts=hosts)
    return _live[key]


@contextlib.contextmanager
def own_runtime(name: str, log_dir: Path, **options: Any) -> Iterator[Runtime]:
    """A run of the test's own, with options the session's runs do not have; the session's run is shut down
    first (one actor system at a time), and this one at the end of the block."""
    for other in list(_live):
        _live.pop(other).shutdown()
    run = actorsim.init(transport=name, ask_timeout=60, step_timeout=120, log_dir=log_dir, **options)
    try:
        yield run
    finally:
        run.shutdown()


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Arize Phoenix, started once for the session (see `tests.phoenix`)."""
    from tests.phoenix import running_phoenix

    with running_phoenix(tmp_path_factory.mktemp("phoenix")) as running:
        yield running


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """llama.cpp's server with a real 135M model, started once for the session (see `tests.llama_server`)."""
    from tests.llama_server import running_llama

    with running_llama(tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _shutdown_runtimes() -> Iterator[None]:
    yield
    for name in list(_live):
        _live.pop(name).shutdown()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session", params=TRANSPORT_PARAMS)
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runtime(transport_name: str, log_dir: Path) -> Iterator[Runtime]:
    live = _runtime_for(transport_name, log_dir)
    yield live
    live.stop_all()


@pytest.fixture
def transport(transport_name: str, log_dir: Path) -> Iterator[Transport]:
    """The bare transport: a new inline one, or the session's runtime's for the others."""
    if transport_name != "inline":
        yield _runtime_for(transport_name, log_dir).transport
        return
    inline = load_transport("inline")
    yield inline
    inline.shutdown()


Spawn = Callable[[BehaviourFactory, str], ActorRef]


@pytest.fixture
def spawn(transport: Transport) -> Iterator[Spawn]:
    """`spawn(factory, name)` on the bare transport; every actor it started is stopped after the test."""
    started: list[ActorRef] = []

    def start(factory: BehaviourFactory, name: str) -> ActorRef:
        ref = transport.spawn(factory, name=name, timeout=60)
        started.append(ref)
        return ref

    yield start
    for ref in started:
        transport.stop(ref)


@pytest.fixture(scope="session", params=[pytest.param("plain", id="plain"), *TRANSPORT_PARAMS])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


HOSTS = 3
"""Host actors of a hosted mode's run."""


@pytest.fixture(scope="session", params=TRANSPORT_PARAMS)
def hosted_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_hosted(hosted_mode: str, log_dir: Path) -> Iterator[Make]:
    """`make(cls, name, **options)`: `create_component` on a run whose agents live on `HOSTS` host actors."""
    live = _runtime_for(hosted_mode, log_dir, hosts=HOSTS)

    def build(cls: type, name: str, **options: Any) -> Any:
        return create_component(cls, name=name, remote=True, runtime=live, **options)

    yield build
    live.stop_all()


Make = Callable[..., Any]


@pytest.fixture
def make(mode: str, log_dir: Path) -> Iterator[Make]:
    """`make(cls, name, **options)`: `create_component` in this test's mode."""
    with maker(None if mode == "plain" else _runtime_for(mode, log_dir), log_dir) as build:
        yield build


@contextlib.contextmanager
def maker(live: Runtime | None, log_dir: Path) -> Iterator[Make]:
    """`make(cls, name, **options)`: `create_component` on `live`, or, with None, as plain components whose task
    centers each run their own (logged under `log_dir`); what it made is stopped at the end of the block."""
    plain_runs: list[TaskCenter] = []  # each runs its own: closed here, not whenever the collector gets to it

    def build(cls: type, name: str, **options: Any) -> Any:
        if live is None and issubclass(cls, TaskCenter):
            options.setdefault("log_dir", log_dir)
        made = create_component(cls, name=name, remote=live is not None, runtime=live, **options)
        if live is None and isinstance(made, TaskCenter):
            plain_runs.append(made)
        return made

    try:
        yield build
    finally:
        for center in plain_runs:
            center.close()
        if live is not None:
            live.stop_all()
