"""Every command of the hub in one table: its fields, the permission it needs, its handler,
and who may send it (connections, the HTTP API)."""

from __future__ import annotations

from fastws.hub.commands import (
    connection,
    history,
    presence,
    publications,
    server,
    subscriptions,
    users,
)
from fastws.hub.commands.spec import (
    ANY,
    CHANNEL,
    CHANNELS,
    COUNT,
    DATA,
    FLAG,
    POSITION,
    TOKEN,
    USER,
    Command,
    Field,
    Text,
)
from fastws.hub.permissions import Permission
from fastws.hub.protocol import codes

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("connect", connection.connect, (Field("token", ANY),)),
        Command("ping", connection.ping),
        Command("refresh", connection.refresh, (Field("token", TOKEN, required=True),)),
        Command(
            "subscribe",
            subscriptions.subscribe,
            (
                Field("channel", CHANNEL, required=True),
                Field("since", POSITION),
                Field("token", TOKEN),
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
        Command(
            "unsubscribe", subscriptions.unsubscribe, (Field("channel", CHANNEL, required=True),)
        ),
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
            "disconnect",
            users.disconnect,
            (
                Field("user", Text(), required=True),
                Field("reason", Text(max_bytes=100), default=codes.DISCONNECTED_BY_API.reason),
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
        Command("info", server.info, client=False, http="GET"),
    )
}

CLIENT_COMMANDS: dict[str, Command] = {n: c for n, c in COMMANDS.items() if c.client}
API_COMMANDS: dict[str, Command] = {n: c for n, c in COMMANDS.items() if c.http is not None}

__all__ = ["API_COMMANDS", "CLIENT_COMMANDS", "COMMANDS"]
