"""The hub's error codes and close codes: one table, mirrored in docs/protocol.md.

Error codes answer one command (``{"id":N,"error":{"code":..,"message":..}}``)
and reuse HTTP's meanings, so the HTTP API answers with the same numbers as
statuses. Close codes end a connection; 4000-4499 say "you may reconnect",
4500-4999 "do not reconnect without changing something" (a new token, a fixed
client). Before closing for a hub reason the server sends a ``disconnect`` push
carrying the same code, the reason and whether to reconnect. Unsubscribe codes
end one subscription and keep the connection: 2500-2999 say "subscribe again
from your last position", 2000-2499 "do not subscribe again as you were".
"""

from __future__ import annotations

from dataclasses import dataclass

from fastws.errors import WebSocketError

# -- error codes (one command failed; the connection stays open) -------------------

BAD_REQUEST = 400
UNAUTHORIZED = 401
PERMISSION_DENIED = 403
NOT_FOUND = 404
ALREADY_SUBSCRIBED = 409
UNRECOVERABLE_POSITION = 410
MESSAGE_TOO_LARGE = 413
NOT_AVAILABLE = 422
LIMIT_EXCEEDED = 429
INTERNAL = 500
NOT_IMPLEMENTED = 501
BACKEND_ERROR = 502
BROKER_UNAVAILABLE = 503

ERRORS: dict[int, str] = {
    BAD_REQUEST: "bad request: malformed command, unknown field, bad channel name",
    UNAUTHORIZED: "unauthorized: not connected yet, or a bad token",
    PERMISSION_DENIED: "permission denied: neither the namespace nor the token allows this",
    NOT_FOUND: "not found: unknown method or API endpoint, or a channel of no declared namespace",
    ALREADY_SUBSCRIBED: "already subscribed to this channel",
    UNRECOVERABLE_POSITION: "unrecoverable position: history no longer holds it",
    MESSAGE_TOO_LARGE: "message too large",
    NOT_AVAILABLE: "not available: the channel keeps no history, or no presence",
    LIMIT_EXCEEDED: "limit exceeded or too many requests",
    INTERNAL: "internal error",
    NOT_IMPLEMENTED: "not implemented: no rpc hook is configured",
    BACKEND_ERROR: "backend error: the application's hook failed, was too slow or is down",
    BROKER_UNAVAILABLE: "broker unavailable: try again later",
}


class HubError(WebSocketError):
    """A command failed with one of the error codes above; when ``disconnect`` is set,
    the connection is closed after the error reply."""

    disconnect: Disconnect | None = None

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (error {code})")
        self.code = code
        self.message = message


# -- close codes (the connection ends) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why the server ends a connection, as sent in the ``disconnect`` push and close frame."""

    code: int
    reason: str
    retry: bool | None = None  # None: whether the client reconnects follows from the code

    @property
    def reconnect(self) -> bool:
        return self.code < 4500 if self.retry is None else self.retry


GOING_AWAY = Disconnect(1001, "server shutting down")
SERVICE_RESTART = Disconnect(1012, "server restarting")
CONNECT_TIMEOUT = Disconnect(4001, "no connect command in time")
SLOW_CONSUMER = Disconnect(4008, "slow consumer")
TOO_MANY_REQUESTS = Disconnect(4029, "too many requests")
INVALID_TOKEN = Disconnect(4500, "invalid token")
TOKEN_EXPIRED = Disconnect(4501, "token expired")
BAD_PROTOCOL = Disconnect(4502, "bad protocol use")
DISCONNECTED_BY_API = Disconnect(4503, "disconnected by the server API")
REFUSED = Disconnect(4504, "refused by the application")

CLOSES: dict[int, Disconnect] = {
    d.code: d
    for d in (
        GOING_AWAY,
        SERVICE_RESTART,
        CONNECT_TIMEOUT,
        SLOW_CONSUMER,
        TOO_MANY_REQUESTS,
        INVALID_TOKEN,
        TOKEN_EXPIRED,
        BAD_PROTOCOL,
        DISCONNECTED_BY_API,
        REFUSED,
    )
}


# -- unsubscribe codes (one subscription ends; the connection stays) -----------------


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Why the server ends one subscription, as sent in the ``unsubscribe`` push."""

    code: int
    reason: str

    @property
    def resubscribe(self) -> bool:
        return 2500 <= self.code < 3000


INSUFFICIENT_STATE = Unsubscribe(2500, "insufficient state: resubscribe, your position may be lost")
SUBSCRIPTION_EXPIRED = Unsubscribe(2501, "subscription token expired")
UNSUBSCRIBED_BY_API = Unsubscribe(2000, "unsubscribed by the server API")

UNSUBSCRIBES: dict[int, Unsubscribe] = {
    u.code: u for u in (UNSUBSCRIBED_BY_API, INSUFFICIENT_STATE, SUBSCRIPTION_EXPIRED)
}

__all__ = ["CLOSES", "Disconnect", "ERRORS", "HubError", "UNSUBSCRIBES", "Unsubscribe"]
