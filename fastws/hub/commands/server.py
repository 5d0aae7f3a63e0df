"""What the server API tells about the cluster, and batches of its commands."""

from __future__ import annotations

import time
from typing import Any

import fastws
from fastws.hub.broker import BrokerUnavailable
from fastws.hub.channels import Patterns
from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import Command, as_hub_error, bad_request


async def info(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """This node in detail, and every node of the cluster as it last announced itself
    (this node alone while the broker is unavailable: info must answer then too)."""
    node = ctx.node
    now = time.time()
    try:
        summaries = await node.cluster()
    except BrokerUnavailable:
        summaries = [node.summary()]
    nodes = [
        {
            "node": summary["node"],
            "version": summary["version"],
            "connections": summary["connections"],
            "users": summary["users"],
            "subscriptions": summary["subscriptions"],
            "channels": len(summary["channels"]),
            "uptime": round(now - summary["started_at"], 3),
        }
        for summary in summaries
    ]
    return {
        "version": fastws.__version__,
        "node": node.id,
        "connections": len(node.sessions),
        "users": len(node.users),
        "channels": len(node.channels),
        "broker": {"kind": node.config.broker.partition("://")[0], **node.broker.status()},
        "uptime": round(now - node.started_at, 3),
        "nodes": nodes,
    }


async def channels(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Channels with subscribers anywhere in the cluster (matching ``pattern``), with their
    subscriber counts summed over the nodes."""
    pattern = params["pattern"]
    patterns = Patterns([pattern]) if pattern is not None else None
    counts: dict[str, int] = {}
    for summary in await ctx.node.cluster():
        for channel, subscribers in summary["channels"].items():
            if patterns is None or patterns.match(channel):
                counts[channel] = counts.get(channel, 0) + subscribers
    return {"channels": {name: {"subscribers": n} for name, n in sorted(counts.items())}}


async def batch(
    ctx: Context, params: dict[str, Any], commands: dict[str, Command]
) -> dict[str, Any]:
    """Run API commands (of ``commands``) one after the other; each answers on its own,
    as over HTTP."""
    replies = []
    for item in params["commands"]:
        try:
            method, arguments = item.get("method"), item.get("params", {})
            command = commands.get(method) if isinstance(method, str) else None
            if command is None or method == "batch":
                raise bad_request(f"unknown method {method!r} in batch")
            if not isinstance(arguments, dict) or set(item) - {"method", "params"}:
                raise bad_request("each command is {\"method\": M, \"params\": {...}}")
            replies.append({"result": await command.run(ctx, arguments)})
        except Exception as exc:
            error = as_hub_error(exc)
            if error is None:
                raise
            replies.append({"error": {"code": error.code, "message": error.message}})
    return {"replies": replies}


__all__ = ["batch", "channels", "info"]
