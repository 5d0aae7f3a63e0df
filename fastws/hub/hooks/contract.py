"""The one contract of the hooks, whether they run in-process or behind the HTTP proxy.

Every event has a context (who asks) and its own fields; a hook answers with a
result (a dict, the same shape the proxy's ``{"result": ...}`` carries), with
nothing (``None``: allowed as asked), or refuses (``Refuse``, the proxy's
``{"error": ...}`` or ``{"disconnect": ...}``). docs/hooks.md shows each shape.

The parsers here turn a result into what the hub uses and refuse a malformed
one with ``HookFailed``: the backend's mistake must never become the hub's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastws.hub.channels import channel_error
from fastws.hub.protocol import codes

# event -> the names of its fields after the context, in the order in-process hooks get them
EVENTS: dict[str, tuple[str, ...]] = {
    "connect": (),
    "subscribe": ("channel", "data"),
    "publish": ("channel", "data"),
    "rpc": ("method", "data"),
    "refresh": (),
}
# notifications: their answer is not awaited by anyone, only logged when it fails
NOTIFICATIONS: dict[str, tuple[str, ...]] = {
    "disconnect": ("code", "reason"),
    "channel_occupied": ("channel",),
    "channel_vacated": ("channel",),
}
WITHOUT_CONTEXT = frozenset({"channel_occupied", "channel_vacated"})  # cluster-wide events


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What a connection's HTTP upgrade carried that hooks and tokens use."""

    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # the chosen ones, names lowercased


@dataclass(slots=True)
class HookContext:
    """Who asks: the connection's id and user (None before connect succeeds), the chosen
    headers of its upgrade request, its address and wire encoding, the ``info`` others
    see of it and the ``meta`` the connect hook attached (seen only by hooks)."""

    client: str | None
    user: str | None
    headers: dict[str, str]
    remote_addr: str | None
    protocol: str
    info: Any = None
    meta: Any = None

    def as_json(self) -> dict[str, Any]:
        fields = {
            "client": self.client,
            "user": self.user,
            "headers": self.headers,
            "remote_addr": self.remote_addr,
            "protocol": self.protocol,
        }
        if self.info is not None:
            fields["info"] = self.info
        if self.meta is not None:
            fields["meta"] = self.meta
        return fields


class Refuse(Exception):  # noqa: N818 - a hook raises it to refuse, as the name says
    """Raised by a hook to refuse: the command fails with ``code`` (400-499) and
    ``message``; with ``disconnect`` (a close code 4000-4999 and a reason) the
    connection is closed too."""

    def __init__(
        self,
        message: str = "refused by the application",
        code: int = 403,
        disconnect: tuple[int, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if 400 <= code <= 499 else 403
        if disconnect is not None and not 4000 <= disconnect[0] <= 4999:
            disconnect = (codes.REFUSED.code, disconnect[1])
        self.disconnect = disconnect


class HookFailed(Exception):  # noqa: N818 - the hook failed, as the name says
    """The hook did not answer usefully: raised, timed out, unreachable, malformed answer."""


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectResult:
    user: str
    info: Any = None
    meta: Any = None
    expire_at: float | None = None
    channels: tuple[str, ...] = ()
    data: Any = None  # returned to the client in the connect reply


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    info: Any = None  # replaces the connection's info in this channel
    data: Any = None  # returned to the subscriber in the subscribe reply


@dataclass(frozen=True, slots=True)
class RefreshResult:
    expired: bool = False
    expire_at: float | None = None
    info: Any = None


KEEP = object()  # a publish result that leaves the data as published


def _mapping(event: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HookFailed(f"the {event} hook answered {type(value).__name__}, not an object")
    unknown = set(value) - set(known)
    if unknown:
        raise HookFailed(f"the {event} hook answered an unknown field {sorted(unknown)[0]!r}")
    return value


def _expiry(event: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HookFailed(f"the {event} hook's expire_at must be a Unix time in seconds")
    return float(value)


def _info(event: str, value: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise HookFailed(f"the {event} hook's info must be an object")
    return value


def connect_result(value: Any) -> ConnectResult:
    fields = _mapping("connect", value, ("user", "info", "meta", "expire_at", "channels", "data"))
    user = fields.get("user")
    if not isinstance(user, str):
        raise HookFailed("the connect hook must answer a 'user' string ('' for anonymous)")
    channels = fields.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise HookFailed("the connect hook's channels must be an array of channel names")
    for channel in channels:
        error = channel_error(channel)
        if error is not None:
            raise HookFailed(f"the connect hook's channels: {error}")
    return ConnectResult(
        user,
        _info("connect", fields.get("info")),
        fields.get("meta"),
        _expiry("connect", fields.get("expire_at")),
        tuple(dict.fromkeys(channels)),
        fields.get("data"),
    )


def subscribe_result(value: Any) -> SubscribeResult:
    fields = _mapping("subscribe", value, ("info", "data"))
    return SubscribeResult(_info("subscribe", fields.get("info")), fields.get("data"))


def publish_result(value: Any) -> Any:
    """The data to publish instead, or KEEP."""
    fields = _mapping("publish", value, ("data",))
    return fields.get("data", KEEP)


def rpc_result(value: Any) -> Any:
    """The data of the reply (None when the hook answered nothing)."""
    return _mapping("rpc", value, ("data",)).get("data")


def refresh_result(value: Any) -> RefreshResult:
    fields = _mapping("refresh", value, ("expired", "expire_at", "info"))
    expired = fields.get("expired", False)
    if type(expired) is not bool:
        raise HookFailed("the refresh hook's expired must be true or false")
    expire_at = _expiry("refresh", fields.get("expire_at"))
    if not expired and expire_at is None:
        raise HookFailed("the refresh hook must answer expire_at, or expired: true")
    return RefreshResult(expired, expire_at, _info("refresh", fields.get("info")))


__all__ = [
    "EVENTS",
    "KEEP",
    "NOTIFICATIONS",
    "WITHOUT_CONTEXT",
    "ConnectResult",
    "HookContext",
    "HookFailed",
    "RefreshResult",
    "Refuse",
    "SubscribeResult",
    "Upgrade",
    "connect_result",
    "publish_result",
    "refresh_result",
    "rpc_result",
    "subscribe_result",
]
