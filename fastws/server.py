"""The WebSocket server: HTTP Upgrade, then either API over the same connection core.

    async def handler(ws):
        async for message in ws:
            await ws.send(message)

    async with fastws.serve(handler, "127.0.0.1", 8765) as server:
        await server.serve_forever()

or, with no coroutine per message, ``fastws.serve(EchoListener, ...)`` where
``EchoListener`` subclasses ``fastws.Listener``.

Before the upgrade, an optional ``process_request(ws, request)`` hook (plain
function or coroutine) sees the path, query, headers and ``ws.remote_address``
and returns ``None`` (accept), an ``Accept`` (accept with a subprotocol, extra
headers and per-connection ``user_data``), or a ``Response`` (answer with plain HTTP,
which is how health checks and an HTTP API share the port); raising
``HandshakeError(status, reason)`` rejects with that status. A refusal is plain
text unless ``render_refusal(request, status, reason)`` returns a ``Response``
(an HTTP API answers its own format even for a body the server refused as too
large).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fastws import closecodes
from fastws.connection import CLOSED, OPEN, Connection
from fastws.deflate import PerMessageDeflate, deflate_config
from fastws.errors import ConnectionClosed, HandshakeError
from fastws.handshake import (
    Request,
    RequestReader,
    error_response,
    header_tokens,
    http_response,
    response_101,
    server_handshake,
)
from fastws.protocol import Listener, Options, WebSocket, broadcast, timers_due

logger = logging.getLogger("fastws")

# HTTP heads are read into one shared scratch buffer: reads are synchronous on
# the loop's thread, so no connection needs a buffer of its own before it is a
# WebSocket.
_SCRATCH = bytearray(65536)
_SCRATCH_VIEW = memoryview(_SCRATCH)


def _scratch_buffer(sizehint: int) -> memoryview:
    return _SCRATCH_VIEW


# The handler's done callback reads no context variable: one empty context serves
# every connection instead of a copy of the current one each.
_CALLBACK_CONTEXT = contextvars.Context()


@dataclass
class Accept:
    """Returned by ``process_request`` to accept with choices of its own."""

    subprotocol: str | None = None
    user_data: Any = None  # becomes ws.user_data
    headers: Sequence[tuple[str, str]] = ()


@dataclass
class Response:
    """Returned by ``process_request`` to answer with plain HTTP instead of upgrading."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Sequence[tuple[str, str]] = ()


Handler = Callable[[WebSocket], Awaitable[None]]
ProcessRequest = Callable[["ServerConnection", Request], Any]
RenderRefusal = Callable[[Request, int, str], "Response | None"]


