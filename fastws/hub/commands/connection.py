"""Commands about the connection itself: connect, ping."""

from __future__ import annotations

from typing import Any

from fastws.hub.auth import TokenError
from fastws.hub.commands.context import Context
from fastws.hub.protocol import codes


def connect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Authenticate with the token of ``connect`` or, without one, of the upgrade request.

    A bad token fails with a ``TokenError``, whose ``disconnect`` closes the connection.
    """
    session = ctx.session
    if session.credentials is not None:
        raise codes.HubError(codes.BAD_REQUEST, "already connected")
    token = params["token"]
    try:
        credentials = ctx.node.auth.authenticate(token if token is not None else session.ws.user_data)
    except TokenError as exc:
        ctx.node.stats.failed_handshake(
            "token_expired" if exc.disconnect is codes.TOKEN_EXPIRED else "invalid_token"
        )
        raise
    session.connected(credentials)
    ping = session.ws.options.ping_interval or 0
    return {"client": session.client_id, "user": credentials.user, "ping": int(ping)}


def ping(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {}


__all__ = ["connect", "ping"]
