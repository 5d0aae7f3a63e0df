"""The hub's configuration: one dataclass, filled from flags > env > TOML file > defaults.

Every option ``name`` has a flag ``--name-with-dashes``, an environment variable
``FASTWS_NAME`` and a top-level TOML key ``name``. The top-level namespace
options (``history_size``, ``presence``, ``allow_subscribe_for_client``...) are
those of the default namespace (channels without ``:``); other namespaces exist
only in the file, as an array of tables (``fastws.hub.namespaces``)::

    port = 8080
    jwt_secret = "change me"

    [[namespaces]]
    name = "chat"           # the channels chat:...
    history_size = 100      # publications kept per channel (0: no history)
    history_ttl = 300       # seconds a publication stays in history
    presence = true         # who is subscribed, on request
    join_leave = true       # push join/leave to subscribers
    allow_subscribe_for_client = true

Unknown keys and values of the wrong type are errors that name the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fastws.errors import WebSocketError
from fastws.hub.httpheaders import name_error, value_error
from fastws.hub.namespaces import KINDS as NAMESPACE_KINDS
from fastws.hub.namespaces import OPTIONS as NAMESPACE_OPTIONS
from fastws.hub.namespaces import Namespace, Namespaces, namespace_error

ENV_PREFIX = "FASTWS_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("plain", "json")
BROKER_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
    "nats",
)
# Schemes whose one URL lists several hosts (the seeds of a cluster, the sentinels).
MULTI_HOST_SCHEMES = {"redis+cluster": 6379, "rediss+cluster": 6379}
MULTI_HOST_SCHEMES |= {"redis+sentinel": 26379, "rediss+sentinel": 26379}
HOOK_EVENTS = ("connect", "subscribe", "publish", "rpc", "refresh", "notify")
NOTIFY_EVENTS = ("disconnect", "channel_occupied", "channel_vacated")  # proxy_notify_endpoint's


class ConfigError(WebSocketError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def default_namespaces() -> list[Namespace]:
    """Rooms of the demo page (``chat:...``) keep 100 publications for 5 minutes, with
    presence; they grant nothing by themselves."""
    return [Namespace("chat", history_size=100, history_ttl=300, presence=True, join_leave=True)]


# A key of files written before namespaces replaced channel patterns.
_MIGRATED = {
    "channels": "[[channels]] tables with a pattern became [[namespaces]] tables with a name "
    "(pattern = \"chat:*\" is name = \"chat\"); see docs/hub.md",
}


_METAVARS = {"int": "N", "opt_int": "N", "float": "SECONDS", "str_list": "LIST"}


def _option(
    default: Any, kind: str, help: str, *, factory: Any = None, metavar: str | None = None
) -> Any:
    metadata = {"kind": kind, "help": help, "metavar": metavar or _METAVARS.get(kind, "VALUE")}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class HubConfig:
    """Everything ``python -m fastws`` can be told; ``validate()`` checks it as a whole."""

    host: str = _option("127.0.0.1", "str", "address to listen on", metavar="HOST")
    port: int = _option(8080, "int", "port to listen on (0 picks a free one)")
    broker: str = _option(
        "memory://",
        "str",
        "broker URL; memory:// keeps everything in this process, redis://HOST:PORT/DB joins "
        "nodes through Redis (several servers, comma-separated, shard the channels); "
        "redis+cluster://HOST:PORT,HOST:PORT uses a Redis Cluster, "
        "redis+sentinel://HOST:PORT,HOST:PORT/MASTER the master that Sentinel names; "
        "rediss... for TLS; nats://HOST:PORT[,HOST:PORT] through NATS JetStream (the servers "
        "of one cluster)",
        metavar="URL",
    )
    broker_tls_ca: str | None = _option(
        None, "opt_str", "PEM CA certificates that sign the Redis servers' certificates "
        "(rediss...; default: the system's)", metavar="FILE"
    )
    broker_tls_cert: str | None = _option(
        None, "opt_str", "PEM client certificate for Redis servers that ask for one (rediss...)",
        metavar="FILE",
    )
    broker_tls_key: str | None = _option(
        None, "opt_str", "PEM private key of broker_tls_cert (when not in that file)",
        metavar="FILE",
    )
    broker_tls_check_hostname: bool = _option(
        True, "bool", "check that a Redis server's certificate names the host it was reached "
        "at (rediss...)", metavar="BOOL"
    )
    broker_timeout: float = _option(
        2.0, "float", "seconds a Redis command or connection attempt may take"
    )
    broker_queue_timeout: float = _option(
        10.0, "float", "seconds a Redis call may wait for a free connection under load; "
        "past it the call fails with 503 (overloaded), which never opens the circuit"
    )
    broker_failure_threshold: int = _option(
        3, "int", "Redis failures in a row that open the circuit (calls then fail at once, 503)"
    )
    broker_cooldown: float = _option(
        1.0, "float", "seconds the circuit stays open before Redis is probed again"
    )
    broker_cooldown_max: float = _option(
        30.0, "float", "longest wait between probes (the wait doubles after each failed probe)"
    )
    presence_ttl: float = _option(
        60.0,
        "float",
        "seconds a presence entry outlives its node's last refresh (Redis and NATS brokers)",
    )
    node_ttl: float = _option(
        6.0,
        "float",
        "seconds a node that stopped without a goodbye (killed, cut off from Redis) still "
        "counts: in the cluster's info, and as a subscriber of its channels (Redis broker)",
    )
    local_delivery_on_outage: bool = _option(
        False, "bool", "while Redis is down, deliver publications to this node's subscribers "
        "(under a new epoch, so nobody takes them for continuous history)", metavar="BOOL"
    )
    workers: int = _option(
        1,
        "workers",
        "worker processes sharing the port, or 'auto' (one per core); above 1 a master "
        "supervises them (SIGHUP reloads, SIGUSR2 upgrades; see docs/operations.md)",
        metavar="N",
    )
    drain_window: float = _option(
        10.0, "float", "seconds over which a reloading worker spreads its clients' reconnects"
    )
    worker_start_timeout: float = _option(
        30.0, "float", "seconds a new worker has to report ready before a reload is abandoned"
    )
    certfile: str | None = _option(
        None, "opt_str", "PEM certificate chain: serve wss:// and https:// (TLS)", metavar="FILE"
    )
    keyfile: str | None = _option(
        None, "opt_str", "PEM private key of certfile (when not in the certfile)", metavar="FILE"
    )
    metrics: bool = _option(
        True, "bool", "serve Prometheus metrics at /metrics", metavar="BOOL"
    )
    internal_port: int | None = _option(
        None,
        "opt_int",
        "a second port for /metrics, /api/ and /ready, which the public port then does not "
        "serve (0 picks a free one)",
    )
    internal_host: str | None = _option(
        None, "opt_str", "address of the internal port (default: host)", metavar="HOST"
    )
    log_level: str = _option(
        "info", "str", "debug, info, warning, error or critical", metavar="LEVEL"
    )
    log_format: str = _option(
        "plain", "str", "plain text lines or json (one object per line)", metavar="FORMAT"
    )
    insecure: bool = _option(
        False,
        "bool",
        "run without a token key: anonymous connections may do everything and "
        "/api/dev/token hands out tokens (development only)",
        metavar="BOOL",
    )
    jwt_secret: str | None = _option(
        None,
        "secret",
        "HS256 secret for connection tokens (prefer jwt_secret_file)",
        metavar="SECRET",
    )
    jwt_secret_file: str | None = _option(
        None,
        "opt_str",
        "file whose content (trailing newline removed) is jwt_secret",
        metavar="FILE",
    )
    jwt_public_key: str | None = _option(
        None,
        "opt_str",
        "PEM file with the RSA (RS256) or EC P-256 (ES256) public key for tokens",
        metavar="FILE",
    )
    jwt_audience: str | None = _option(
        None, "opt_str", "required 'aud' claim of tokens", metavar="AUD"
    )
    jwt_issuer: str | None = _option(
        None, "opt_str", "required 'iss' claim of tokens", metavar="ISS"
    )
    jwt_leeway: float = _option(5.0, "float", "seconds of clock skew allowed for exp and nbf")
    api_key: str | None = _option(
        None,
        "secret",
        "key of the HTTP API (Authorization: apikey KEY); without it the API is off "
        "(prefer api_key_file)",
        metavar="KEY",
    )
    api_key_file: str | None = _option(
        None,
        "opt_str",
        "file whose content (trailing newline removed) is api_key",
        metavar="FILE",
    )
    allowed_origins: list[str] = _option(
        None,
        "str_list",
        "comma-separated Origin values browsers may connect from; * allows any "
        "(default: only the hub's own host)",
        factory=list,
        metavar="ORIGINS",
    )
    max_connections: int = _option(0, "int", "open connections at most (0: no limit)")
    accept_limit: int = _option(
        0,
        "int",
        "open connections at which a process stops accepting, leaving new ones to the "
        "other workers, until a few have gone (0: its open-file limit less headroom)",
    )
    max_subscriptions: int = _option(128, "int", "channels one connection may subscribe to")
    max_message_size: int = _option(65536, "int", "largest command or publication, in bytes")
    max_body_size: int = _option(65536, "int", "largest HTTP API request body, in bytes")
    max_send_buffer: int = _option(
        1 << 20, "int", "bytes queued for one client before it is dropped as a slow consumer"
    )
    command_rate: float = _option(
        100.0, "float", "commands per second per connection (sustained)", metavar="RATE"
    )
    command_burst: int = _option(200, "int", "commands a connection may send at once")
    max_rejected_commands: int = _option(
        100, "int", "commands refused in a row for rate before the connection is closed (4029)"
    )
    connect_timeout: float = _option(
        10.0, "float", "seconds a new connection has to send its connect command"
    )
    ping_interval: float = _option(
        25.0, "float", "seconds of silence before the server pings a client (0: never)"
    )
    ping_timeout: float = _option(20.0, "float", "seconds to wait for the pong")
    history_meta_ttl: float = _option(
        86400.0, "float", "seconds a channel's stream position is kept after its last publication"
    )
    shutdown_timeout: float = _option(
        5.0, "float", "seconds to wait for clients to close on shutdown"
    )
    hooks: str | None = _option(
        None,
        "opt_str",
        "Python module whose async on_connect, on_subscribe, on_publish, on_rpc, on_refresh, "
        "on_disconnect, on_channel_occupied, on_channel_vacated are called in-process "
        "(see docs/hooks.md)",
        metavar="MODULE",
    )
    proxy_connect_endpoint: str | None = _option(
        None, "opt_str", "URL the connect hook is POSTed to (when the module has none)",
        metavar="URL",
    )
    proxy_subscribe_endpoint: str | None = _option(
        None, "opt_str", "URL the subscribe hook is POSTed to", metavar="URL"
    )
    proxy_publish_endpoint: str | None = _option(
        None, "opt_str", "URL the publish hook is POSTed to", metavar="URL"
    )
    proxy_rpc_endpoint: str | None = _option(
        None, "opt_str", "URL the rpc hook is POSTed to", metavar="URL"
    )
    proxy_refresh_endpoint: str | None = _option(
        None, "opt_str", "URL the refresh hook is POSTed to", metavar="URL"
    )
    proxy_notify_endpoint: str | None = _option(
        None,
        "opt_str",
        "URL the notifications (disconnect, channel_occupied, channel_vacated) are POSTed to",
        metavar="URL",
    )
    proxy_notify_events: list[str] = _option(
        None,
        "str_list",
        "comma-separated notifications POSTed to proxy_notify_endpoint (with NATS: disconnect)",
        factory=lambda: list(NOTIFY_EVENTS),
        metavar="EVENTS",
    )
    hook_headers: list[str] = _option(
        None,
        "str_list",
        "headers of a connection's upgrade request that hooks see (the proxy sends them in the "
        "body and as HTTP headers)",
        factory=lambda: ["Cookie", "Authorization", "User-Agent", "Origin", "X-Forwarded-For"],
        metavar="HEADERS",
    )
    proxy_static_headers: dict[str, str] = _option(
        None,
        "headers",
        "headers sent on every request to the proxy endpoints, e.g. to authenticate the hub; "
        "repeat the flag, one NAME=VALUE each (env: one NAME=VALUE a line; TOML: a table); "
        "prefer proxy_static_headers_file or the env for secrets",
        factory=dict,
        metavar="NAME=VALUE",
    )
    proxy_static_headers_file: str | None = _option(
        None,
        "opt_str",
        "file of NAME=VALUE lines added to proxy_static_headers (read once, at load)",
        metavar="FILE",
    )
    connect_hook_timeout: float = _option(3.0, "float", "seconds the connect hook may take")
    subscribe_hook_timeout: float = _option(3.0, "float", "seconds the subscribe hook may take")
    publish_hook_timeout: float = _option(3.0, "float", "seconds the publish hook may take")
    rpc_hook_timeout: float = _option(5.0, "float", "seconds the rpc hook may take")
    refresh_hook_timeout: float = _option(3.0, "float", "seconds the refresh hook may take")
    notify_hook_timeout: float = _option(3.0, "float", "seconds a notification hook may take")
    history_size: int = _option(
        0, "int", "default namespace: publications kept per channel (0: no history)"
    )
    history_ttl: float = _option(
        0.0, "float", "default namespace: seconds a publication stays in history"
    )
    presence: bool = _option(
        False, "bool", "default namespace: keep who is subscribed", metavar="BOOL"
    )
    join_leave: bool = _option(
        False, "bool", "default namespace: push join and leave to subscribers", metavar="BOOL"
    )
    allow_subscribe_for_client: bool = _option(
        False, "bool", "default namespace: any user with a token may subscribe", metavar="BOOL"
    )
    allow_subscribe_for_anonymous: bool = _option(
        False, "bool", "default namespace: the anonymous user may subscribe", metavar="BOOL"
    )
    allow_publish_for_client: bool = _option(
        False, "bool", "default namespace: any user with a token may publish", metavar="BOOL"
    )
    allow_publish_for_subscriber: bool = _option(
        False, "bool", "default namespace: a subscriber of the channel may publish",
        metavar="BOOL",
    )
    allow_publish_for_anonymous: bool = _option(
        False, "bool", "default namespace: the anonymous user may publish", metavar="BOOL"
    )
    allow_history_for_client: bool = _option(
        False, "bool", "default namespace: any user with a token may read history",
        metavar="BOOL",
    )
    allow_history_for_subscriber: bool = _option(
        False, "bool", "default namespace: a subscriber of the channel may read history",
        metavar="BOOL",
    )
    allow_presence_for_client: bool = _option(
        False, "bool", "default namespace: any user with a token may read presence",
        metavar="BOOL",
    )
    allow_presence_for_subscriber: bool = _option(
        False, "bool", "default namespace: a subscriber of the channel may read presence",
        metavar="BOOL",
    )
    allow_user_limited_channels: bool = _option(
        False, "bool", "default namespace: name#u1,u2 may be subscribed by u1 and u2 only",
        metavar="BOOL",
    )
    require_subscription_token: bool = _option(
        False, "bool", "default namespace: subscribing needs a subscription token",
        metavar="BOOL",
    )
    subscribe_hook: bool = _option(
        False, "bool", "default namespace: the subscribe hook decides who subscribes",
        metavar="BOOL",
    )
    publish_hook: bool = _option(
        False, "bool", "default namespace: the publish hook decides and may rewrite publications",
        metavar="BOOL",
    )
    namespaces: list[Namespace] = _option(
        None, "namespaces", "namespaces other than the default one (TOML only)",
        factory=default_namespaces,
    )

    def __post_init__(self) -> None:
        self._namespaces: Namespaces | None = None

    @property
    def default_namespace(self) -> Namespace:
        """The namespace of channels without ``:``, from the top-level options."""
        return Namespace("", **{name: getattr(self, name) for name in NAMESPACE_OPTIONS})

    def namespace(self, channel: str) -> Namespace | None:
        """The options of ``channel``'s namespace; None when it is not declared."""
        namespaces = self._namespaces
        if namespaces is None:
            namespaces = self._namespaces = Namespaces(self.default_namespace, self.namespaces)
        return namespaces.get(channel)

    @property
    def has_connect_hook(self) -> bool:
        """Connections may be authenticated by a hook (a module, or a connect endpoint;
        a module without ``on_connect`` is refused when the hooks load)."""
        return self.hooks is not None or self.proxy_connect_endpoint is not None

    @property
    def has_token_key(self) -> bool:
        """A secret or a public key verifies connection tokens."""
        return self.jwt_secret is not None or self.jwt_public_key is not None

    def validate(self) -> HubConfig:
        """Raise ConfigError naming the first bad value; return self when all is well."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not between 0 and 65535")
        if self.workers < 1:
            raise ConfigError(f"workers: must be at least 1, not {self.workers}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"log_format: {self.log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
        if self.drain_window < 0:
            raise ConfigError("drain_window: must not be negative")
        if self.worker_start_timeout <= 0:
            raise ConfigError("worker_start_timeout: must be positive")
        if self.keyfile is not None and self.certfile is None:
            raise ConfigError("keyfile: needs certfile")
        for name in ("certfile", "keyfile"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name}: no such file {path!r}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        if broker_urls(self.broker)[0].scheme == "nats" and self.local_delivery_on_outage:
            raise ConfigError(
                "local_delivery_on_outage: not offered by the NATS broker (docs/deployment.md)"
            )
        self._validate_broker_tls()
        if self.internal_port is not None and not 0 <= self.internal_port <= 65535:
            raise ConfigError(f"internal_port: {self.internal_port} is not between 0 and 65535")
        if self.internal_port is not None and self.internal_port == self.port != 0:
            raise ConfigError("internal_port: must differ from port")
        if self.internal_host is not None and self.internal_port is None:
            raise ConfigError("internal_host: needs internal_port")
        for name in ("jwt_leeway", "shutdown_timeout", "ping_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must not be negative")
        if self.max_connections < 0:
            raise ConfigError("max_connections: must not be negative (0 means no limit)")
        if self.accept_limit < 0:
            raise ConfigError("accept_limit: must not be negative (0 means derived)")
        for name in (
            "max_subscriptions",
            "max_message_size",
            "max_body_size",
            "max_send_buffer",
            "command_rate",
            "command_burst",
            "max_rejected_commands",
            "connect_timeout",
            "ping_timeout",
            "history_meta_ttl",
            "broker_timeout",
            "broker_queue_timeout",
            "broker_failure_threshold",
            "broker_cooldown",
            "presence_ttl",
            "node_ttl",
            *(f"{event}_hook_timeout" for event in HOOK_EVENTS),
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, not {getattr(self, name)}")
        if self.broker_cooldown_max < self.broker_cooldown:
            raise ConfigError("broker_cooldown_max: must be at least broker_cooldown")
        for event in HOOK_EVENTS:
            url = getattr(self, f"proxy_{event}_endpoint")
            parts = urllib.parse.urlsplit(url) if url is not None else None
            if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
                raise ConfigError(f"proxy_{event}_endpoint: {url!r} is not an http(s):// URL")
        self._check_proxy_notify_events()
        self._check_proxy_headers()
        if self.max_send_buffer < self.max_message_size:
            raise ConfigError("max_send_buffer: must be at least max_message_size")
        error = namespace_error(self.default_namespace)
        if error:
            raise ConfigError(error)
        seen: set[str] = set()
        for i, namespace in enumerate(self.namespaces):
            where = f"namespaces[{i}]"
            if not namespace.name:
                raise ConfigError(f"{where}.name: must not be empty (the default namespace "
                                  "takes its options from the top level)")
            if namespace.name in seen:
                raise ConfigError(f"{where}.name: {namespace.name!r} appears twice")
            seen.add(namespace.name)
            error = namespace_error(namespace)
            if error:
                raise ConfigError(f"{where}.{error}")
        self._check_secrets()
        return self

    def _check_proxy_notify_events(self) -> None:
        unknown = [event for event in self.proxy_notify_events if event not in NOTIFY_EVENTS]
        if unknown:
            raise ConfigError(
                f"proxy_notify_events: {unknown[0]!r} is not a notification; "
                f"the notifications are {', '.join(NOTIFY_EVENTS)}"
            )
        if self.proxy_notify_endpoint is not None and not self.proxy_notify_events:
            raise ConfigError(
                "proxy_notify_events: empty, so proxy_notify_endpoint would get nothing; "
                "list the notifications it wants or remove the endpoint"
            )

    def _check_proxy_headers(self) -> None:
        """Merge the headers of proxy_static_headers_file in, then check every name and
        value; values are never repeated in errors (they are often secrets)."""
        headers = dict(self.proxy_static_headers)
        path = self.proxy_static_headers_file
        if path is not None:
            text = read_secret_file("proxy_static_headers_file", path)
            from_file = parse_headers(text, f"proxy_static_headers_file {path!r}")
            given = {name.lower(): name for name in headers}
            for name, value in from_file.items():
                if name.lower() in given and headers[given[name.lower()]] != value:
                    raise ConfigError(
                        f"proxy_static_headers: {name!r} is given both inline and in "
                        "proxy_static_headers_file; keep one"
                    )
                headers.setdefault(given.get(name.lower(), name), value)
            # Read once, where the configuration is loaded: workers get the merged headers.
            self.proxy_static_headers, self.proxy_static_headers_file = headers, None
        seen: set[str] = set()
        for name, value in headers.items():
            error = name_error(name)
            if error is None and name.lower() in seen:
                error = f"{name!r} is given twice (names are case-insensitive)"
            if error is None:
                why = value_error(value)
                error = None if why is None else f"the value of {name!r} {why}"
            if error is not None:
                raise ConfigError(f"proxy_static_headers: {error}")
            seen.add(name.lower())
        if headers and not any(
            getattr(self, f"proxy_{event}_endpoint") for event in HOOK_EVENTS
        ):
            raise ConfigError("proxy_static_headers: no proxy_*_endpoint is configured")

    def _validate_broker_tls(self) -> None:
        names = ("broker_tls_ca", "broker_tls_cert", "broker_tls_key")
        for name in names:
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name}: no such file {path!r}")
        if self.broker_tls_key is not None and self.broker_tls_cert is None:
            raise ConfigError("broker_tls_key: needs broker_tls_cert")
        uses_tls = any(url.scheme.startswith("rediss") for url in broker_urls(self.broker))
        for name in names:
            if getattr(self, name) is not None and not uses_tls:
                raise ConfigError(f"{name}: needs a rediss... broker URL (TLS)")

    def _check_secrets(self) -> None:
        """Read the key files, refuse empty secrets, and fail closed without a token key."""
        for name in SECRET_FILES:
            path = getattr(self, name + "_file")
            if path is not None and getattr(self, name) is None:
                setattr(self, name, read_secret_file(name + "_file", path))
        for name in SECRET_FILES:
            if getattr(self, name) == "":
                raise ConfigError(f"{name}: is empty; give the secret itself or leave it unset")
        if self.jwt_public_key is not None and not os.path.isfile(self.jwt_public_key):
            raise ConfigError(f"jwt_public_key: no such file {self.jwt_public_key!r}")
        if not self.has_token_key and not self.insecure and not self.has_connect_hook:
            alone = " (api_key alone protects only the HTTP API)" if self.api_key else ""
            raise ConfigError(
                "no token key: set jwt_secret_file, jwt_secret or jwt_public_key "
                "(flags --jwt-secret-file, --jwt-secret, --jwt-public-key; env FASTWS_JWT_SECRET_FILE, "
                f"FASTWS_JWT_SECRET, FASTWS_JWT_PUBLIC_KEY){alone}, or configure a connect hook (hooks, "
                "proxy_connect_endpoint), or pass --insecure for an open development hub"
            )


OPTIONS = {f.name: f for f in fields(HubConfig)}
SECRET_FILES = ("jwt_secret", "api_key")
"""Options that may come from a file: ``NAME_file`` holds ``NAME``."""
SECRET_OPTIONS = {name for name, f in OPTIONS.items() if f.metadata["kind"] in ("secret", "headers")}


def read_secret_file(name: str, path: str) -> str:
    """The secret in ``path``, without its trailing newline; empty is an error."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: {path!r} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{name}: {path!r} is empty")
    return text


