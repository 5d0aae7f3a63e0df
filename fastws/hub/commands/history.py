"""Reading a channel's history."""

from __future__ import annotations

from typing import Any

from fastws.hub import messages
from fastws.hub.commands.context import Context
from fastws.hub.node import recovers
from fastws.hub.protocol import codes


async def history(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The publications history holds (after ``since``); 410 when it no longer reaches back
    to ``since``."""
    channel, since, limit = params["channel"], params["since"], params["limit"]
    node = ctx.node
    requested = limit
    if node.config.channel_options(channel).history_size == 0:
        limit = 0
    result = await node.broker.history(channel, since, limit)
    if since is not None and requested != 0 and not recovers(since, result, limit):
        position = result.position
        raise codes.HubError(
            codes.UNRECOVERABLE_POSITION,
            f"position {since.epoch}:{since.offset} is not in the history of {channel!r} "
            f"(now at {position.epoch}:{position.offset})",
        )
    return messages.history_reply(ctx.wire, result)


__all__ = ["history"]
