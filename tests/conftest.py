"""Fixtures for every test directory: the codec and connection backends, private Redis and
NATS servers."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from tests.support.nats import NatsServer
from tests.support.redis import RedisServer

BACKEND_MODULES = {"python": "fastws._codec_py", "cython": "fastws._codec"}
CONNECTION_MODULES = {"python": "fastws._connection_py", "cython": "fastws._connection"}
PROTOCOL_MODULES = {"python": "fastws._protocol_py", "cython": "fastws._protocol"}


def load_backend(name: str, modules: dict[str, str] = BACKEND_MODULES) -> ModuleType:
    """Import one backend (of the codec unless told); a missing Cython build fails loudly."""
    try:
        return importlib.import_module(modules[name])
    except ImportError as exc:
        pytest.fail(
            f"the {name} backend ({modules[name]}) cannot be imported: {exc}; "
            "build it with pip install -e .",
            pytrace=False,
        )


@pytest.fixture(scope="session", params=sorted(BACKEND_MODULES))
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test: ``fastws._codec_py`` or ``fastws._codec``."""
    return load_backend(request.param)


@pytest.fixture(params=sorted(CONNECTION_MODULES))
def connection_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Run a test with one connection backend: ``fastws.connection``, the in-process server
    and client, and the test module's own ``Connection`` name use its ``Connection``, and
    ``WebSocket`` runs its read and write paths (the codec stays the selected one)."""
    import fastws.client
    import fastws.connection
    import fastws.server

    connection = load_backend(request.param, CONNECTION_MODULES).Connection
    for module in (fastws.connection, fastws.server, fastws.client, request.module):
        if hasattr(module, "Connection"):
            monkeypatch.setattr(module, "Connection", connection)
    use_protocol_backend(request.param, monkeypatch)
    return connection


def use_protocol_backend(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``WebSocket`` (and so every server and client connection) run the read and write
    paths of one ``ProtocolCore``.

    ``WebSocket`` inherits the core that ``fastws.protocol`` selected; the reference's methods
    are plain functions that run on either core's fields, so for "python" they are set on
    ``WebSocket`` over the compiled ones, and new connections share the reference's flusher
    (the compiled one calls the compiled flush), and the servers' shared timer scans with the
    reference's ``timers_due``. The compiled methods need the compiled
    core's fields: in a pure-Python process (``FASTWS_PURE=1``) both parameters run the
    reference.
    """
    import weakref

    import fastws.protocol
    import fastws.server

    load_backend(name, PROTOCOL_MODULES)  # a missing build fails loudly
    if name == "python" and fastws.protocol.BACKEND == "cython":
        module = load_backend("python", PROTOCOL_MODULES)
        for attr, value in vars(module.ProtocolCore).items():
            if callable(value) and not attr.startswith("__"):
                monkeypatch.setattr(fastws.protocol.WebSocket, attr, value)
        monkeypatch.setattr(fastws.protocol, "Flusher", module.Flusher)
        monkeypatch.setattr(fastws.protocol, "_FLUSHERS", weakref.WeakKeyDictionary())
        for owner in (fastws.protocol, fastws.server):  # the shared timer's scan
            monkeypatch.setattr(owner, "timers_due", module.timers_due)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No secret handed to a hub in this run may appear in any log it wrote."""
    from tests.support.leaks import leaked_lines

    leaked = leaked_lines()
    if leaked:
        print("\nsecrets found in hub logs:\n" + "\n".join(leaked[:20]))
        session.exitstatus = 1


@pytest.fixture(scope="session")
def both_codecs() -> tuple[ModuleType, ModuleType]:
    """(reference, compiled) for differential tests."""
    return load_backend("python"), load_backend("cython")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started private Redis, killed and removed after the test whatever happens."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def make_redis() -> Iterator[Callable[..., RedisServer]]:
    """Make more private Redis servers (started or not); all are cleaned up."""
    made: list[RedisServer] = []

    def make(start: bool = True, port: int | None = None, *args: str) -> RedisServer:
        server = RedisServer(port, *args)
        made.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        for server in made:
            server.cleanup()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A started private nats-server with JetStream, killed and removed after the test."""
    server = NatsServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def make_nats() -> Iterator[Callable[..., NatsServer]]:
    """Make more private nats-servers (started or not); all are cleaned up."""
    made: list[NatsServer] = []

    def make(start: bool = True, *args: str) -> NatsServer:
        server = NatsServer(*args)
        made.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        for server in made:
            server.cleanup()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--autobahn-full",
        action="store_true",
        help="run all Autobahn cases with the pure-Python codec too, not only those that "
        "exercise the codec (make conformance)",
    )