def redact_url(url: str) -> str:
    """``url`` (or comma-separated URLs) with any password replaced by ``***``."""
    shown = []
    for part in url.split(","):
        scheme, sep, rest = part.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if sep and at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            part = f"{scheme}://{user}:***@{host}"
        shown.append(part)
    return ",".join(shown)


def broker_urls(broker: str) -> list[urllib.parse.SplitResult]:
    """The checked URLs of ``broker``: ``memory://``; one or more comma-separated
    ``redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB]`` (one per shard); or one
    ``redis[s]+cluster://[[USER]:PASSWORD@]HOST:PORT,HOST:PORT`` (seeds of a cluster) or
    ``redis[s]+sentinel://[[USER]:PASSWORD@]HOST:PORT,HOST:PORT/MASTER`` (the sentinels); or
    ``nats://[[USER]:PASSWORD@]HOST[:PORT]`` with more ``HOST:PORT`` of the same cluster."""
    supported = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
    head = broker.strip().partition("://")[0]
    if head in MULTI_HOST_SCHEMES:
        return [_multi_host_url(broker.strip())]
    parts = [part.strip() for part in broker.split(",")]
    if parts[0].startswith("nats://"):  # the servers after the first may omit the scheme
        parts = [part if "://" in part else f"nats://{part}" for part in parts]
    urls = []
    for part in parts:
        scheme = part.partition("://")[0]
        if "://" not in part or scheme not in BROKER_SCHEMES:
            raise ConfigError(
                f"broker: {redact_url(part)!r} is not supported; supported schemes: {supported}"
            )
        if scheme in MULTI_HOST_SCHEMES:
            raise ConfigError(f"broker: {scheme}:// cannot be combined with other brokers")
        url = urllib.parse.urlsplit(part)
        part = redact_url(part)  # named in errors without its password
        urls.append(url)
        if scheme == "memory":
            if len(parts) > 1:
                raise ConfigError("broker: memory:// cannot be combined with other brokers")
            continue
        try:
            url.port  # noqa: B018 (parses it)
        except ValueError:
            raise ConfigError(f"broker: {part!r} has an invalid port") from None
        if not url.hostname:
            raise ConfigError(f"broker: {part!r} names no host")
        db = url.path.lstrip("/")
        if scheme == "nats" and db:
            raise ConfigError(f"broker: {part!r}: a NATS URL names no database")
        if db and not db.isdigit():
            raise ConfigError(f"broker: {part!r}: the database must be a number, not {db!r}")
        if url.query or url.fragment:
            raise ConfigError(f"broker: {part!r}: options after '?' or '#' are not supported")
    schemes = {url.scheme for url in urls}
    if "nats" in schemes and schemes != {"nats"}:
        raise ConfigError("broker: a NATS broker cannot be combined with other brokers")
    keys = [(u.hostname, u.port or 6379) for u in urls if u.scheme != "memory"]
    if len(set(keys)) != len(keys):
        raise ConfigError("broker: the same server is listed twice")
    return urls


