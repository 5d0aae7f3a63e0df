"""The shapes of replies and pushes (docs/protocol.md shows the same ones).

Every builder takes the ``Wire`` the message is for, because publication data
(JSON or binary bytes) and presence info (JSON bytes) are held encoded, and
each wire shows them its own way (``fastws.hub.protocol.wire``).
"""

from __future__ import annotations

from typing import Any

from fastws.hub.broker import ClientInfo, HistoryResult, Publication, StreamPosition
from fastws.hub.protocol.codes import Disconnect, Unsubscribe
from fastws.hub.protocol.wire import Wire


def publication_item(wire: Wire, publication: Publication) -> dict[str, Any]:
    """A publication inside a subscribe or history reply."""
    item: dict[str, Any] = {"offset": publication.offset}
    wire.put_data(item, publication.data)
    if publication.user is not None:
        item["info"] = {"user": publication.user}
    return item


def publication_push(wire: Wire, channel: str, publication: Publication) -> dict[str, Any]:
    push: dict[str, Any] = {"push": "pub", "channel": channel, "offset": publication.offset}
    wire.put_data(push, publication.data)
    if publication.user is not None:
        push["info"] = {"user": publication.user}
    return push


def client_item(wire: Wire, info: ClientInfo, with_id: bool = True) -> dict[str, Any]:
    """A connection in presence replies (keyed by id, ``with_id=False``) and join/leave."""
    item: dict[str, Any] = (
        {"client": info.client, "user": info.user} if with_id else {"user": info.user}
    )
    if info.info is not None:
        item["info"] = wire.json(info.info)
    return item


def join_leave_push(wire: Wire, kind: str, channel: str, info: ClientInfo) -> dict[str, Any]:
    return {"push": kind, "channel": channel, "info": client_item(wire, info)}


def message_push(wire: Wire, sender: str | None, data: bytes) -> dict[str, Any]:
    push: dict[str, Any] = {"push": "message"}
    if sender is not None:
        push["from"] = sender
    wire.put_data(push, data)
    return push


def disconnect_push(disconnect: Disconnect) -> dict[str, Any]:
    return {
        "push": "disconnect",
        "code": disconnect.code,
        "reason": disconnect.reason,
        "reconnect": disconnect.reconnect,
    }


def unsubscribe_push(channel: str, why: Unsubscribe) -> dict[str, Any]:
    return {"push": "unsubscribe", "channel": channel, "code": why.code, "reason": why.reason}


def history_reply(wire: Wire, result: HistoryResult) -> dict[str, Any]:
    position = result.position
    return {
        "epoch": position.epoch,
        "offset": position.offset,
        "publications": [publication_item(wire, p) for p in result.publications],
    }


def subscribe_reply(
    wire: Wire, position: StreamPosition, recovered: bool, publications: list[Publication]
) -> dict[str, Any]:
    return {
        "epoch": position.epoch,
        "offset": position.offset,
        "recovered": recovered,
        "publications": [publication_item(wire, p) for p in publications],
    }


def subscribe_push(channel: str, reply: dict[str, Any]) -> dict[str, Any]:
    """A subscription the server made: the subscribe reply's fields, with the channel."""
    return {"push": "subscribe", "channel": channel, **reply}


def presence_reply(wire: Wire, clients: dict[str, ClientInfo]) -> dict[str, Any]:
    return {
        "clients": {
            client: client_item(wire, info, with_id=False) for client, info in clients.items()
        }
    }


def error_reply(command_id: int | None, code: int, message: str) -> dict[str, Any]:
    reply: dict[str, Any] = {}
    if command_id is not None:
        reply["id"] = command_id
    reply["error"] = {"code": code, "message": message}
    return reply


__all__ = [
    "client_item",
    "disconnect_push",
    "error_reply",
    "history_reply",
    "join_leave_push",
    "message_push",
    "presence_reply",
    "publication_item",
    "publication_push",
    "subscribe_push",
    "subscribe_reply",
    "unsubscribe_push",
]
