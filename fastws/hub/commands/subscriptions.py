"""Subscribing and unsubscribing a connection, and the join/leave that go with it.

Subscribing must lose nothing and repeat nothing even when the broker is
remote, so it runs in this order: the subscription is registered buffering,
the node makes sure the broker delivers the channel here, history after the
client's position is read, the reply carries what was missed, and only after
the reply are the buffered publications released (``Node.activate``).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from fastws.hub import messages
from fastws.hub.broker import BrokerUnavailable, ClientInfo, StreamPosition
from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import Reply
from fastws.hub.node import Subscription, recovers
from fastws.hub.permissions import Permission
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import encode_data

if TYPE_CHECKING:
    from fastws.hub.session import Session

logger = logging.getLogger("fastws.hub")



async def subscribe(ctx: Context, params: dict[str, Any], by_server: bool = False) -> Reply:
    session, node = ctx.session, ctx.node
    channel = params["channel"]
    if channel in session.subscriptions:
        raise codes.HubError(codes.ALREADY_SUBSCRIBED, f"already subscribed to {channel!r}")
    limit = node.config.max_subscriptions
    if len(session.subscriptions) >= limit:
        raise codes.HubError(
            codes.LIMIT_EXCEEDED, f"too many subscriptions: at most {limit} per connection"
        )
    since, grant = params["since"], params["token"]
    options = node.namespace(channel)
    client_info = session.client_info
    hooked = None
    if grant is None and not by_server and ctx.hooked(Permission.SUBSCRIBE, channel):
        hooked = await node.hooks.subscribe(session.hook_context(), channel, params["data"])
        if session.closed or channel in session.subscriptions:
            raise codes.HubError(codes.ALREADY_SUBSCRIBED, f"already subscribed to {channel!r}")
        if hooked.info is not None:
            client_info = ClientInfo(session.client_id, client_info.user, orjson.dumps(hooked.info))
    if grant is not None and grant.info is not None:
        client_info = ClientInfo(session.client_id, client_info.user, grant.info)
    expires_at = grant.expires_at if grant is not None else None
    sub = Subscription(session, channel, options, client_info, expires_at)
    session.subscriptions[channel] = sub
    try:
        await node.subscribe(sub)
        if since is not None and options.history_size > 0:
            result = await node.broker.history(channel, since, None)
        else:
            result = await node.broker.history(channel, None, 0)
    except BaseException:
        if session.subscriptions.get(channel) is sub:
            del session.subscriptions[channel]
        node.run(quietly(node.unsubscribe(sub)))
        raise
    node.expires(session, expires_at, channel)
    position = result.position
    recovered = since is not None and recovers(since, result)
    publications = result.publications if recovered else []
    reply = messages.subscribe_reply(ctx.wire, position, recovered, publications)
    if hooked is not None and hooked.data is not None:
        ctx.wire.put_data(reply, encode_data(hooked.data))
    return Reply(reply, lambda: _start(session, sub, position))


async def subscribe_by_server(
    session: Session, channel: str, since: StreamPosition | None = None
) -> None:
    """Subscribe ``session`` as the server decides (the server API, the connect hook, the
    token's ``subs``), from ``since`` when the client gave its position there: the reply
    goes out as a ``subscribe`` push. Already subscribed, or at the subscription limit:
    nothing happens (logged). No hook is asked: the server decided."""
    try:
        params = {"channel": channel, "since": since, "token": None, "data": None}
        reply = await subscribe(session.context, params, by_server=True)
    except Exception as exc:
        logger.info(
            "fastws hub: server-side subscription of %s to %s failed: %s",
            session.client_id, channel, exc,
        )
        return
    session.push_message(messages.subscribe_push(channel, reply.result), "subscribe")
    await reply.then()


async def unsubscribe_by_server(session: Session, channel: str) -> None:
    sub = session.subscriptions.pop(channel, None)
    if sub is not None:
        session.push_message(messages.unsubscribe_push(channel, codes.UNSUBSCRIBED_BY_API), "unsubscribe")
        await quietly(leave(session, sub))


async def subscribe_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The server API subscribes the user's connections (or one of them, ``client``),
    on every node."""
    operation = {"op": "subscribe", "user": params["user"], "channel": params["channel"]}
    await ctx.node.control({**operation, "client": params["client"]})
    return {}


async def unsubscribe_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The server API unsubscribes the user's connections (or one of them, ``client``)."""
    operation = {"op": "unsubscribe", "user": params["user"], "channel": params["channel"]}
    await ctx.node.control({**operation, "client": params["client"]})
    return {}


async def _start(session: Session, sub: Subscription, position: StreamPosition) -> None:
    """After the reply: deliver, then join. Unsubscribed meanwhile: it does not start."""
    if session.closed or session.subscriptions.get(sub.channel) is not sub:
        return
    session.node.activate(sub, position)
    if session.subscriptions.get(sub.channel) is not sub:
        return  # activation found a gap and ended the subscription
    if sub.options.presence or sub.options.join_leave:
        await _join(session, sub)


async def unsubscribe(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    session = ctx.session
    sub = session.subscriptions.pop(params["channel"], None)
    if sub is not None:
        await leave(session, sub)
    return {}


def sub_refresh(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Replace a subscription's token (checked by the command) before it expires."""
    session, channel, grant = ctx.session, params["channel"], params["token"]
    sub = session.subscriptions.get(channel)
    if sub is None:
        raise codes.HubError(codes.BAD_REQUEST, f"not subscribed to {channel!r}")
    sub.expires_at = grant.expires_at
    ctx.node.expires(session, grant.expires_at, channel)
    return {}


async def _join(session: Session, sub: Subscription) -> None:
    broker = session.node.broker
    sub.joined = True
    try:
        if sub.options.presence:
            await broker.add_presence(sub.channel, sub.client_info)
        if sub.options.join_leave:
            await broker.publish_join(sub.channel, sub.client_info)
    except BrokerUnavailable as exc:
        logger.warning(
            "fastws hub: join of %s to %s failed: %s", session.client_id, sub.channel, exc
        )


async def leave(session: Session, sub: Subscription) -> None:
    node = session.node
    await node.unsubscribe(sub)
    if sub.joined:
        sub.joined = False
        if sub.options.presence:
            await node.broker.remove_presence(sub.channel, session.client_id)
        if sub.options.join_leave:
            await node.broker.publish_leave(sub.channel, sub.client_info)


async def leave_all(session: Session, subscriptions: list[Subscription]) -> None:
    for sub in subscriptions:
        await quietly(leave(session, sub))


async def quietly(pending: Coroutine) -> None:
    """Clean-up that must not fail loudly (the broker may be gone at shutdown)."""
    try:
        await pending
    except BrokerUnavailable:
        pass
    except Exception:
        logger.exception("fastws hub: error while leaving a channel")


__all__ = [
    "leave",
    "leave_all",
    "quietly",
    "sub_refresh",
    "subscribe",
    "subscribe_by_server",
    "subscribe_user",
    "unsubscribe",
    "unsubscribe_by_server",
    "unsubscribe_user",
]
