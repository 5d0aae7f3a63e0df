"""Reading who is present in a channel."""

from __future__ import annotations

from typing import Any

from fastws.hub import messages
from fastws.hub.commands.context import Context
from fastws.hub.protocol import codes


async def presence(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    channel, node = params["channel"], ctx.node
    if not node.namespace(channel).presence:
        raise codes.HubError(codes.NOT_AVAILABLE, f"presence is not available for {channel!r}")
    return messages.presence_reply(ctx.wire, await node.broker.presence(channel))


__all__ = ["presence"]
