"""Fixtures for every test directory: the codec backends, private Redis servers."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from tests.support.redis import RedisServer

BACKEND_MODULES = {"python": "fastws._codec_py", "cython": "fastws._codec"}


def load_backend(name: str) -> ModuleType:
    """Import one codec backend; a missing Cython build fails the test loudly."""
    try:
        return importlib.import_module(BACKEND_MODULES[name])
    except ImportError as exc:
        pytest.fail(
            f"the {name} codec ({BACKEND_MODULES[name]}) cannot be imported: {exc}; "
            "build it with pip install -e .",
            pytrace=False,
        )


@pytest.fixture(scope="session", params=sorted(BACKEND_MODULES))
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test: ``fastws._codec_py`` or ``fastws._codec``."""
    return load_backend(request.param)


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--autobahn-full",
        action="store_true",
        help="run all Autobahn cases with the pure-Python codec too, not only those that "
        "exercise the codec (make conformance)",
    )
