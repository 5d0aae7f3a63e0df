"""The broker interface: how hub nodes share channels, history, presence and users.

A node calls the broker; the broker calls the node back through a ``BrokerSink``
for everything that arrives from the other nodes (and from this one). The
in-memory broker (``broker/memory.py``) serves one process; a Redis broker
fits the same shape:

- ``subscribe``/``unsubscribe`` express node-level interest: the node subscribes
  to a channel while it has local subscribers, and only those channels reach
  its sink (Redis: one pub/sub subscription per node per channel). They take
  effect in the order they are called.
- occupancy: the broker counts the nodes subscribed to each channel, so that
  exactly one node in the cluster learns that a channel got its first
  subscribed node (``subscribe`` answers True) or lost its last one
  (``unsubscribe`` answers True). A node that disappears without unsubscribing
  (a killed worker, a node whose lease in Redis expired) is dropped from those
  counts, and one live node is told of each channel that left vacated
  (``on_channel_vacated``); a node taken for gone that was not counts itself
  again, and is told of the channels that this makes occupied
  (``on_channel_occupied``).
- ``publish`` assigns the next offset, appends to history and fans out in one
  step (Redis: one Lua script), so history and the live stream never disagree.
- history holds each channel's recent publications under a stream position
  ``(epoch, offset)``: offsets grow by one per publication; the epoch names one
  life of the stream and changes when the stream is lost (broker restart,
  expiry), which tells clients that offsets cannot be compared across it.
- presence is kept per channel and client id (Redis: a hash per channel whose
  entries expire unless the node refreshes them, see ``presence_expires``).
- user messages and user disconnects are addressed to a user id; every node
  with connections of that user acts on them.
- control messages go to every node, this one included: the server API's
  cluster-wide operations (subscribe a user, disconnect a client, refresh...)
  travel as opaque bytes the nodes decode (``Node.on_control``).
- nodes announce themselves (what they hold, as opaque bytes) every few
  seconds with a time to live; ``nodes`` reads every live announcement, which
  is how the server API answers about the whole cluster.

Publication data is passed as bytes encoded once by the publisher's node
(JSON text, or binary data behind a ``0x00`` marker: ``fastws.hub.protocol.data``);
brokers store and forward those bytes without decoding them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from fastws.errors import WebSocketError
from fastws.hub.broker.circuit import CircuitBreaker
from fastws.hub.protocol.types import StreamPosition

logger = logging.getLogger("fastws.hub")


def new_epoch() -> str:
    """A fresh name for one life of a channel's stream."""
    return os.urandom(4).hex()


@dataclass(frozen=True, slots=True)
class Publication:
    """One message published in a channel."""

    offset: int
    epoch: str
    data: bytes  # as carried: JSON, or 0x00 + binary (fastws.hub.protocol.data)
    user: str | None = None  # the publishing user; None when published through the API


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connection as others see it in presence, join and leave."""

    client: str
    user: str
    info: bytes | None = None  # JSON object from the token's 'info' claim


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How the channel keeps history (from its channel options)."""

    history_size: int = 0
    history_ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """The current stream position and the publications asked for (oldest first, unless
    read in reverse)."""

    position: StreamPosition
    publications: list[Publication]


class BrokerSizes(NamedTuple):
    """What a broker holds in this process's memory (gauges of the metrics)."""

    streams: int  # channels with a stream position
    publications: int  # held in history
    presence: int  # entries


class BrokerUnavailable(WebSocketError):
    """The broker cannot serve the call now (error 503 to clients, /ready says 503)."""


class BrokerOverloaded(BrokerUnavailable):
    """The call waited its longest for a free connection to the broker and was not made:
    the broker is busy, not down (error 503, try again later; /ready stays 200)."""


class BrokerSink(Protocol):
    """What a broker calls on its node; called on the event loop, never concurrently.

    ``id`` names the node in the cluster (the Redis broker counts occupancy by it)."""

    id: str

    def on_publication(self, channel: str, publication: Publication) -> None: ...

    def on_join(self, channel: str, info: ClientInfo) -> None: ...

    def on_leave(self, channel: str, info: ClientInfo) -> None: ...

    def on_user_message(self, user: str, sender: str | None, data: bytes) -> None: ...

    def on_disconnect_user(self, user: str, code: int, reason: str) -> None: ...

    def on_control(self, data: bytes) -> None: ...

    def on_channel_vacated(self, channel: str) -> None:
        """A node that is gone held the last subscription to ``channel``; of all the
        nodes, only this one is told."""

    def on_channel_occupied(self, channel: str) -> None:
        """This node, counted again after it was taken for gone, is the only one
        subscribed to ``channel``."""


