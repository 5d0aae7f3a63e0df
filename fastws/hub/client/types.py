"""What the client hands to the application: values decoded from the hub's replies and pushes.

The server keeps publication data and presence info encoded (JSON bytes, or
binary data); a client receives them decoded, whatever the wire (binary data
as ``bytes``), so its types are named for that: ``ReceivedPublication`` and ``ReceivedClientInfo``. A stream
position has one shape on both sides and is shared (``StreamPosition``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastws.hub.protocol.data import received
from fastws.hub.protocol.types import StreamPosition


@dataclass(frozen=True, slots=True)
class ReceivedPublication:
    """A message published in a channel; ``recovered`` when replayed after a reconnect."""

    channel: str
    offset: int
    data: Any
    user: str | None = None
    recovered: bool = False

    @classmethod
    def from_wire(cls, channel: str, item: dict, recovered: bool = False) -> ReceivedPublication:
        """From a ``pub`` push or an item of a subscribe or history reply."""
        info = item.get("info") or {}
        return cls(channel, item.get("offset"), received(item), info.get("user"), recovered)


@dataclass(frozen=True, slots=True)
class ReceivedClientInfo:
    """One connection present in a channel (presence replies, join and leave pushes)."""

    client: str
    user: str
    info: dict = field(default_factory=dict)

    @classmethod
    def from_wire(cls, client: str, item: dict) -> ReceivedClientInfo:
        return cls(client, item.get("user"), item.get("info") or {})


@dataclass(frozen=True, slots=True)
class Message:
    """A private message sent to this client's user by ``user``."""

    user: str
    data: Any


@dataclass(frozen=True, slots=True)
class History:
    """A slice of a channel's history and the stream position it was taken at."""

    offset: int
    epoch: Any
    publications: list[ReceivedPublication]


__all__ = ["History", "Message", "ReceivedClientInfo", "ReceivedPublication", "StreamPosition"]
