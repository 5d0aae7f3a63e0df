"""The NATS broker beyond the contract, in this process, on private nats-servers: epochs of
streams made again, limits by age, presence expiry, outages and restarts."""

from __future__ import annotations

import asyncio

import nats
import pytest

import fastws.hub.broker.nats.records as nr
from fastws.hub.broker import BrokerUnavailable, ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.nats import NatsBroker
from tests.support.brokers import Sink
from tests.support.loops import run_async
from tests.support.nats import NatsServer
from tests.support.polling import until

HISTORY = PublishOptions(history_size=10, history_ttl=60)


class EpochSink(Sink):
    """Records each publication's epoch too."""

    def on_publication(self, channel, publication):
        self.events.append(("pub", channel, publication.offset, publication.data, publication.epoch))


async def started(url: str, sink: Sink | None = None, **options) -> tuple[NatsBroker, Sink]:
    options.setdefault("cooldown", 0.1)
    options.setdefault("cooldown_max", 0.5)
    broker = NatsBroker([url], **options)
    sink = sink or Sink()
    await broker.start(sink)
    return broker, sink


def test_records_and_names() -> None:
    info = ClientInfo("c.1*", "bö b", b'{"n":1}')
    assert nr.decode_client(nr.encode_client(info)) == info
    assert nr.decode_client(nr.encode_client(ClientInfo("c", "u"))) == ClientInfo("c", "u")
    key = nr.channel_key("chat:a.b *>")
    assert len(key) == 32 and key.isalnum() and key != nr.channel_key("chat:a.b")
    assert nr.stream_name(key) == f"FASTWS_{key}"
    assert nr.untoken(nr.token("n.ode/1")) == "n.ode/1"
    assert "." not in nr.token("n.ode/1") and "/" not in nr.token("n.ode/1")


@run_async(loops=("uvloop",))
async def test_a_stream_made_again_has_a_new_epoch_on_every_node(nats_server: NatsServer) -> None:
    a, _ = await started(nats_server.url)
    b, sink = await started(nats_server.url, EpochSink())
    try:
        await b.subscribe("e")
        await b.history("e", None, 0)  # where the node starts, as a subscribe does
        first = [await a.publish("e", b"%d" % i, None, HISTORY) for i in (1, 2)]
        await sink.wait(2)
        operator = await nats.connect(nats_server.url)  # an operator removes the stream
        await operator.jetstream().delete_stream(nr.stream_name(nr.channel_key("e")))
        await operator.close()

        again = await a.publish("e", b"3", None, HISTORY)
        assert again.offset == 1 and again.epoch != first[0].epoch
        events = await sink.wait(3)
        assert [e[2:] for e in events] == [
            (1, b"1", first[0].epoch),
            (2, b"2", first[0].epoch),
            (1, b"3", again.epoch),
        ]
        result = await b.history("e", StreamPosition(2, first[0].epoch), None)
        assert result.position == again and result.publications == []
    finally:
        await a.close()
        await b.close()


@run_async(loops=("uvloop",))
async def test_history_ages_out_and_presence_expires_unless_refreshed(
    nats_server: NatsServer,
) -> None:
    a, _ = await started(nats_server.url, presence_ttl=0.6)
    b, _ = await started(nats_server.url, presence_ttl=0.6)
    try:
        short = PublishOptions(history_size=10, history_ttl=0.6)
        for i in range(3):
            position = await a.publish("age", b"%d" % i, None, short)
        assert len((await b.history("age", None, None)).publications) == 3
        kept, dropped = ClientInfo("k", "kim"), ClientInfo("d", "dan")
        await a.add_presence("room", kept)
        await b.add_presence("room", dropped)
        for _ in range(6):  # a refreshes its entry, b does not (as if its node died)
            await asyncio.sleep(0.2)
            await a.add_presence("room", kept)
        assert await b.presence("room") == {"k": kept}
        result = await b.history("age", None, None)
        assert result.publications == [] and result.position == position
    finally:
        await a.close()
        await b.close()