class Broker:
    """The interface; every method may raise ``BrokerUnavailable``."""

    inline = False
    """True when no method ever suspends (the in-memory broker): the node then runs
    commands to completion at once instead of creating a task per command."""

    counts_occupancy = True
    """False when ``subscribe``/``unsubscribe`` cannot tell occupied and vacated channels
    (they answer None): the hub then refuses hooks on those events at start."""

    presence_expires = False
    """True when presence entries expire unless re-added every ``presence_ttl / 3``."""

    presence_ttl = 60.0

    @property
    def healthy(self) -> bool:
        """Whether calls are expected to succeed now (the /ready probe)."""
        raise NotImplementedError

    def status(self) -> dict:
        """What /ready and the info endpoint show of the broker (JSON-ready values)."""
        return {"state": "up" if self.healthy else "down"}

    def breakers(self) -> list[CircuitBreaker]:
        """The circuit breakers of the servers the broker depends on, in shard order
        (the metrics' ``shard`` label is the index); none without a server."""
        return []

    def sizes(self) -> BrokerSizes | None:
        """What the broker holds in this process; None when it is held elsewhere."""
        return None

    @property
    def overloaded(self) -> int:
        """Calls turned away since start because too many waited (``BrokerOverloaded``)."""
        return 0

    async def start(self, sink: BrokerSink) -> None:
        """Connect and start delivering to ``sink``."""
        raise NotImplementedError

    def _deliver(self, callback: Callable[..., None], *args: Any) -> None:
        """Call the sink; an error in the node must not break the broker's loop."""
        try:
            callback(*args)
        except Exception:
            logger.exception("fastws hub: error while delivering to the node")

    async def close(self) -> None:
        """Stop delivering and release connections."""
        raise NotImplementedError

    async def subscribe(self, channel: str) -> bool | None:
        """Deliver this channel's publications, joins and leaves to the sink. True when no
        node was subscribed before (the channel is now occupied), None when unknown."""
        raise NotImplementedError

    async def unsubscribe(self, channel: str) -> bool | None:
        """Stop delivering this channel to the sink. True when no node is subscribed any
        more (the channel is now vacated), None when unknown."""
        raise NotImplementedError

    async def publish(
        self, channel: str, data: bytes, user: str | None, options: PublishOptions
    ) -> StreamPosition:
        """Append to the stream (and history when ``options`` keep one) and fan out."""
        raise NotImplementedError

    async def history(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        """Publications after ``since`` (all held when None), oldest first, at most ``limit``
        (no bound when None; 0 asks for the position only). When ``since`` names another
        epoch, no publication is returned: its offsets mean nothing in this one.

        ``reverse`` reads backwards: the publications before ``since`` (all held when
        None), newest first, at most ``limit`` (the newest ones)."""
        raise NotImplementedError

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        raise NotImplementedError

    async def remove_presence(self, channel: str, client: str) -> None:
        raise NotImplementedError

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        raise NotImplementedError

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        raise NotImplementedError

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        raise NotImplementedError

    async def send_to_user(self, user: str, sender: str | None, data: bytes) -> None:
        """Deliver ``data`` (as carried) to every connection of ``user`` on every node."""
        raise NotImplementedError

    async def disconnect_user(self, user: str, code: int, reason: str) -> None:
        """Close every connection of ``user`` on every node."""
        raise NotImplementedError

    async def control(self, data: bytes) -> None:
        """Deliver ``data`` to every node, this one included (``on_control``)."""
        raise NotImplementedError

    async def remove_history(self, channel: str) -> None:
        """Drop the publications history holds; the stream position stays as it is."""
        raise NotImplementedError

    async def announce(self, node: str, info: bytes, ttl: float) -> None:
        """Keep ``info`` about ``node`` for ``ttl`` seconds, replacing what it said before."""
        raise NotImplementedError

    async def nodes(self) -> dict[str, bytes]:
        """Every node's last announcement that has not expired, by node id."""
        raise NotImplementedError


__all__ = [
    "Broker",
    "BrokerSink",
    "BrokerOverloaded",
    "BrokerSizes",
    "BrokerUnavailable",
    "ClientInfo",
    "HistoryResult",
    "Publication",
    "PublishOptions",
    "StreamPosition",
]
