"""Broker test helpers: a recording sink (what a broker delivered, in order, as plain
tuples), a clock moved by hand, and checks every broker must pass the same way."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Awaitable, Callable

from fastws.hub.broker import Broker, PublishOptions, StreamPosition
from fastws.hub.protocol.data import decode, encode
from tests.support.polling import PATIENCE, until


class Sink:
    """Records what a broker delivers, in order, as plain tuples."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.events: list[tuple] = []

    def on_publication(self, channel, publication):
        self.events.append(("pub", channel, publication.offset, publication.data))

    def on_join(self, channel, info):
        self.events.append(("join", channel, info.client))

    def on_leave(self, channel, info):
        self.events.append(("leave", channel, info.client))

    def on_user_message(self, user, sender, data):
        self.events.append(("message", user, sender, data))

    def on_disconnect_user(self, user, code, reason):
        self.events.append(("disconnect", user, code, reason))

    def on_control(self, data):
        self.events.append(("control", data))

    def on_channel_vacated(self, channel):
        self.events.append(("vacated", channel))

    def on_channel_occupied(self, channel):
        self.events.append(("occupied", channel))

    async def wait(self, count: int, timeout: float = PATIENCE) -> list[tuple]:
        """The events once at least ``count`` have arrived."""
        await until(lambda: len(self.events) >= count, f"{count} broker events", timeout, 0.005)
        return self.events



class LatencySink(Sink):
    """Keeps the delay of every publication (its data is the send time)."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float] = []

    def on_publication(self, channel, publication):
        (sent,) = struct.unpack("d", publication.data[:8])
        self.delays.append(time.perf_counter() - sent)

class Clock:
    """A time source that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def check_reverse_history(broker: Broker, channel: str) -> None:
    """Reading history backwards: newest first, ``limit`` keeps the newest, ``since`` pages
    back from a position. Publishes 6 publications in ``channel``, history keeps 4."""
    options = PublishOptions(history_size=4, history_ttl=60)
    for i in range(1, 7):
        position = await broker.publish(channel, b"%d" % i, None, options)
    epoch = position.epoch

    async def offsets(since: int | None, limit: int | None, epoch: str = epoch) -> list[int]:
        wanted = None if since is None else StreamPosition(since, epoch)
        result = await broker.history(channel, wanted, limit, reverse=True)
        assert result.position == position
        return [p.offset for p in result.publications]

    assert await offsets(None, None) == [6, 5, 4, 3]
    assert await offsets(None, 2) == [6, 5]
    assert await offsets(None, 0) == []
    assert await offsets(5, 2) == [4, 3]  # the page before offset 5
    assert await offsets(4, None) == [3]  # history holds nothing older than 3
    assert await offsets(3, 10) == []
    assert await offsets(1, None) == []
    assert await offsets(9, 2) == [6, 5]  # ahead of the stream: from the newest
    assert await offsets(5, 2, epoch="other") == []
    # Forward reads are unchanged beside it.
    forward = await broker.history(channel, StreamPosition(3, epoch), 2)
    assert [p.offset for p in forward.publications] == [4, 5]
    data = await broker.history(channel, None, 1, reverse=True)
    assert [p.data for p in data.publications] == [b"6"]


async def check_binary_data(broker: Broker, sink: Sink, channel: str) -> None:
    """Binary data (``0x00`` and any bytes after it) comes back byte for byte from
    pub/sub, history and user messages, beside JSON data."""
    payloads = [
        encode(bytes(range(256))),
        encode(b""),
        encode(b"p1,e,-1,\r\n\x00"),  # looks like the separators of Redis records
        encode({"json": True}),
    ]
    options = PublishOptions(history_size=10, history_ttl=60)
    await broker.subscribe(channel)
    for data in payloads:
        await broker.publish(channel, data, "u", options)
    await broker.send_to_user("u", None, payloads[0])

    await until(
        lambda: len([e for e in sink.events if e[0] in ("pub", "message")]) > len(payloads),
        "binary publications and a user message",
        PATIENCE,
        0.005,
    )
    delivered = [e[3] for e in sink.events if e[0] == "pub" and e[1] == channel]
    assert delivered == payloads
    assert [e[3] for e in sink.events if e[0] == "message"] == [payloads[0]]
    history = await broker.history(channel, None, None)
    assert [p.data for p in history.publications] == payloads
    assert decode(history.publications[0].data) == bytes(range(256))


async def check_server_api_support(broker: Broker, sinks: list[Sink], channel: str) -> None:
    """What the server API's cluster-wide operations need: a control message reaches every
    node (``sinks``, this one first), binary bytes intact; removing history keeps the stream
    position; node announcements replace each other and are read back by node id."""
    await broker.control(b"\x00{\"op\": 1},\r\n")
    for sink in sinks:
        await until(
            lambda sink=sink: ("control", b"\x00{\"op\": 1},\r\n") in sink.events,
            "a control message on every node",
            PATIENCE,
            0.005,
        )

    options = PublishOptions(history_size=10, history_ttl=60)
    for i in range(3):
        position = await broker.publish(channel, b"%d" % i, None, options)
    await broker.remove_history(channel)
    result = await broker.history(channel, None, None)
    assert result.position == position
    assert result.publications == []
    after = await broker.publish(channel, b"3", None, options)
    assert after == StreamPosition(position.offset + 1, position.epoch)
    result = await broker.history(channel, position, None)
    assert [p.data for p in result.publications] == [b"3"]
    await broker.remove_history("never-used")

    await broker.announce("node-a", b"\x00a,1", 60)
    await broker.announce("node-b", b"b", 60)
    await broker.announce("node-a", b"a,2", 60)
    nodes = await broker.nodes()
    assert {k: v for k, v in nodes.items() if k.startswith("node-")} == {
        "node-a": b"a,2",
        "node-b": b"b",
    }


async def check_occupancy(nodes: list[Broker], channel: str) -> None:
    """The first node to subscribe a channel learns it is occupied (True), the last to
    leave that it is vacated (True); every other call answers False. ``nodes`` are the
    brokers of one or two nodes sharing the channels."""
    one = nodes[0]
    assert await one.subscribe(channel) is True
    assert await one.unsubscribe(channel) is True
    assert await one.unsubscribe(channel) is False
    if len(nodes) == 1:
        return
    two = nodes[1]
    assert await one.subscribe(channel) is True
    assert await two.subscribe(channel) is False
    assert await one.unsubscribe(channel) is False
    assert await one.subscribe(channel) is False
    assert await two.unsubscribe(channel) is False
    assert await one.unsubscribe(channel) is True
    assert await two.subscribe(channel) is True
    assert await two.unsubscribe(channel) is True


async def check_gone_node_vacates(
    live: list[tuple[Broker, Sink]], dying: Broker, die: Callable[[], Awaitable[None]]
) -> None:
    """A node that disappears without unsubscribing (``die``): the channels it alone
    held are told vacated to exactly one live node, those others hold stay occupied."""
    first, _ = live[0]
    assert await first.subscribe("shared") is True
    assert await dying.subscribe("shared") is False
    assert await dying.subscribe("alone") is True
    await die()

    def told() -> list[tuple]:
        return [e for _, sink in live for e in sink.events if e[0] == "vacated"]

    await until(told, "the channel of a gone node told vacated", PATIENCE, 0.01)
    assert await first.subscribe("alone") is True  # after the vacated, occupied anew
    assert await first.unsubscribe("shared") is True
    assert await first.unsubscribe("alone") is True
    assert told() == [("vacated", "alone")]
