"""Publishing to one channel (clients and the API) or to many (the API's broadcast)."""

from __future__ import annotations

from typing import Any

from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import as_hub_error
from fastws.hub.permissions import Permission


async def publish(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Publish; a client's publication goes through the publish hook first when one applies
    (which may refuse it or replace its data)."""
    channel, data = params["channel"], params["data"]
    if ctx.hooked(Permission.PUBLISH, channel):
        data = await ctx.node.hooks.publish(ctx.session.hook_context(), channel, data)
    position = await ctx.node.publish(channel, data, ctx.user)
    if ctx.session is not None:
        return {"offset": position.offset}
    return {"offset": position.offset, "epoch": position.epoch}  # the server API's answer


async def broadcast(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The same data to every channel; each channel succeeds or fails on its own."""
    data, node, user = params["data"], ctx.node, ctx.user
    responses = []
    for channel in params["channels"]:
        try:
            position = await node.publish(channel, data, user)
        except Exception as exc:
            error = as_hub_error(exc)
            if error is None:
                raise
            responses.append({"error": {"code": error.code, "message": error.message}})
        else:
            responses.append({"result": {"offset": position.offset, "epoch": position.epoch}})
    return {"responses": responses}


__all__ = ["broadcast", "publish"]
