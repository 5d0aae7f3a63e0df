"""Test an application's real-time flows against a real hub, in the test's own event loop.

    # conftest.py (or a test module)
    pytest_plugins = ["fastws.hub.testing"]

    async def test_a_message_is_stored(fastws_hub):
        async with fastws_hub(hooks=myapp.realtime, config_file="hub.toml") as hub:
            ann = await hub.client(cookies={"session": ann_session})  # through on_connect
            bob = await hub.client("bob", claims={"channels": ["chat:*"]})  # a kit token
            ...

``start_hub`` runs the hub of ``fastws.hub.app`` in the calling loop: no process, the
memory broker, plain WebSocket on a free port of 127.0.0.1, so a test takes
milliseconds. The hooks may be a module, its name, or any object whose ``on_*``
attributes are async functions. The kit signs connection tokens with a key of its own
and sets an API key of its own (the file's keys are not read), so ``hub.client(user)``
connects as anyone and the application's HTTP calls to the server API work.
``hub.client`` hands out ``fastws.hub.client.Client`` objects already connected, and
closes them with the hub.

The fixtures need an async test runner for the test itself (pytest-asyncio, anyio,
or ``asyncio.run`` in a plain test): ``fastws_hub`` gives ``start_hub`` with the
options of ``fastws_hub_options``, which a conftest overrides to share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from fastws.hub.app import Hub
from fastws.hub.client import Client
from fastws.hub.config import HubConfig, read_toml

if TYPE_CHECKING:
    from fastws.hub.commands.server_api import ServerApi

TOKEN_TTL = 3600
CLIENT_DEFAULTS = {"backoff_base": 0.05, "backoff_max": 0.5}
"""A client that loses its connection in a test comes back within half a second."""

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def config_for_tests(config_file: str | None = None, **options: Any) -> HubConfig:
    """The configuration of a hub for tests: ``config_file``'s options (its keys, ports and
    TLS files left out), the kit's (127.0.0.1, a free port, one process, the memory
    broker, keys of its own), then ``options``."""
    values = read_toml(config_file) if config_file else {}
    for name in ("jwt_secret", "jwt_secret_file", "jwt_public_key", "api_key", "api_key_file",
                 "internal_port", "internal_host", "certfile", "keyfile"):
        values.pop(name, None)
    values.update(
        host="127.0.0.1",
        port=0,
        workers=1,
        broker="memory://",
        jwt_secret=secrets.token_urlsafe(32),
        api_key=secrets.token_urlsafe(16),
        shutdown_timeout=1.0,
    )
    values.update(options)
    return HubConfig(**values).validate()


class HubUnderTest:
    """A running hub and the clients handed out for it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.config = hub.config
        self._clients: list[Client] = []

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def url(self) -> str:
        """The WebSocket endpoint."""
        return f"ws://127.0.0.1:{self.port}/connection"

    @property
    def http_url(self) -> str:
        """Where the HTTP API is (``/api/v1/...`` below it), with ``api_key``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def server_api(self) -> ServerApi:
        """The server API as Python calls: ``await hub.server_api.publish(channel=..., data=...)``."""
        return self.hub.server_api

    def token(self, user: str, **claims: Any) -> str:
        """A connection token for ``user`` with ``claims`` (``channels``, ``publish``,
        ``subs``, ``info``...; ``exp`` defaults to an hour from now)."""
        payload: dict[str, Any] = {"sub": user, "exp": int(time.time()) + TOKEN_TTL}
        if self.config.jwt_audience is not None:
            payload["aud"] = self.config.jwt_audience
        if self.config.jwt_issuer is not None:
            payload["iss"] = self.config.jwt_issuer
        payload.update(claims)
        return jwt.encode(payload, self.config.jwt_secret, algorithm="HS256")

    async def client(
        self,
        user: str | None = None,
        *,
        headers: Headers = (),
        cookies: Mapping[str, str] | None = None,
        claims: Mapping[str, Any] | None = None,
        **client_options: Any,
    ) -> Client:
        """A connected client. With ``user``: a token the kit signs for that user, with
        ``claims`` (``{"channels": ["chat:*"]}``...). Without: no token, and the connect
        hook decides from ``headers`` and ``cookies``. Other options go to ``Client``.
        A refused connect raises ``HubError`` with the hub's code."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if cookies:
            pairs.append(("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items())))
        if user is not None:
            client_options.setdefault("token", self.token(user, **(claims or {})))
        client = Client(self.url, headers=tuple(pairs), **{**CLIENT_DEFAULTS, **client_options})
        try:
            await client.connect()
        except BaseException:
            await client.close()
            raise
        self._clients.append(client)
        return client

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        await asyncio.gather(*(client.close() for client in clients))
        await self.hub.close()


@contextlib.asynccontextmanager
async def start_hub(
    hooks: object | None = None, *, config_file: str | None = None, **options: Any
) -> AsyncIterator[HubUnderTest]:
    """A hub in this loop for the block (``config_for_tests`` says how it is configured), with
    ``hooks`` in place of the module the configuration names."""
    hub = Hub(config_for_tests(config_file, **options), hooks=hooks)
    await hub.start()
    running = HubUnderTest(hub)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def fastws_hub_options() -> dict[str, Any]:
    """Options every ``fastws_hub`` of a test starts with; override it in a conftest."""
    return {}


@pytest.fixture
def fastws_hub(
    fastws_hub_options: dict[str, Any],
) -> Callable[..., contextlib.AbstractAsyncContextManager[HubUnderTest]]:
    """``start_hub`` with ``fastws_hub_options`` under the test's own options:
    ``async with fastws_hub(hooks=...) as hub``."""

    def start(**options: Any) -> contextlib.AbstractAsyncContextManager[HubUnderTest]:
        return start_hub(**{**fastws_hub_options, **options})

    return start


__all__ = ["HubUnderTest", "config_for_tests", "fastws_hub", "fastws_hub_options", "start_hub"]
