"""Reading a channel's history, and emptying it."""

from __future__ import annotations

from typing import Any

from fastws.hub import messages
from fastws.hub.commands.context import Context
from fastws.hub.node import recovers
from fastws.hub.protocol import codes


async def history(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The publications history holds after ``since``, oldest first; 410 when it no longer
    reaches back to ``since``. With ``reverse``: the ones before ``since``, newest first;
    410 when ``since`` is not a position of the stream.

    A channel without history answers 422 before the broker is asked: a read must not
    create a stream for any name a client makes up."""
    channel, since, limit = params["channel"], params["since"], params["limit"]
    reverse = params["reverse"]
    node = ctx.node
    if node.namespace(channel).history_size == 0:
        raise codes.HubError(codes.NOT_AVAILABLE, f"history is not available for {channel!r}")
    result = await node.broker.history(channel, since, limit, reverse)
    position = result.position
    if since is None or limit == 0:
        return messages.history_reply(ctx.wire, result)
    if reverse:
        found = since.epoch == position.epoch and since.offset <= position.offset
    else:
        found = recovers(since, result, limit)
    if not found:
        raise codes.HubError(
            codes.UNRECOVERABLE_POSITION,
            f"position {since.epoch}:{since.offset} is not in the history of {channel!r} "
            f"(now at {position.epoch}:{position.offset})",
        )
    return messages.history_reply(ctx.wire, result)


async def history_remove(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Drop what history holds; the stream position stays, so no client sees a new epoch."""
    await ctx.node.broker.remove_history(params["channel"])
    return {}


__all__ = ["history", "history_remove"]