class ServerConnection(WebSocket):
    """A connection accepted by a ``Server``."""

    __slots__ = ("server", "_request", "_head", "_reader", "handler_task")

    def __init__(self, server: Server) -> None:
        super().__init__(server.options, server.loop)
        self.server = server
        self.listener = None
        self._request: Request | None = None
        self._head = b""  # the upgrade request's bytes, kept instead of the parsed request
        self._reader: RequestReader | None = RequestReader(max_size=server.options.max_header_size)
        self._get_buffer = _scratch_buffer
        self.handler_task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.remote_address = transport.get_extra_info("peername")
        self.deadline = self.loop.time() + self.options.open_timeout
        server = self.server
        server.connections.add(self)
        if server.max_connections is not None and len(server.connections) > server.max_connections:
            server.count_failure(503)
            self._reply(http_response(503, "too many connections\n"))
        server.check_accept_limit()

    @property
    def request(self) -> Request | None:
        """The HTTP request of the upgrade (None before it is read).

        Once the connection is a WebSocket only the request's bytes are kept,
        a fraction of the parsed headers' size; the first read after that
        parses them again.
        """
        request = self._request
        if request is None and self._head:
            reader = RequestReader(max_size=len(self._head))
            request = self._request = reader.feed(self._head)
        return request

    def _connection_gone(self) -> None:
        server = self.server
        server.connections.discard(self)
        self._reader = None
        server.check_accept_limit()

    # -- the HTTP Upgrade ----------------------------------------------------------

    def _on_handshake_data(self, nbytes: int) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            request = reader.feed(bytes(_SCRATCH_VIEW[:nbytes]))
        except HandshakeError as exc:
            logger.debug("fastws: bad request from %s: %s", self.remote_address, exc)
            self.server.count_failure(exc.status)
            self._reply(error_response(exc))
            return
        if request is None:
            return
        try:
            if not self._body_complete(request, reader):
                return
        except HandshakeError as exc:
            self._reply(self._refusal(request, exc))
            return
        self._request = request
        self.transport.pause_reading()  # nothing more is read until the decision
        hook = self.server.process_request
        if hook is None:
            self._decide(None)
            return
        try:
            decision = hook(self, request)
        except Exception as exc:
            self._hook_failed(exc)
            return
        if inspect.isawaitable(decision):
            task = self.loop.create_task(self._decide_later(decision))
            self.server._tasks.add(task)
            task.add_done_callback(self.server._tasks.discard)
        else:
            self._decide(decision)

    def _body_complete(self, request: Request, reader: RequestReader) -> bool:
        """Read a plain HTTP request's body by its Content-Length (no chunked bodies)."""
        headers = request.headers
        if "transfer-encoding" in headers:
            raise HandshakeError(411, "chunked request bodies are not supported; send Content-Length")
        length_text = headers.get("content-length")
        if length_text is None:
            return True
        if not length_text.isdigit() or len(headers.get_all("content-length")) > 1:
            raise HandshakeError(400, "invalid Content-Length")
        length = int(length_text)
        limit = self.server.max_body_size
        if length > limit:
            raise HandshakeError(413, f"request body over {limit} bytes")
        leftover = reader.leftover
        if len(leftover) < length:
            return False
        request.body = leftover[:length]
        reader.leftover = leftover[length:]
        return True

    async def _decide_later(self, pending: Awaitable[Any]) -> None:
        try:
            decision = await pending
        except Exception as exc:
            self._hook_failed(exc)
            return
        self._decide(decision)

    def _hook_failed(self, exc: Exception) -> None:
        if not isinstance(exc, HandshakeError):
            logger.error("fastws: error in process_request", exc_info=exc)
            exc = HandshakeError(500, "internal server error")
        self.server.count_failure(exc.status)
        self._reply(self._refusal(self.request, exc))

    def _refusal(self, request: Request, exc: HandshakeError) -> bytes:
        """The answer to a request refused for ``exc``: the server's ``render_refusal``
        if it gives one, else plain text."""
        render = self.server.render_refusal
        answer = render(request, exc.status, exc.reason) if render is not None else None
        if answer is None:
            return error_response(exc)
        return http_response(
            answer.status, answer.body, content_type=answer.content_type, headers=answer.headers
        )

    def _reply(self, response: bytes) -> None:
        transport = self.transport
        self._reader = None
        if transport is not None and not transport.is_closing():
            transport.write(response)
            transport.close()

    def _decide(self, decision: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if isinstance(decision, Response):
            if decision.status >= 400 and "websocket" in header_tokens(
                self.request.headers, "Upgrade"
            ):
                self.server.count_failure(decision.status)
            self._reply(
                http_response(
                    decision.status,
                    decision.body,
                    content_type=decision.content_type,
                    headers=decision.headers,
                )
            )
            return
        server = self.server
        request = self.request
        try:
            accepted = server_handshake(
                request,
                subprotocols=server.subprotocols,
                deflate=server.deflate,
                origins=server.origins,
            )
        except HandshakeError as exc:
            logger.debug("fastws: handshake refused for %s: %s", self.remote_address, exc)
            server.count_failure(exc.status)
            self._reply(error_response(exc))
            return
        headers: Sequence[tuple[str, str]] = ()
        if isinstance(decision, Accept):
            if decision.subprotocol is not None:
                accepted = dataclasses.replace(accepted, subprotocol=decision.subprotocol)
            self.user_data = decision.user_data
            headers = decision.headers
        elif decision is not None:
            raise TypeError("process_request must return None, Accept or Response")
        self.subprotocol = accepted.subprotocol
        deflate = None
        if accepted.deflate is not None:
            deflate = PerMessageDeflate(accepted.deflate, server=True, config=server.deflate)
        conn = Connection(
            client=False, max_message_size=self.options.max_message_size, deflate=deflate
        )
        reader = self._reader
        leftover = reader.leftover
        self._head = reader.head
        self._reader = None
        self._request = None
        self.transport.write(response_101(request, accepted, headers))
        self.transport.resume_reading()
        if server.listener_factory is not None:
            self.listener = server.listener_factory()
        self._open(conn, leftover)
        if server.handler is not None and conn.state == OPEN:
            # The task runs the handler's own coroutine and its end is handled by a
            # done callback: no wrapper coroutine lives as long as the connection.
            task = self.handler_task = self.loop.create_task(server.handler(self))
            task.add_done_callback(self._handler_done, context=_CALLBACK_CONTEXT)

    def _handler_done(self, task: asyncio.Task) -> None:
        """The handler returned or raised: close normally, or with 1011 after an error."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionClosed):
            logger.error("fastws: error in the connection handler; closing with 1011", exc_info=exc)
            conn = self.conn
            if conn.state != CLOSED:
                conn.fail(closecodes.INTERNAL_ERROR, "internal error")
                self._flush_soon()
            return
        self.close_nowait()


class Server:
    """A listening WebSocket server; ``connections`` holds the open ones."""

    def __init__(
        self,
        handler: Handler | None,
        listener_factory: Callable[[], Listener] | None,
        options: Options,
        *,
        subprotocols: Sequence[str] = (),
        origins: Collection[str] | None = None,
        process_request: ProcessRequest | None = None,
        max_connections: int | None = None,
        accept_limit: int | None = None,
        max_body_size: int = 65536,
        render_refusal: RenderRefusal | None = None,
    ) -> None:
        self.handler = handler
        self.render_refusal = render_refusal
        self.max_body_size = max_body_size
        self.listener_factory = listener_factory
        self.options = options
        self.subprotocols = tuple(subprotocols)
        self.origins = set(origins) if origins is not None else None
        self.process_request = process_request
        self.max_connections = max_connections
        self.accept_limit = accept_limit
        """Open connections at which the listening sockets stop being read (see
        ``check_accept_limit``); ``None``: always read."""
        self.deflate = deflate_config(options.compression)
        self.loop = asyncio.get_running_loop()
        self.connections: set[ServerConnection] = set()
        self._tasks: set[asyncio.Task] = set()
        self._servers: list[asyncio.base_events.Server] = []
        self._listening: list[socket.socket] = []  # duplicates kept to resume accepting
        self._create_options: dict[str, Any] = {}
        self._accepting = False  # the listening sockets are being read
        self._resuming: asyncio.Task | None = None
        self._stopped = False  # stop_accepting or close: never accept again
        self._closed: asyncio.Future = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self.handshake_failures: dict[int, int] = {}
        """Connections refused before becoming WebSockets, by HTTP status (408: timeout)."""

    def count_failure(self, status: int) -> None:
        self.handshake_failures[status] = self.handshake_failures.get(status, 0) + 1

    async def start(self, host: str | None, port: int | None, **kwargs: Any) -> None:
        server = await self.loop.create_server(
            lambda: ServerConnection(self), host, port, **kwargs
        )
        self._servers = [server]
        self._accepting = True
        if self.accept_limit is not None:
            self._listening = [sock.dup() for sock in server.sockets]
            self._create_options = {
                k: v for k, v in kwargs.items() if k in ("ssl", "backlog", "ssl_handshake_timeout")
            }
        self._schedule_timer()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        if self._listening:
            return tuple(self._listening)
        return tuple(sock for server in self._servers for sock in server.sockets)

    def check_accept_limit(self) -> None:
        """Stop reading the listening sockets at ``accept_limit`` open connections and
        read them again once 2% fewer (at least one fewer) are open.

        Why: a process near its open-file limit would fail its accepts; a listening
        socket shared with other processes (the hub's workers) leaves the waiting
        connections to those still reading it. Pausing closes this process's own
        duplicate of each listening socket; resuming listens on a fresh duplicate.
        """
        limit = self.accept_limit
        if limit is None or self._stopped:
            return
        count = len(self.connections)
        if self._accepting and count >= limit:
            self._accepting = False
            for server in self._servers:
                server.close()
            self._servers = []
            logger.info("fastws: %d connections open, the limit: no longer accepting", count)
        elif (
            not self._accepting
            and self._resuming is None
            and count <= limit - max(1, limit // 50)
        ):
            self._resuming = self.loop.create_task(self._resume_accepting())

    async def _resume_accepting(self) -> None:
        try:
            servers = [
                await self.loop.create_server(
                    lambda: ServerConnection(self), sock=sock.dup(), **self._create_options
                )
                for sock in self._listening
            ]
        except OSError as exc:
            logger.error("fastws: cannot accept again: %s", exc)
            return
        finally:
            self._resuming = None
        if self._stopped:
            for server in servers:
                server.close()
            return
        self._servers = servers
        self._accepting = True
        logger.info("fastws: %d connections open: accepting again", len(self.connections))
        self.check_accept_limit()

    @property
    def port(self) -> int:
        """The port of the first listening socket (handy with port 0)."""
        return self.sockets[0].getsockname()[1]

    def _schedule_timer(self) -> None:
        self._timer = self.loop.call_later(self.options.tick(), self._on_timer)

    def _on_timer(self) -> None:
        """Every tick: the timers of the connections that need a look (``timers_due``
        skips the quiet ones in C; an idle connection then costs no call per tick)."""
        now = self.loop.time()
        options = self.options
        interval, timeout = options.ping_interval or 0.0, options.ping_timeout or 0.0
        for ws in timers_due(self.connections, now, interval, timeout):
            if ws.conn is None and ws.deadline and now >= ws.deadline:
                self.count_failure(408)
            try:
                ws.check_timers(now)
            except Exception:
                logger.exception("fastws: error in the connection timer")
        if not self._closing or self.connections:
            self._schedule_timer()

    def broadcast(self, message: str | bytes, connections: Any = None) -> int:
        """Send ``message`` to ``connections`` (default: every open one), framed once."""
        return broadcast(self.connections if connections is None else connections, message)

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections go on.

        A socket shared with other processes stays open in them: connections
        waiting in its queue are accepted there instead.
        """
        self._stopped = True
        self._accepting = False
        for server in self._servers:
            server.close()

    async def close(
        self,
        code: int = closecodes.GOING_AWAY,
        reason: str = "server shutting down",
        timeout: float | None = None,
    ) -> None:
        """Stop accepting, close every connection with ``code``, wait up to ``timeout``."""
        if not (self._servers or self._listening):
            return
        self._closing = True
        self.stop_accepting()
        if self._resuming is not None:
            self._resuming.cancel()
        for sock in self._listening:
            sock.close()
        for ws in list(self.connections):
            if ws.conn is None:
                if ws.transport is not None:
                    ws.transport.close()
            else:
                ws.close_nowait(code, reason)
        deadline = self.options.close_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(deadline):
                while self.connections:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            for ws in list(self.connections):
                if ws.transport is not None:
                    ws.transport.abort()
        tasks = [ws.handler_task for ws in list(self.connections) if ws.handler_task]
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        if not self._closed.done():
            self._closed.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
        await asyncio.sleep(0)  # let handler tasks that just ended finish their step

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class serve:
    """Start a server: ``await serve(...)`` or ``async with serve(...) as server``.

    ``handler`` is either a coroutine function taking the connection (``async
    for`` API) or a ``Listener`` subclass / factory (callback API).
    """

    def __init__(
        self,
        handler: Handler | type[Listener] | Callable[[], Listener],
        host: str | None = None,
        port: int | None = None,
        *,
        subprotocols: Sequence[str] = (),
        origins: Collection[str] | None = None,
        process_request: ProcessRequest | None = None,
        max_connections: int | None = None,
        accept_limit: int | None = None,
        max_body_size: int = 65536,
        render_refusal: RenderRefusal | None = None,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        reuse_port: bool | None = None,
        backlog: int = 1024,
        **options: Any,
    ) -> None:
        self._args = (handler, host, port)
        self._kwargs = dict(
            subprotocols=subprotocols,
            origins=origins,
            process_request=process_request,
            max_connections=max_connections,
            accept_limit=accept_limit,
            max_body_size=max_body_size,
            render_refusal=render_refusal,
        )
        self._create = dict(ssl=ssl, sock=sock, reuse_port=reuse_port, backlog=backlog)
        if sock is not None:
            self._args = (handler, None, None)
        self._options = Options(**options)
        self._server: Server | None = None

    async def _start(self) -> Server:
        handler, host, port = self._args
        if isinstance(handler, type) and issubclass(handler, Listener):
            coroutine, factory = None, handler
        elif inspect.iscoroutinefunction(handler):
            coroutine, factory = handler, None
        elif callable(handler):
            coroutine, factory = None, handler
        else:
            raise TypeError("handler must be a coroutine function or a Listener class")
        server = Server(coroutine, factory, self._options, **self._kwargs)
        create = {k: v for k, v in self._create.items() if v is not None}
        await server.start(host, port, **create)
        self._server = server
        return server

    def __await__(self):
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            await self._server.close()


__all__ = ["Accept", "Response", "Server", "ServerConnection", "serve"]