def _multi_host_url(broker: str) -> urllib.parse.SplitResult:
    url = urllib.parse.urlsplit(broker)
    shown = redact_url(broker)
    if url.query or url.fragment:
        raise ConfigError(f"broker: {shown!r}: options after '?' or '#' are not supported")
    name = url.path.strip("/")
    if url.scheme.endswith("+sentinel"):
        if not name or "/" in name:
            raise ConfigError(f"broker: {shown!r}: name the master after the hosts (/MASTER)")
    elif name:
        raise ConfigError(f"broker: {shown!r}: a Redis Cluster has no database or name")
    if not broker_hosts(url):
        raise ConfigError(f"broker: {shown!r} names no host")
    return url


def broker_hosts(url: urllib.parse.SplitResult) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of a ``redis+cluster://`` or ``redis+sentinel://`` URL."""
    default = MULTI_HOST_SCHEMES[url.scheme]
    hosts = []
    for item in url.netloc.rpartition("@")[2].split(","):
        one = urllib.parse.urlsplit("//" + item.strip())
        try:
            hosts.append((one.hostname, one.port or default))
        except ValueError:
            raise ConfigError(f"broker: {item!r} has an invalid port") from None
        if not one.hostname:
            raise ConfigError(f"broker: {item!r} is not HOST:PORT")
    if len(set(hosts)) != len(hosts):
        raise ConfigError("broker: the same host is listed twice")
    return hosts


