"""Commands about the connection itself: connect, refresh, ping."""

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


def refresh(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Replace the connection's token (new ``exp`` and grants, same user) without
    reconnecting. A bad or expired token closes the connection like at ``connect``."""
    session = ctx.session
    credentials = ctx.node.auth.authenticate(params["token"])
    if credentials.user != session.credentials.user:
        raise TokenError(codes.INVALID_TOKEN, "the new token is for another user")
    session.credentials = credentials
    ctx.node.expires(session, credentials.expires_at)
    return {}


def ping(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {}


__all__ = ["connect", "ping", "refresh"]
