"""Commands about the connection itself: connect, refresh, ping, rpc."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from fastws.hub.auth import Credentials, TokenError
from fastws.hub.broker import StreamPosition
from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import Reply
from fastws.hub.commands.subscriptions import subscribe_by_server
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import encode_data

if TYPE_CHECKING:
    from fastws.hub.session import Session


async def connect(ctx: Context, params: dict[str, Any]) -> Reply | None:
    """Authenticate with the token of ``connect`` or, without one, of the upgrade request;
    without a token, the connect hook decides when there is one.

    A bad token fails with a ``TokenError``, whose ``disconnect`` closes the connection;
    so does a refusal of the hook (4504 unless it names its own close code). After the
    reply, the connection is subscribed to the channels of the hook's ``channels`` or of
    the token's ``subs``; ``subs`` in params holds the client's positions in them.
    """
    session = ctx.session
    if session.credentials is not None or session.connecting:
        raise codes.HubError(codes.BAD_REQUEST, "already connected")
    token = params["token"]
    if token is None:
        token = session.ws.user_data.token
    hooks = ctx.node.hooks
    data, channels = None, ()
    if token is None and hooks is not None and hooks.has("connect"):
        session.connecting = True
        try:
            result = await hooks.connect(session.hook_context())
        except codes.HubError as exc:
            if exc.code != codes.BACKEND_ERROR and exc.disconnect is None:
                exc.disconnect = codes.REFUSED
            ctx.node.stats.failed_handshake("refused_by_hook")
            raise
        finally:
            session.connecting = False
        info = orjson.dumps(result.info) if result.info is not None else None
        credentials = Credentials(user=result.user, info=info, expires_at=result.expire_at)
        session.meta, data, channels = result.meta, result.data, result.channels
    else:
        credentials = _authenticate(ctx, token)
        channels = credentials.subs
    if session.closed:
        return None
    session.connected(credentials)
    ping = session.ws.options.ping_interval or 0
    reply = {"client": session.client_id, "user": credentials.user, "ping": int(ping)}
    if data is not None:
        session.wire.put_data(reply, encode_data(data))
    positions = params["subs"] or {}
    return Reply(reply, lambda: _subscribe_all(session, channels, positions))


async def _subscribe_all(
    session: Session, channels: tuple[str, ...], positions: dict[str, StreamPosition]
) -> None:
    """The server-side subscriptions, after the connect reply: each a ``subscribe`` push,
    recovered from the position the client gave for it in ``connect``."""
    for channel in channels:
        await subscribe_by_server(session, channel, positions.get(channel))


def _authenticate(ctx: Context, token: Any) -> Credentials:
    try:
        return ctx.node.auth.authenticate(token)
    except TokenError as exc:
        ctx.node.stats.failed_handshake(
            "token_expired" if exc.disconnect is codes.TOKEN_EXPIRED else "invalid_token"
        )
        raise


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


async def rpc(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The rpc hook's reply to ``method`` with ``data`` (``{}`` when it answered none)."""
    hooks = ctx.node.hooks
    if hooks is None or not hooks.has("rpc"):
        raise codes.HubError(codes.NOT_IMPLEMENTED, "no rpc hook is configured")
    data = await hooks.rpc(ctx.session.hook_context(), params["method"], params["data"])
    reply: dict[str, Any] = {}
    if data is not None:
        ctx.wire.put_data(reply, encode_data(data))
    return reply


__all__ = ["connect", "ping", "refresh", "rpc"]
