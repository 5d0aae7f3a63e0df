"""Commands addressed to a user: private messages, and closing a user's connections."""

from __future__ import annotations

from typing import Any

from fastws.hub.commands.context import Context
from fastws.hub.protocol import codes


async def send(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.node.broker.send_to_user(params["user"], ctx.user, params["data"])
    return {}


async def disconnect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Every connection of the user, on every node, gets a disconnect push and 4503."""
    code = codes.DISCONNECTED_BY_API.code
    await ctx.node.broker.disconnect_user(params["user"], code, params["reason"])
    return {}


__all__ = ["disconnect", "send"]
