"""The in-memory broker: one process, nothing shared, nothing survives a restart.

Each channel that was published to or read has a stream: an epoch chosen at
random when the stream is created, the last offset, and the publications
history keeps (bounded by the channel's size and age). A stream that nobody
is subscribed to and that saw no publication for ``history_meta_ttl`` seconds
is dropped; if the channel is used again it starts a new epoch, which is how
clients learn that what they remember of it can no longer be checked.

``state`` and ``restore`` carry all of it to another process (the master that
replaces this one on an upgrade, see ``handover.py``), times made relative.

No method ever suspends (``inline``), so a hub node runs commands against it
to completion without a task each.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from fastws.hub.broker.base import (
    Broker,
    BrokerSink,
    BrokerSizes,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
    new_epoch,
)
from fastws.hub.broker.handover import (
    BYTES,
    BYTES_OR_NONE,
    INT,
    LIST,
    NUMBER,
    TEXT,
    TEXT_OR_NONE,
    HandoverRefused,
    rows,
)

CLEANUP_INTERVAL = 60.0


class _Stream:
    __slots__ = ("epoch", "offset", "items", "touched")

    def __init__(self, now: float, epoch: str | None = None) -> None:
        self.epoch = epoch or new_epoch()
        self.offset = 0
        self.items: deque[tuple[float, Publication]] = deque()  # (expires at, publication)
        self.touched = now

    def expire(self, now: float) -> None:
        items = self.items
        while items and items[0][0] <= now:
            items.popleft()


class MemoryBroker(Broker):
    """Streams, history, presence and routing in this process's memory."""

    inline = True

    def __init__(
        self,
        *,
        history_meta_ttl: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.history_meta_ttl = history_meta_ttl
        self._clock = clock
        self._sink: BrokerSink | None = None
        self._closed = False
        self._streams: dict[str, _Stream] = {}
        self._interest: set[str] = set()
        self._presence: dict[str, dict[str, ClientInfo]] = {}
        self._nodes: dict[str, tuple[float, bytes]] = {}  # node -> (expires at, info)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def healthy(self) -> bool:
        return self._sink is not None and not self._closed

    def sizes(self) -> BrokerSizes:
        held = sum(len(stream.items) for stream in self._streams.values())
        present = sum(len(clients) for clients in self._presence.values())
        return BrokerSizes(len(self._streams), held, present)

    def state(self) -> dict:
        """Streams, history, presence and node announcements as plain values. Expiry
        times become the seconds left and ``touched`` an age: a monotonic clock means
        nothing in another process. Interest is not kept: it is the nodes' to give."""
        now = self._clock()
        streams = []
        for channel, stream in self._streams.items():
            stream.expire(now)
            items = [[expires - now, p.offset, p.data, p.user] for expires, p in stream.items]
            streams.append([channel, stream.epoch, stream.offset, now - stream.touched, items])
        presence = [
            [channel, info.client, info.user, info.info]
            for channel, clients in self._presence.items()
            for info in clients.values()
        ]
        nodes = [[node, expires - now, info] for node, (expires, info) in self._nodes.items()]
        return {"streams": streams, "presence": presence, "nodes": nodes}

    def restore(self, state: dict) -> None:
        """Hold what ``state`` (from ``state()`` of another broker) holds, in place of
        what this one held; HandoverRefused, with nothing changed, when it is not such
        a state (wrong types, or history that is not a run of consecutive offsets)."""
        now = self._clock()
        streams: dict[str, _Stream] = {}
        for channel, epoch, offset, idle, items in rows(
            state.get("streams"), (TEXT, TEXT, INT, NUMBER, LIST), "streams"
        ):
            if not epoch or offset < 0:
                raise HandoverRefused(f"stream {channel}: epoch {epoch!r} at offset {offset}")
            stream = streams[channel] = _Stream(now - idle, epoch)
            stream.offset = offset
            for ttl, item_offset, data, user in rows(
                items, (NUMBER, INT, BYTES, TEXT_OR_NONE), f"history of {channel}"
            ):
                publication = Publication(item_offset, epoch, data, user)
                stream.items.append((now + ttl, publication))
            offsets = [p.offset for _, p in stream.items]
            if offsets and (
                offsets != list(range(offsets[0], offsets[-1] + 1))
                or offsets[0] < 1
                or offsets[-1] > offset
            ):
                raise HandoverRefused(
                    f"history of {channel}: offsets {offsets[0]}..{offsets[-1]} are not "
                    f"consecutive up to the stream's offset {offset}"
                )
        presence: dict[str, dict[str, ClientInfo]] = {}
        for channel, client, user, info in rows(
            state.get("presence"), (TEXT, TEXT, TEXT, BYTES_OR_NONE), "presence"
        ):
            presence.setdefault(channel, {})[client] = ClientInfo(client, user, info)
        nodes = {
            node: (now + ttl, info)
            for node, ttl, info in rows(state.get("nodes"), (TEXT, NUMBER, BYTES), "nodes")
        }
        self._streams, self._presence, self._nodes = streams, presence, nodes

    async def start(self, sink: BrokerSink) -> None:
        self._sink = sink
        self._closed = False
        self._schedule_cleanup()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule_cleanup(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(min(CLEANUP_INTERVAL, self.history_meta_ttl), self._cleanup)

    def _check(self) -> BrokerSink:
        sink = self._sink
        if sink is None or self._closed:
            raise BrokerUnavailable("the memory broker is not running")
        return sink

    def _cleanup(self) -> None:
        """Drop expired history, and streams idle for history_meta_ttl."""
        now = self._clock()
        idle_before = now - self.history_meta_ttl
        for channel, stream in list(self._streams.items()):
            stream.expire(now)
            if stream.touched < idle_before and channel not in self._interest:
                del self._streams[channel]
        self._schedule_cleanup()

    def _stream(self, channel: str, now: float) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(now)
        return stream

    async def subscribe(self, channel: str) -> bool:
        self._check()
        first = channel not in self._interest
        self._interest.add(channel)
        return first

    async def unsubscribe(self, channel: str) -> bool:
        last = channel in self._interest
        self._interest.discard(channel)
        return last

    async def publish(
        self, channel: str, data: bytes, user: str | None, options: PublishOptions
    ) -> StreamPosition:
        sink = self._check()
        now = self._clock()
        stream = self._stream(channel, now)
        stream.offset += 1
        stream.touched = now
        publication = Publication(stream.offset, stream.epoch, data, user)
        items = stream.items
        if options.history_size > 0:
            items.append((now + options.history_ttl, publication))
            while len(items) > options.history_size:
                items.popleft()
            stream.expire(now)
        elif items:
            items.clear()
        if channel in self._interest:
            self._deliver(sink.on_publication, channel, publication)
        return StreamPosition(stream.offset, stream.epoch)

    async def history(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        self._check()
        now = self._clock()
        stream = self._stream(channel, now)
        stream.expire(now)
        position = StreamPosition(stream.offset, stream.epoch)
        items = stream.items
        if limit == 0 or not items:
            return HistoryResult(position, [])
        if since is not None and since.epoch != stream.epoch:
            return HistoryResult(position, [])
        # Offsets in history are consecutive: the wanted ones are found by arithmetic.
        first = items[0][1].offset
        if reverse:
            stop = len(items) if since is None else min(len(items), max(0, since.offset - first))
            start = 0 if limit is None else max(0, stop - limit)
            publications = [p for _, p in islice(items, start, stop)]
            publications.reverse()
            return HistoryResult(position, publications)
        start = 0 if since is None else max(0, since.offset + 1 - first)
        stop = None if limit is None else start + limit
        publications = [p for _, p in islice(items, start, stop)]
        return HistoryResult(position, publications)

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        self._check()
        self._presence.setdefault(channel, {})[info.client] = info

    async def remove_presence(self, channel: str, client: str) -> None:
        clients = self._presence.get(channel)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._presence[channel]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        self._check()
        return dict(self._presence.get(channel, {}))

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        sink = self._check()
        if channel in self._interest:
            self._deliver(sink.on_join, channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        sink = self._check()
        if channel in self._interest:
            self._deliver(sink.on_leave, channel, info)

    async def send_to_user(self, user: str, sender: str | None, data: bytes) -> None:
        self._deliver(self._check().on_user_message, user, sender, data)

    async def disconnect_user(self, user: str, code: int, reason: str) -> None:
        self._deliver(self._check().on_disconnect_user, user, code, reason)

    async def control(self, data: bytes) -> None:
        self._deliver(self._check().on_control, data)

    async def remove_history(self, channel: str) -> None:
        self._check()
        stream = self._streams.get(channel)
        if stream is not None:
            stream.items.clear()

    async def announce(self, node: str, info: bytes, ttl: float) -> None:
        self._check()
        self._nodes[node] = (self._clock() + ttl, info)

    async def nodes(self) -> dict[str, bytes]:
        self._check()
        now = self._clock()
        for node, (expires, _) in list(self._nodes.items()):
            if expires <= now:
                del self._nodes[node]
        return {node: info for node, (_, info) in self._nodes.items()}


__all__ = ["MemoryBroker"]
