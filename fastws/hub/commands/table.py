"""Every command of the hub in one table: its fields, the permission it needs, its handler,
and who may send it (connections, the server API over HTTP and in Python).

A name may appear twice when the server API's command differs from the client's:
``subscribe`` subscribes the caller's connection, the API's subscribes a user's.
"""

from __future__ import annotations

from typing import Any

from fastws.hub.commands import (
    connection,
    history,
    presence,
    publications,
    server,
    subscriptions,
    users,
)
from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import (
    ANY,
    CHANNEL,
    CHANNELS,
    CLOSE_CODE,
    COUNT,
    DATA,
    FLAG,
    PATTERN,
    POSITION,
    POSITIONS,
    TIMESTAMP,
    TOKEN,
    USER,
    Command,
    Field,
    Objects,
    Text,
)
from fastws.hub.permissions import Permission
from fastws.hub.protocol import codes

MAX_BATCH = 1000

CLIENT = Text(non_empty=True, max_bytes=64)
# What the server API's subscribe and unsubscribe name: a user, a channel, maybe one connection.
USER_CHANNEL_CLIENT = (
    Field("user", Text(), required=True),
    Field("channel", CHANNEL, required=True),
    Field("client", CLIENT),
)


async def _batch(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """A batch runs the API's own commands (the table is built before it is called)."""
    return await server.batch(ctx, params, API_COMMANDS)


COMMANDS: tuple[Command, ...] = (
    Command("connect", connection.connect, (Field("token", ANY), Field("subs", POSITIONS))),
    Command("ping", connection.ping),
    Command("refresh", connection.refresh, (Field("token", TOKEN, required=True),)),
    Command(
        "rpc",
        connection.rpc,
        (Field("method", Text(non_empty=True, max_bytes=256), required=True), Field("data", ANY)),
    ),
    Command(
        "subscribe",
        subscriptions.subscribe,
        (
            Field("channel", CHANNEL, required=True),
            Field("since", POSITION),
            Field("token", TOKEN),
            Field("data", ANY),
        ),
        Permission.SUBSCRIBE,
        grant="token",
    ),
    Command(
        "sub_refresh",
        subscriptions.sub_refresh,
        (Field("channel", CHANNEL, required=True), Field("token", TOKEN, required=True)),
        Permission.SUBSCRIBE,
        grant="token",
    ),
    Command("unsubscribe", subscriptions.unsubscribe, (Field("channel", CHANNEL, required=True),)),
    Command(
        "publish",
        publications.publish,
        (Field("channel", CHANNEL, required=True), Field("data", DATA, required=True, base64="b64data")),
        Permission.PUBLISH,
        http="POST",
    ),
    Command(
        "broadcast",
        publications.broadcast,
        (Field("channels", CHANNELS, required=True), Field("data", DATA, required=True, base64="b64data")),
        client=False,
        http="POST",
    ),
    Command(
        "send",
        users.send,
        (Field("user", USER, required=True), Field("data", DATA, required=True, base64="b64data")),
        Permission.SEND,
        target="user",
        http="POST",
    ),
    Command(
        "subscribe",
        subscriptions.subscribe_user,
        USER_CHANNEL_CLIENT,
        client=False,
        http="POST",
    ),
    Command(
        "unsubscribe",
        subscriptions.unsubscribe_user,
        USER_CHANNEL_CLIENT,
        client=False,
        http="POST",
    ),
    Command(
        "disconnect",
        users.disconnect,
        (
            Field("user", Text()),
            Field("client", CLIENT),
            Field("code", CLOSE_CODE, default=codes.DISCONNECTED_BY_API.code),
            Field("reason", Text(max_bytes=100), default=codes.DISCONNECTED_BY_API.reason),
            Field("reconnect", FLAG),
        ),
        client=False,
        http="POST",
    ),
    Command(
        "refresh",
        users.refresh,
        (
            Field("user", Text()),
            Field("client", CLIENT),
            Field("expire_at", TIMESTAMP),
            Field("expired", FLAG, default=False),
        ),
        client=False,
        http="POST",
    ),
    Command(
        "presence",
        presence.presence,
        (Field("channel", CHANNEL, required=True),),
        Permission.PRESENCE,
        http="GET",
    ),
    Command(
        "presence_stats",
        presence.presence_stats,
        (Field("channel", CHANNEL, required=True),),
        client=False,
        http="GET",
    ),
    Command(
        "history",
        history.history,
        (
            Field("channel", CHANNEL, required=True),
            Field("since", POSITION),
            Field("limit", COUNT),
            Field("reverse", FLAG, default=False),
        ),
        Permission.HISTORY,
        http="GET",
    ),
    Command(
        "history_remove",
        history.history_remove,
        (Field("channel", CHANNEL, required=True),),
        client=False,
        http="POST",
    ),
    Command("channels", server.channels, (Field("pattern", PATTERN),), client=False, http="GET"),
    Command("info", server.info, client=False, http="GET"),
    Command(
        "batch",
        _batch,
        (Field("commands", Objects(MAX_BATCH), required=True),),
        client=False,
        http="POST",
    ),
)


def _by_name(commands: list[Command]) -> dict[str, Command]:
    table = {command.name: command for command in commands}
    if len(table) != len(commands):
        raise ValueError("two commands of one caller share a name")
    return table


CLIENT_COMMANDS: dict[str, Command] = _by_name([c for c in COMMANDS if c.client])
API_COMMANDS: dict[str, Command] = _by_name([c for c in COMMANDS if c.http is not None])

__all__ = ["API_COMMANDS", "CLIENT_COMMANDS", "COMMANDS", "MAX_BATCH"]
