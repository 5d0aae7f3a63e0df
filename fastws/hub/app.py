"""The hub server: one port for the WebSocket endpoint, the HTTP API, probes and the demo.

/connection     WebSocket (subprotocol fastws.json or fastws.msgpack)
/api/...        HTTP API (see api.py)
/health         200 "ok" while the process serves
/ready          200 when the broker is usable, else 503 with the broker's state (JSON)
/metrics        Prometheus metrics (unless metrics = false)
/               the demo page (fastws/hub/static/index.html)
/static/NAME    the demo page's other files

With ``internal_port``, /metrics, /api/ and /ready are served only on that
second port (with /health); the public port keeps the WebSocket endpoint,
/health, the page, and /api/dev/token in insecure mode (the page needs it).

async with Hub(config) as hub:      # config: a validated HubConfig
    print(hub.port)
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import resource
import signal
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastws.handshake import Request, header_tokens
from fastws.hub.api import HttpApi, error_response, json_response
from fastws.hub.auth import Authenticator
from fastws.hub.broker import Broker, create_broker
from fastws.hub.commands.server_api import ServerApi
from fastws.hub.config import ConfigError, HubConfig, redact_url
from fastws.hub.hooks import Upgrade, load_hooks
from fastws.hub.metrics import CONTENT_TYPE, LoopLag, hub_samples, merge, render
from fastws.hub.node import Node
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import SUBPROTOCOLS
from fastws.hub.session import Session
from fastws.hub.tls import server_context
from fastws.server import Accept, Response, Server, ServerConnection, serve

logger = logging.getLogger("fastws.hub")

FILE_HEADROOM = 64
"""Descriptors a process keeps beyond its client connections (broker links, logs,
API calls), plus 2% of its open-file limit."""
STATIC_DIR = Path(__file__).parent / "static"
INTERNAL_PATHS = ("/metrics", "/ready", "/api/")
"""What only the internal port serves when there is one (prefixes)."""
DEV_TOKEN_PATHS = ("/api/dev/token", "/api/v1/dev/token")
INSECURE_WARNING_INTERVAL = 3600.0
INSECURE_WARNING = (
    "fastws hub: INSECURE development mode (--insecure): anonymous connections may subscribe, "
    "publish and send everywhere and /api/dev/token hands out tokens; configure "
    "jwt_secret_file or jwt_public_key and drop --insecure before exposing this server"
)

PLACEHOLDER = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>fastws hub</title>
<body><h1>fastws hub</h1>
<p>The demo page is missing: fastws/hub/static/index.html is not installed.</p>
<p>The hub is running: WebSocket endpoint <code>/connection</code>, HTTP API under
<code>/api/</code>, probes <code>/health</code> and <code>/ready</code>.</p>
</body></html>
"""


def choose_subprotocol(request: Request) -> str | None:
    """The first of the client's offered subprotocols that the hub speaks (its order wins)."""
    for offered in header_tokens(request.headers, "Sec-WebSocket-Protocol"):
        if offered in SUBPROTOCOLS:
            return offered
    return None


def origin_allowed(request: Request, allowed: list[str]) -> bool:
    """May a browser page from the request's ``Origin`` connect? Requests without
    ``Origin`` are not from a browser page and pass. An empty ``allowed`` means the
    hub's own host (the ``Host`` header); ``*`` means any."""
    origin = request.headers.get("origin")
    if origin is None or "*" in allowed:
        return True
    origin = origin.strip().lower()
    if allowed:
        return origin in {item.lower().rstrip("/") for item in allowed}
    host = (request.headers.get("host") or "").strip().lower()
    return bool(host) and urllib.parse.urlsplit(origin).netloc == host


def chosen_headers(request: Request, names: list[str]) -> dict[str, str]:
    """The headers of ``names`` the request carries (names lowercased), for the hooks."""
    chosen = {}
    for name in names:
        value = request.headers.get(name)
        if value is not None:
            chosen[name.lower()] = value
    return chosen


