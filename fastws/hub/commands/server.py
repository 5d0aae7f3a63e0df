"""What the server API tells about this node."""

from __future__ import annotations

import time
from typing import Any

import fastws
from fastws.hub.commands.context import Context


async def info(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    node = ctx.node
    return {
        "version": fastws.__version__,
        "node": node.id,
        "connections": len(node.sessions),
        "users": len(node.users),
        "channels": len(node.channels),
        "broker": {"kind": node.config.broker.partition("://")[0], **node.broker.status()},
        "uptime": round(time.time() - node.started_at, 3),
    }


__all__ = ["info"]
