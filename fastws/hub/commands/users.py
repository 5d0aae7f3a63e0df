"""Commands addressed to a user or one connection: private messages, disconnects, refreshes.

The server API names a user (all their connections, on every node) or a client id
(one connection, wherever it is); ``Node.control`` carries the operation to every node.
"""

from __future__ import annotations

from typing import Any

from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import bad_request


async def send(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.node.broker.send_to_user(params["user"], ctx.user, params["data"])
    return {}


def _target(params: dict[str, Any]) -> dict[str, Any]:
    user, client = params["user"], params["client"]
    if user is None and client is None:
        raise bad_request("name the 'user' or the 'client' (or both)")
    return {"user": user, "client": client}


async def disconnect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The connections named get a disconnect push and close with ``code`` (4503 unless
    given); ``reconnect`` overrides what the code says about reconnecting."""
    code, reason, reconnect = params["code"], params["reason"], params["reconnect"]
    target = _target(params)
    if target["client"] is None and reconnect is None:
        await ctx.node.broker.disconnect_user(target["user"], code, reason)
    else:
        operation = {"op": "disconnect", "code": code, "reason": reason, "reconnect": reconnect}
        await ctx.node.control({**operation, **target})
    return {}


async def refresh(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Move the expiry of the connections named to ``expire_at`` (Unix seconds), or end
    them now as expired (4501)."""
    expire_at, expired = params["expire_at"], params["expired"]
    if (expire_at is None) == (not expired):
        raise bad_request("refresh takes 'expire_at' or 'expired': true, one of them")
    target = _target(params)
    await ctx.node.control({"op": "refresh", "expire_at": expire_at, "expired": expired, **target})
    return {}


__all__ = ["disconnect", "refresh", "send"]