# -- reading values ----------------------------------------------------------------


def _unknown(key: str, known: Any, where: str) -> ConfigError:
    if key in _MIGRATED:
        return ConfigError(f"{where}unknown key {key!r}: {_MIGRATED[key]}")
    hint = difflib.get_close_matches(key, list(known), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ConfigError(f"{where}unknown key {key!r}{suggestion}")


def _check_type(kind: str, value: Any, where: str) -> Any:
    """A TOML value checked against ``kind``; ints are accepted where floats are."""
    if kind in ("str", "opt_str", "secret"):
        if isinstance(value, str):
            return value
        expected = "a string"
    elif kind in ("int", "opt_int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif kind == "workers":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if value == "auto":
            return cpu_count()
        expected = 'an integer or "auto"'
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif kind == "str_list":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        expected = "an array of strings"
    elif kind == "headers":
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        expected = 'a table of strings (NAME = "VALUE")'
    else:
        raise AssertionError(kind)
    if kind in ("secret", "headers"):  # the value itself is not repeated
        raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__}")
    return _type_error(where, expected, value)


def _type_error(where: str, expected: str, value: Any) -> Any:
    raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")


def _namespaces_from(value: Any, where: str) -> list[Namespace]:
    if not isinstance(value, list):
        return _type_error(where, "an array of tables ([[namespaces]])", value)
    result = []
    for i, table in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(table, dict):
            _type_error(here, "a table", table)
        for key in table:
            if key not in NAMESPACE_KINDS:
                raise _unknown(key, NAMESPACE_KINDS, f"{here}: ")
        if "name" not in table:
            raise ConfigError(f"{here}: the 'name' key is missing")
        checked = {
            key: _check_type(NAMESPACE_KINDS[key], item, f"{here}.{key}")
            for key, item in table.items()
        }
        result.append(Namespace(**checked))
    return result


def values_from_mapping(data: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """Checked option values from a parsed TOML document; errors name ``source`` and the key."""
    prefix = f"{source}: " if source else ""
    values: dict[str, Any] = {}
    for key, value in data.items():
        option = OPTIONS.get(key)
        if option is None:
            raise _unknown(key, OPTIONS, prefix)
        kind = option.metadata["kind"]
        if kind == "namespaces":
            values[key] = _namespaces_from(value, f"{prefix}{key}")
        else:
            values[key] = _check_type(kind, value, f"{prefix}{key}")
    return values


def read_toml(path: str) -> dict[str, Any]:
    """Option values from a TOML file, checked for unknown keys and types."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return values_from_mapping(data, path)


def parse_text(name: str, text: str, where: str) -> Any:
    """An option value from a flag or an environment variable."""
    kind = OPTIONS[name].metadata["kind"]
    if kind == "workers":
        if text.strip().lower() == "auto":
            return cpu_count()
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f'{where}: expected an integer or "auto", got {text!r}') from None
    try:
        if kind == "opt_int":
            return int(text) if text else None
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        expected = "a number" if kind == "float" else "an integer"
        raise ConfigError(f"{where}: expected {expected}, got {text!r}") from None
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {text!r}")
    if kind == "str_list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "opt_str":
        return text or None
    if kind == "headers":
        return parse_headers(text, where)
    if kind == "namespaces":
        raise ConfigError(f"{where}: namespaces can only be declared in the TOML file")
    return text


def parse_headers(text: str, where: str) -> dict[str, str]:
    """Headers from ``NAME=VALUE`` lines (a flag given N times is N lines); blank lines and
    lines starting with ``#`` are skipped, spaces around names and values dropped."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{where}: line {number} is not NAME=VALUE")
        headers[name.strip()] = value.strip()
    return headers


def cpu_count() -> int:
    """The cores this process may run on (what ``workers = "auto"`` means)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def load_config(
    flags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    path: str | None = None,
) -> HubConfig:
    """Defaults, then the TOML file, then ``FASTWS_*`` variables, then flags (raw strings).

    ``path`` (or ``FASTWS_CONFIG``) names the file; none means defaults only. A secret
    and its file are one setting: the source that wins gives either.
    """
    flags = flags or {}
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_PREFIX + "CONFIG") or None
    values: dict[str, Any] = read_toml(path) if path else {}
    _one_of_each_secret(values)
    from_env = {}
    for name, option in OPTIONS.items():
        if option.metadata["kind"] == "namespaces":
            continue
        variable = env_name(name)
        if variable in environ:
            from_env[name] = parse_text(name, environ[variable], variable)
    from_flags = {}
    for name, text in flags.items():
        if name not in OPTIONS:
            raise _unknown(name, OPTIONS, "")
        from_flags[name] = parse_text(name, text, "--" + name.replace("_", "-"))
    for layer in (from_env, from_flags):
        _one_of_each_secret(layer)
        for name in SECRET_FILES:
            if name in layer or name + "_file" in layer:
                values.pop(name, None)
                values.pop(name + "_file", None)
        values.update(layer)
    return replace(HubConfig(), **values).validate()


def _one_of_each_secret(values: Mapping[str, Any]) -> None:
    """One source may not give both a secret and its file."""
    for name in SECRET_FILES:
        if values.get(name) is not None and values.get(name + "_file") is not None:
            raise ConfigError(f"{name} and {name}_file are both set; keep one")


def check_file(path: str, environ: Mapping[str, str] | None = None) -> HubConfig:
    """Validate a TOML file (``python -m fastws check-config FILE``), with the ``FASTWS_*``
    variables of ``environ`` on top when given: a key may come from either."""
    try:
        return load_config({}, environ or {}, path)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(path) else f"{path}: {message}") from None


# -- the command line ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] = ()) -> None:
    """One flag per option (or per option of ``names``); values stay raw strings so
    flags and env parse alike."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"TOML file with options and [[namespaces]] (env {ENV_PREFIX}CONFIG)",
    )
    defaults = HubConfig()
    for name, option in OPTIONS.items():
        kind = option.metadata["kind"]
        if kind == "namespaces" or (names and name not in names):
            continue
        default = getattr(defaults, name)
        if kind == "str_list":
            shown = ",".join(default) or "the hub's own host"
        elif kind == "headers" or default is None:
            shown = "none"
        else:
            shown = f"{default:g}" if isinstance(default, float) else str(default)
        bare = {"nargs": "?", "const": "true"} if kind == "bool" else {}  # --insecure alone
        spellings = ["--" + name.replace("_", "-")]
        if kind == "headers":  # --proxy-static-header A=1 --proxy-static-header B=2
            spellings.insert(0, spellings[0].removesuffix("s"))
            bare = {"action": "append"}
        parser.add_argument(
            *spellings,
            dest=name,
            metavar=option.metadata["metavar"],
            default=argparse.SUPPRESS,
            help=f"{option.metadata['help']} (env {env_name(name)}; default {shown})",
            **bare,
        )


def flags_from_namespace(namespace: argparse.Namespace) -> tuple[dict[str, str], str | None]:
    """(option flags that were given, the --config path)."""
    given = vars(namespace)
    flags = {name: given[name] for name in OPTIONS if name in given}
    for name, value in flags.items():
        if isinstance(value, list):  # a repeated flag: one line each
            flags[name] = "\n".join(value)
    return flags, given.get("config")


__all__ = [
    "SECRET_OPTIONS",
    "redact_url",
    "broker_hosts",
    "broker_urls",
    "ConfigError",
    "HubConfig",
    "add_arguments",
    "check_file",
    "load_config",
    "read_toml",
]
