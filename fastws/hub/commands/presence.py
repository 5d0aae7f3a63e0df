"""Reading who is present in a channel, or only how many."""

from __future__ import annotations

from typing import Any

from fastws.hub import messages
from fastws.hub.broker import ClientInfo
from fastws.hub.commands.context import Context
from fastws.hub.protocol import codes


async def _clients(ctx: Context, channel: str) -> dict[str, ClientInfo]:
    node = ctx.node
    if not node.namespace(channel).presence:
        raise codes.HubError(codes.NOT_AVAILABLE, f"presence is not available for {channel!r}")
    return await node.broker.presence(channel)


async def presence(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return messages.presence_reply(ctx.wire, await _clients(ctx, params["channel"]))


async def presence_stats(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Connections present in the channel, and distinct users among them."""
    clients = await _clients(ctx, params["channel"])
    return {"clients": len(clients), "users": len({info.user for info in clients.values()})}


__all__ = ["presence", "presence_stats"]
