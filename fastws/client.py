"""The WebSocket client: the same connection core as the server, masking its frames.

    async with fastws.connect("ws://127.0.0.1:8765/chat") as ws:
        await ws.send("hello")
        print(await ws.recv())
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastws.connection import Connection
from fastws.deflate import PerMessageDeflate, client_offer, deflate_config
from fastws.errors import HandshakeError, WebSocketError
from fastws.handshake import ResponseReader, client_check, client_request, make_key
from fastws.protocol import Listener, Options, WebSocket


class InvalidURI(WebSocketError):
    """The URL is not a ws:// or wss:// URL."""


def parse_url(url: str) -> tuple[bool, str, int, str]:
    """``(secure, host, port, resource)`` of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(f"{url!r} is not a ws:// or wss:// URL")
    if not parts.hostname:
        raise InvalidURI(f"{url!r} has no host")
    secure = parts.scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        raise InvalidURI(f"{url!r} has an invalid port") from exc
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return secure, parts.hostname, port, resource


class ClientConnection(WebSocket):
    """The client side of a connection, made by ``connect``."""

    __slots__ = (
        "_request",
        "_key",
        "_subprotocols",
        "_deflate_config",
        "_reader",
        "_read_buffer",
        "opened",
        "response",
        "_timer",
    )

    def __init__(
        self,
        options: Options,
        loop: asyncio.AbstractEventLoop,
        request: bytes,
        key: str,
        subprotocols: Sequence[str],
        listener: Listener | None,
    ) -> None:
        super().__init__(options, loop)
        self.listener = listener
        self._request = request
        self._key = key
        self._subprotocols = tuple(subprotocols)
        self._deflate_config = deflate_config(options.compression)
        self._reader: ResponseReader | None = ResponseReader(max_size=options.max_header_size)
        self._read_buffer = bytearray(4096)
        self._get_buffer = self._handshake_buffer
        self.opened: asyncio.Future = loop.create_future()
        self.response: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.remote_address = transport.get_extra_info("peername")
        transport.write(self._request)  # type: ignore[attr-defined]
        self._request = b""
        self._timer = self.loop.call_later(self.options.tick(), self._on_timer)

    def _on_timer(self) -> None:
        if self._lost:
            return
        self.check_timers(self.loop.time())
        self._timer = self.loop.call_later(self.options.tick(), self._on_timer)

    def _handshake_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._read_buffer)

    def _on_handshake_data(self, nbytes: int) -> None:
        reader = self._reader
        try:
            response = reader.feed(bytes(self._read_buffer[:nbytes]))
            if response is None:
                return
            self.response = response
            accepted = client_check(
                response,
                self._key,
                subprotocols=self._subprotocols,
                deflate=self._deflate_config,
            )
        except HandshakeError as exc:
            self._fail_open(exc)
            return
        self._reader = None
        self._read_buffer = bytearray()
        self.subprotocol = accepted.subprotocol
        deflate = None
        if accepted.deflate is not None:
            deflate = PerMessageDeflate(accepted.deflate, server=False, config=self._deflate_config)
        conn = Connection(
            client=True, max_message_size=self.options.max_message_size, deflate=deflate
        )
        if not self.opened.done():
            self.opened.set_result(None)
        self._open(conn, reader.leftover)

    def _fail_open(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _connection_gone(self) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                HandshakeError(502, "connection closed during the opening handshake")
            )
        if self._timer is not None:
            self._timer.cancel()

    def _close_transport(self) -> None:
        # RFC 6455 7.1.1: the server closes TCP first; give it close_timeout.
        if not self.deadline:
            self.deadline = self.loop.time() + self.options.close_timeout


class connect:
    """Open a client connection: ``await connect(url)`` or ``async with connect(url) as ws``.

    ``listener`` (a ``Listener`` instance) selects the callback API; without it
    messages are read with ``recv()`` or ``async for``.
    """

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[str, str]] = (),
        origin: str | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        listener: Listener | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        self.secure, self.host, self.port, self.resource = parse_url(url)
        self.subprotocols = tuple(subprotocols)
        self.headers = tuple(headers)
        self.origin = origin
        self.ssl = ssl
        self.listener = listener
        self.options = Options(**options)
        self._ws: ClientConnection | None = None

    async def _connect(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        key = make_key()
        config = deflate_config(self.options.compression)
        request = client_request(
            self.host,
            self.port,
            self.resource,
            key,
            secure=self.secure,
            subprotocols=self.subprotocols,
            extensions=client_offer(config) if config is not None else None,
            headers=self.headers,
            origin=self.origin,
        )
        ssl_context: Any = None
        if self.secure:
            ssl_context = self.ssl if isinstance(self.ssl, ssl_module.SSLContext) else True
        elif self.ssl:
            raise InvalidURI("an SSL context needs a wss:// URL")

        def factory() -> ClientConnection:
            return ClientConnection(
                self.options, loop, request, key, self.subprotocols, self.listener
            )

        async with asyncio.timeout(self.options.open_timeout):
            kwargs: dict[str, Any] = {}
            if ssl_context is not None:
                kwargs = {"ssl": ssl_context, "server_hostname": self.host}
            _, ws = await loop.create_connection(factory, self.host, self.port, **kwargs)
            try:
                await ws.opened
            except BaseException:
                if ws.transport is not None:
                    ws.transport.abort()
                raise
        self._ws = ws
        return ws

    def __await__(self):
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._connect()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            await self._ws.close()


__all__ = ["ClientConnection", "InvalidURI", "connect", "parse_url"]