def upgrade_token(request: Request) -> str | None:
    """A token sent with the upgrade: ``?token=`` or ``Authorization: Bearer``."""
    tokens = request.query.get("token")
    if tokens:
        return tokens[0]
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def accept_limit_from_files() -> int | None:
    """Connections this process can hold: its open-file limit less headroom
    (``None`` when the limit is unlimited)."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if files == resource.RLIM_INFINITY:
        return None
    return max(1, files - FILE_HEADROOM - files // 50)


class Hub:
    """The hub on one port: start it with ``async with Hub(config)`` or ``await hub.start()``.

    ``hooks`` (a module, or any object with async ``on_*`` attributes) takes the place of
    the module that ``config.hooks`` names, for code that builds its hub in Python.
    """

    def __init__(
        self,
        config: HubConfig,
        broker: Broker | None = None,
        *,
        hooks: object | None = None,
        sock: socket.socket | None = None,
        internal_sock: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.auth = Authenticator(config)
        loaded = load_hooks(config, hooks)
        if not (config.has_token_key or config.insecure or (loaded and loaded.has("connect"))):
            named = loaded.module.name if loaded and loaded.module else config.hooks
            raise ConfigError(f"no token key, and the hooks {named!r} define no on_connect")
        broker = broker if broker is not None else create_broker(config)
        if loaded and broker is not None and not broker.counts_occupancy:
            loaded.refuse_occupancy(type(broker).__name__)
        self.node = Node(config, broker, self.auth, loaded)
        self.server_api = ServerApi(self.node)
        """The server API as Python calls (``fastws.hub.commands.server_api``)."""
        self.api = HttpApi(self.node, self.server_api)
        self.server: Server | None = None
        self.internal_server: Server | None = None
        self.sock = sock  # a listening socket to serve instead of binding host:port
        self.internal_sock = internal_sock  # the same for internal_host:internal_port
        self.lag = LoopLag()
        self.worker = "0"  # the ``worker`` label of this process's metrics
        self.metrics_source: Callable[[], Awaitable[bytes]] | None = None
        """Where /metrics comes from; None: this process alone (no master)."""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def internal_port(self) -> int | None:
        """The port of /metrics, /api/ and /ready when they have their own."""
        return self.internal_server.port if self.internal_server is not None else None

    async def start(self) -> Hub:
        config = self.config
        if config.jwt_secret and len(config.jwt_secret.encode()) < 32:
            logger.warning("fastws hub: jwt_secret is shorter than 32 bytes; HS256 wants more")
        ssl_context = server_context(config)
        await self.node.start()
        self.lag.start()
        try:
            if self.node.hooks is not None:
                await self.node.hooks.start(self.server_api)
            self.server = await self._serve(
                self.process_request, config.host, config.port, self.sock, ssl_context
            )
            if config.internal_port is not None:
                self.internal_server = await self._serve(
                    self.process_internal_request,
                    config.internal_host or config.host,
                    config.internal_port,
                    self.internal_sock,
                    ssl_context,
                )
        except BaseException:
            if self.server is not None:
                await self.server.close()
            self.lag.stop()
            await self.node.close()
            raise
        return self

    async def _serve(
        self,
        process_request: Callable[[ServerConnection, Request], Any],
        host: str,
        port: int,
        sock: socket.socket | None,
        ssl_context: Any = None,
    ) -> Server:
        config = self.config
        node = self.node
        return await serve(
            lambda: Session(node),
            host,
            port,
            ssl=ssl_context,
            sock=sock,
            process_request=process_request,
            render_refusal=self.render_refusal,
            max_connections=config.max_connections or None,
            accept_limit=config.accept_limit or accept_limit_from_files(),
            compression=False,
            # The hub answers oversized commands and bodies itself (413); the server's
            # limits only stop what is far beyond.
            max_message_size=2 * config.max_message_size,
            max_body_size=2 * config.max_body_size,
            max_write_buffer=2 * config.max_send_buffer,
            slow_consumer_code=codes.SLOW_CONSUMER.code,
            ping_interval=config.ping_interval or None,
            ping_timeout=config.ping_timeout,
        )

    async def close(self, disconnect: codes.Disconnect = codes.GOING_AWAY) -> None:
        """Tell every client, close the connections, then stop the node and the broker."""
        if self.internal_server is not None:
            await self.internal_server.close()
        if self.server is not None:
            self.node.disconnect_all(disconnect)
            await self.server.close(
                disconnect.code, disconnect.reason, timeout=self.config.shutdown_timeout
            )
        self.lag.stop()
        if self.node.hooks is not None:
            await self.node.hooks.stop()
        await self.node.close()

    async def __aenter__(self) -> Hub:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- routing ---------------------------------------------------------------------

    def process_request(self, ws: ServerConnection, request: Request) -> Any:
        path = request.path
        if path == "/connection":
            if not origin_allowed(request, self.config.allowed_origins):
                origin = request.headers.get("origin")
                return Response(403, f"origin {origin!r} is not allowed (allowed_origins)\n")
            upgrade = Upgrade(upgrade_token(request), chosen_headers(request, self.config.hook_headers))
            return Accept(subprotocol=choose_subprotocol(request), user_data=upgrade)
        if "websocket" in header_tokens(request.headers, "Upgrade"):
            return Response(404, f"no WebSocket endpoint at {path}; use /connection\n")
        internal = self.config.internal_port is not None and path.startswith(INTERNAL_PATHS)
        if internal and not (self.auth.insecure and path in DEV_TOKEN_PATHS):
            return error_response(codes.NOT_FOUND, f"nothing at {path} (on the public port)")
        return self._common(request)

    def process_internal_request(self, ws: ServerConnection, request: Request) -> Any:
        """The internal port: /metrics, /api/, /ready and /health, nothing else."""
        path = request.path
        if path == "/health" or path.startswith(INTERNAL_PATHS):
            return self._common(request)
        return error_response(codes.NOT_FOUND, f"nothing at {path} (on the internal port)")

    def render_refusal(self, request: Request, status: int, reason: str) -> Response | None:
        """Requests to the HTTP API are refused in its JSON error format; others in text."""
        if request.path.startswith("/api/"):
            return error_response(status, reason)
        return None

    def _common(self, request: Request) -> Any:
        path = request.path
        if path.startswith("/api/"):
            return self.api.handle(request)
        if path == "/health":
            return Response(200, "ok")
        if path == "/ready":
            broker = self.node.broker
            if broker.healthy:
                return Response(200, "ready")
            return json_response(503, {"ready": False, "broker": broker.status()})
        if path == "/metrics" and self.config.metrics:
            return self._metrics()
        if path in ("/", "/index.html"):
            return self._static("index.html", placeholder=True)
        if path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        return error_response(codes.NOT_FOUND, f"nothing at {path}")

    def local_metrics(self) -> bytes:
        """The metrics of this process alone, as Prometheus text."""
        return render(merge([hub_samples(self, self.worker, self.lag)]))

    async def _metrics(self) -> Response:
        source = self.metrics_source
        text = await source() if source is not None else self.local_metrics()
        return Response(200, text, content_type=CONTENT_TYPE)

    def _static(self, name: str, placeholder: bool = False) -> Response:
        root = STATIC_DIR.resolve()
        target = (root / name).resolve()
        if root not in target.parents or not target.is_file():
            if placeholder:
                return Response(200, PLACEHOLDER, content_type="text/html; charset=utf-8")
            return Response(404, f"no file {name}\n")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return Response(
            200,
            target.read_bytes(),
            content_type=content_type,
            headers=(("Cache-Control", "no-cache"),),
        )


async def warn_insecure() -> None:
    """Say at start, and again every hour, that this hub is open to anyone."""
    while True:
        logger.warning(INSECURE_WARNING)
        await asyncio.sleep(INSECURE_WARNING_INTERVAL)


def _address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listening_line(config: HubConfig, port: int, internal_port: int | None = None) -> str:
    """What ``python -m fastws`` prints once it serves (tests and scripts read the ports)."""
    shown = _address(config.host)
    secure = "s" if config.certfile else ""
    line = (
        f"fastws hub listening on http{secure}://{shown}:{port}/ "
        f"(WebSocket ws{secure}://{shown}:{port}/connection)"
    )
    if internal_port is not None:
        internal = _address(config.internal_host or config.host)
        line += f"; internal port http{secure}://{internal}:{internal_port}/"
    return line


async def run_hub(config: HubConfig) -> None:
    """Serve until SIGINT or SIGTERM, then tell clients (1001) and close."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    for sig in (signal.SIGHUP, signal.SIGUSR2):
        loop.add_signal_handler(
            sig,
            logger.warning,
            "fastws hub: %s ignored: reloads and upgrades need a supervising master "
            "(--workers 2 or more)",
            sig.name,
        )
    warnings = loop.create_task(warn_insecure()) if config.insecure else None
    async with Hub(config) as hub:
        logger.info(
            "fastws hub: node %s, broker %s, %s mode",
            hub.node.id,
            redact_url(config.broker),
            "insecure development" if hub.auth.insecure else "token",
        )
        print(listening_line(config, hub.port, hub.internal_port), flush=True)
        await stop
        logger.info("fastws hub: shutting down")
        if warnings is not None:
            warnings.cancel()


__all__ = ["Hub", "listening_line", "run_hub"]