@run_async(loops=("uvloop",))
async def test_a_broker_without_nats_fails_fast_and_connects_later(make_nats) -> None:
    server = make_nats(start=False)
    broker, sink = await started(server.url, timeout=0.5)
    try:
        assert not broker.healthy and broker.status()["state"] == "starting"
        for call in (
            broker.subscribe("x"),
            broker.publish("x", b"1", None, HISTORY),
            broker.presence("x"),
            broker.send_to_user("u", None, b"1"),
        ):
            with pytest.raises(BrokerUnavailable):
                await call
        await asyncio.to_thread(server.start)
        await until(lambda: broker.healthy, "the broker connected", timeout=20)
        await broker.subscribe("x")
        await broker.publish("x", b"1", None, HISTORY)
        assert await sink.wait(1) == [("pub", "x", 1, b"1")]
        assert broker.status()["state"] == "up"
    finally:
        await broker.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_a_restarted_server_keeps_streams_and_nodes_resume(nats_server: NatsServer) -> None:
    """JetStream keeps its files: after a kill and a start on the same store, the stream
    goes on in the same epoch and subscribed nodes get what follows, resynced."""
    a, _ = await started(nats_server.url)
    b, sink = await started(nats_server.url)
    try:
        await b.subscribe("keep")
        await b.history("keep", None, 0)
        for i in range(3):
            before = await a.publish("keep", b"%d" % i, None, HISTORY)
        await sink.wait(3)
        nats_server.kill()
        await until(lambda: not a.healthy and not b.healthy, "both brokers down")
        with pytest.raises(BrokerUnavailable):
            await a.publish("keep", b"refused", None, HISTORY)
        await asyncio.to_thread(nats_server.start)
        await until(lambda: a.healthy and b.healthy, "both brokers up again", timeout=30)
        after = await a.publish("keep", b"3", None, HISTORY)
        assert after == StreamPosition(4, before.epoch)
        events = await sink.wait(4)
        assert [e[2] for e in events] == [1, 2, 3, 4]
        assert b.breaker.trips == 1
    finally:
        await a.close()
        await b.close()


@run_async(loops=("uvloop",))
async def test_credentials_in_the_url_are_used_and_never_shown(make_nats) -> None:
    server = make_nats(True, "--user", "hub", "--pass", "s3cret-word")
    broker, sink = await started(server.url_as("hub", "s3cret-word"))
    wrong, _ = await started(server.url_as("hub", "nope"), timeout=0.5)
    try:
        assert broker.healthy and not wrong.healthy
        await broker.subscribe("x")
        await broker.publish("x", b"1", None, HISTORY)
        assert await sink.wait(1) == [("pub", "x", 1, b"1")]
        assert broker.status()["server"] == f"127.0.0.1:{server.port}"
        assert "s3cret" not in str(broker.status()) + str(wrong.status())
        assert wrong.status()["state"] == "starting" and wrong.status()["error"]
    finally:
        await broker.close()
        await wrong.close()


@run_async(loops=("uvloop",))
async def test_the_streams_a_node_remembers_are_bounded(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fastws.hub.broker.nats.broker.KNOWN_STREAMS", 4)
    broker, sink = await started(nats_server.url)
    try:
        await broker.subscribe("kept")
        channels = ["kept", *(f"c{i}" for i in range(10))]
        first = {c: await broker.publish(c, b"1", None, HISTORY) for c in channels}
        assert len(broker._streams) <= 4 + 1
        for channel in channels:  # the forgotten ones are read again, same streams
            again = await broker.publish(channel, b"2", None, HISTORY)
            assert again == StreamPosition(2, first[channel].epoch)
        assert await sink.wait(2) == [("pub", "kept", 1, b"1"), ("pub", "kept", 2, b"2")]
    finally:
        await broker.close()
