"""The Redis broker through the broker interface, in this process, on private Redis servers."""

from __future__ import annotations

import asyncio
import zlib

import pytest

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker import BrokerUnavailable, ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.redis import RedisBroker
from fastws.hub.metrics import broker_samples
from tests.support.brokers import (
    Sink,
    check_gone_node_vacates,
    check_occupancy,
    check_server_api_support,
)
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer

HISTORY = PublishOptions(history_size=3, history_ttl=60)
NONE = PublishOptions()


async def started(urls: list[str], **options) -> tuple[RedisBroker, Sink]:
    options.setdefault("cooldown", 0.1)
    options.setdefault("cooldown_max", 0.5)
    broker = RedisBroker(urls, **options)
    sink = Sink()
    await broker.start(sink)
    return broker, sink


def test_records_round_trip() -> None:
    for user in (None, "", "a,b", "ünï,code 12,"):
        field = rs.user_field(user)
        publication = rs.decode_publication(b"p7,ab12," + field + b'{"x":",1,"}')
        assert (publication.offset, publication.epoch, publication.user) == (7, "ab12", user)
        assert publication.data == b'{"x":",1,"}'
        record = rs.decode_history(b"7,1700000000000," + field + b"[1]", "e")
        assert (record.offset, record.user, record.data) == (7, user, b"[1]")
    for info in (ClientInfo("c1", "bob", None), ClientInfo("c,2", "b,ob", b'{"n":","}')):
        assert rs.decode_client(b"j" + rs.encode_client(info)) == info
        decoded = rs.decode_presence(info.client.encode(), b"123," + rs.encode_presence(info))
        assert decoded == info
    for sender in (None, "", "al,ice"):
        message = rs.encode_user_message("b,ob", sender, b'"hi"')
        assert rs.decode_user_message(message) == ("b,ob", sender, b'"hi"')
    assert rs.decode_user_disconnect(rs.encode_user_disconnect("x,y", 4503, "a, b")) == (
        "x,y",
        4503,
        "a, b",
    )
    assert rs.pubsub_name("chat:a", rs.pubsub_suffix(3)) == b"fastws:{chat:a}@3"
    assert rs.pubsub_name("chat:a", rs.pubsub_suffix(0)) == b"fastws:{chat:a}"


@run_async()
async def test_history_positions_and_epochs(redis_server: RedisServer) -> None:
    broker, _ = await started([redis_server.url])
    for i in range(5):
        position = await broker.publish("h", b"%d" % i, "u" if i % 2 else None, HISTORY)
    epoch = position.epoch
    assert position == StreamPosition(5, epoch)
    result = await broker.history("h", None, None)
    assert result.position == position
    assert [(p.offset, p.data, p.user) for p in result.publications] == [
        (3, b"2", None),
        (4, b"3", "u"),
        (5, b"4", None),
    ]
    assert [p.offset for p in (await broker.history("h", None, 2)).publications] == [3, 4]
    assert (await broker.history("h", None, 0)).publications == []
    since = await broker.history("h", StreamPosition(3, epoch), None)
    assert [p.offset for p in since.publications] == [4, 5]
    older = await broker.history("h", StreamPosition(1, epoch), None)
    assert [p.offset for p in older.publications] == [3, 4, 5]  # the caller sees the gap
    assert (await broker.history("h", StreamPosition(1, "other"), None)).publications == []
    # A channel without history keeps its position only.
    await broker.publish("h", b"5", None, NONE)
    plain = await broker.history("h", None, None)
    assert plain.position.offset == 6 and plain.publications == []
    # A lost stream (FLUSHALL, a restarted Redis) starts a new epoch.
    redis_server.command("FLUSHALL")
    fresh = await broker.publish("h", b"x", None, HISTORY)
    assert fresh.offset == 1 and fresh.epoch != epoch
    await broker.close()


@run_async()
async def test_control_messages_and_history_removal_with_two_shards(make_redis) -> None:
    urls = [make_redis().url, make_redis().url]
    one, sink1 = await started(urls)
    two, sink2 = await started(urls)
    try:
        for channel in ("a", "d"):  # one on each server (crc32 % 2)
            sink1.events.clear()
            sink2.events.clear()
            await check_server_api_support(one, [sink1, sink2], channel)
        assert await two.nodes() == await one.nodes()
    finally:
        await one.close()
        await two.close()


@run_async()
async def test_nodes_are_counted_per_channel(make_redis) -> None:
    urls = [make_redis().url, make_redis().url]  # occupancy lives on the first server
    one, _ = await started(urls)
    two, _ = await started(urls)
    try:
        for channel in ("a", "d"):  # one on each server (crc32 % 2)
            await check_occupancy([one, two], channel)
    finally:
        await one.close()
        await two.close()


@run_async()
async def test_a_dead_node_leaves_its_channels_vacated_after_its_lease(
    redis_server: RedisServer,
) -> None:
    lease = {"node_ttl": 0.6}
    live = [await started([redis_server.url], **lease) for _ in range(2)]
    dying, _ = await started([redis_server.url], **lease)
    try:
        # Closed without unsubscribing, as a killed node: only its lease ends it.
        await check_gone_node_vacates(live, dying, dying.close)
        assert redis_server.command("HLEN", rs.OCCUPANCY_KEY) == b":0\r\n"
    finally:
        for broker, _ in live:
            await broker.close()


@run_async()
async def test_a_node_whose_lease_is_gone_counts_its_channels_again(
    redis_server: RedisServer,
) -> None:
    (one, sink1), (two, sink2) = [await started([redis_server.url], node_ttl=0.6) for _ in "12"]
    try:
        assert await one.subscribe("c") is True
        redis_server.command("FLUSHALL")  # Redis lost its data: leases and counts
        await until(lambda: sink1.events, "the node counting itself again", 10, 0.01)
        assert sink1.events == [("occupied", "c")]
        assert await two.subscribe("c") is False
        assert await two.unsubscribe("c") is False
        assert await one.unsubscribe("c") is True
        assert sink2.events == []
    finally:
        await one.close()
        await two.close()


@run_async()
async def test_a_new_node_takes_its_first_lease_without_counting_again(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's first lease was not there before; only a lease lost later means lost
    counts (counting every channel again under a connect burst held the broker up)."""
    recounts = []
    recount = RedisBroker._recount

    async def counted(self: RedisBroker) -> None:
        recounts.append(self)
        await recount(self)

    monkeypatch.setattr(RedisBroker, "_recount", counted)
    broker, sink = await started([redis_server.url], node_ttl=0.6)
    try:
        for channel in ("a", "b", "c"):
            assert await broker.subscribe(channel) is True
        await asyncio.sleep(0.5)  # the lease renewed at least once more
        assert recounts == [] and sink.events == []
        redis_server.command("FLUSHALL")
        await until(lambda: recounts, "the lost lease noticed", 10, 0.01)
    finally:
        await broker.close()


@run_async()
async def test_node_announcements_expire(redis_server: RedisServer) -> None:
    broker, _ = await started([redis_server.url])
    await broker.announce("short", b"1", 0.05)
    await broker.announce("long", b"2", 60)
    await asyncio.sleep(0.1)
    nodes = await broker.nodes()
    assert "short" not in nodes and nodes["long"] == b"2"
    await broker.close()


@run_async()
async def test_history_expires_by_age_and_positions_by_idleness(redis_server: RedisServer) -> None:
    # Margins of most of a second, for a busy machine: sleeps last at least as long as
    # asked, and the steps between them must each stay well under a second.
    broker, _ = await started([redis_server.url], history_meta_ttl=3.0)
    short = PublishOptions(history_size=10, history_ttl=2.0)
    first = await broker.publish("age", b"1", None, short)
    await asyncio.sleep(1.2)
    await broker.publish("age", b"2", None, short)
    await asyncio.sleep(1.2)  # the first is older than 2 s, the second is not
    assert [p.data for p in (await broker.history("age", None, None)).publications] == [b"2"]
    await asyncio.sleep(3.5)  # no publication for longer than history_meta_ttl
    again = await broker.publish("age", b"3", None, short)
    assert again.offset == 1 and again.epoch != first.epoch
    await broker.close()


@run_async()
async def test_one_subscription_per_node_and_channel(redis_server: RedisServer) -> None:
    a, sink_a = await started([redis_server.url])
    b, sink_b = await started([redis_server.url])
    name = "fastws:{news}"
    assert redis_server.command("PUBSUB", "NUMSUB", name).endswith(b":0\r\n")
    await b.subscribe("news")
    assert redis_server.command("PUBSUB", "NUMSUB", name).endswith(b":1\r\n")
    await a.publish("news", b"1", None, NONE)
    info = ClientInfo("c1", "bob", b'{"x":1}')
    await a.publish_join("news", info)
    await a.publish_leave("news", info)
    await sink_b.wait(3)
    assert sink_b.events == [
        ("pub", "news", 1, b"1"),
        ("join", "news", info.client),
        ("leave", "news", info.client),
    ]
    assert sink_a.events == []  # A never subscribed
    await b.unsubscribe("news")
    await a.publish("news", b"2", None, NONE)
    await b.subscribe("other")  # a round trip on the same connection: "news" is gone
    assert redis_server.command("PUBSUB", "NUMSUB", name).endswith(b":0\r\n")
    assert len(sink_b.events) == 3
    for broker in (a, b):
        await broker.close()


@run_async()
async def test_presence_entries_expire_unless_refreshed(redis_server: RedisServer) -> None:
    a, _ = await started([redis_server.url], presence_ttl=0.3)
    b, _ = await started([redis_server.url], presence_ttl=0.3)
    kept, dropped = ClientInfo("k", "kim", None), ClientInfo("d", "dan", b'{"a":1}')
    await a.add_presence("room", kept)
    await b.add_presence("room", dropped)
    assert await a.presence("room") == {"k": kept, "d": dropped}
    for _ in range(4):  # a refreshes its entry, b does not (as if its node died)
        await asyncio.sleep(0.1)
        await a.add_presence("room", kept)
    assert await b.presence("room") == {"k": kept}
    await a.remove_presence("room", "k")
    assert await b.presence("room") == {}
    for broker in (a, b):
        await broker.close()


@run_async()
async def test_channels_and_users_are_sharded(make_redis) -> None:
    servers = [make_redis(), make_redis()]
    urls = [server.url for server in servers]
    a, _ = await started(urls)
    b, sink = await started(urls)
    channels = [f"shard:{i}" for i in range(12)]
    for channel in channels:
        await b.subscribe(channel)
    for channel in channels:
        await a.publish(channel, channel.encode(), None, HISTORY)
    users = [f"user{i}" for i in range(6)]
    for user in users:
        await a.send_to_user(user, None, b"1")
    events = await sink.wait(len(channels) + len(users))
    assert sorted(e[1] for e in events if e[0] == "pub") == sorted(channels)
    assert sorted(e[1] for e in events if e[0] == "message") == sorted(users)
    used = set()
    for channel in channels:
        index = zlib.crc32(channel.encode()) % 2
        used.add(index)
        for i, server in enumerate(servers):
            held = server.command("EXISTS", rs.meta_key(channel), rs.history_key(channel))
            assert held == (b":2\r\n" if i == index else b":0\r\n"), (channel, i)
    assert used == {0, 1}
    for broker in (a, b):
        await broker.close()


@run_async()
async def test_resync_fills_the_gap_when_the_pubsub_connection_drops(
    redis_server: RedisServer,
) -> None:
    a, _ = await started([redis_server.url])
    b, sink = await started([redis_server.url], cooldown=0.3)
    await b.subscribe("gap")
    await b.history("gap", None, 0)  # where the node starts, as a subscribe does
    for i in range(3):
        await a.publish("gap", b"%d" % i, None, HISTORY)
    await sink.wait(3)
    b.shards[0].pubsub.close()  # as if the connection dropped
    await asyncio.sleep(0.01)  # the transport reports the loss on the next loop turn
    assert not b.healthy
    with pytest.raises(BrokerUnavailable):
        await b.publish("gap", b"refused", None, HISTORY)  # at once, no waiting
    for i in range(3, 6):  # missed by b: history keeps the last 3
        await a.publish("gap", b"%d" % i, None, HISTORY)
    events = await sink.wait(6)
    assert b.healthy
    assert [e[2] for e in events] == [1, 2, 3, 4, 5, 6]
    assert b.trips == 1
    for broker in (a, b):
        await broker.close()


@run_async()
async def test_metrics_show_the_circuit_of_each_server_and_no_sizes(
    redis_server: RedisServer, make_redis
) -> None:
    down = make_redis(start=False)
    broker, _ = await started([redis_server.url, down.url])

    def samples() -> dict:
        return {(name, *labels): value for name, labels, value in broker_samples(broker, "0")}

    def circuit(shard: str, state: str) -> tuple:
        return ("fastws_broker_breaker_state", "worker", "0", "shard", shard, "state", state)

    before = samples()
    assert before[("fastws_broker_up", "worker", "0")] == 0
    assert before[circuit("0", "closed")] == 1 and before[circuit("0", "open")] == 0
    assert before[circuit("1", "open")] == 1 and before[circuit("1", "closed")] == 0
    assert ("fastws_broker_breaker_trips_total",) not in before
    assert not [key for key in before if key[0].startswith(("fastws_history", "fastws_presence"))]
    broker.shards[0].pubsub.close()  # as if the connection dropped
    await asyncio.sleep(0.01)
    after = samples()
    assert after[("fastws_broker_breaker_trips_total",)] == 1
    assert after[circuit("0", "closed")] == 0
    await broker.close()


@run_async()
async def test_a_broker_without_redis_fails_fast_and_connects_later(make_redis) -> None:
    server = make_redis(start=False)
    broker, sink = await started([server.url])
    assert not broker.healthy and broker.status()["state"] == "starting"
    for call in (
        broker.subscribe("x"),
        broker.publish("x", b"1", None, NONE),
        broker.presence("x"),
        broker.send_to_user("u", None, b"1"),
    ):
        with pytest.raises(BrokerUnavailable):
            await call
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(10):
        while not broker.healthy:
            await asyncio.sleep(0.02)
    await broker.subscribe("x")
    await broker.publish("x", b"1", None, NONE)
    assert await sink.wait(1) == [("pub", "x", 1, b"1")]
    assert broker.status()["state"] == "up"
    await broker.close()


@run_async()
async def test_passwords_and_databases(make_redis) -> None:
    """AUTH on both connections; hubs on two databases of one Redis stay apart, pub/sub
    included (Redis pub/sub ignores database numbers)."""
    server = make_redis(True, None, "--requirepass", "s3cret")
    base = f"redis://:s3cret@127.0.0.1:{server.port}"
    zero, sink_zero = await started([base + "/0"])
    one, sink_one = await started([base + "/1"])
    assert zero.healthy and one.healthy
    for broker in (zero, one):
        await broker.subscribe("db")
    await zero.publish("db", b"0", None, HISTORY)
    await one.publish("db", b"1", None, HISTORY)
    await zero.send_to_user("u", None, b"0")
    assert await sink_zero.wait(2) == [("pub", "db", 1, b"0"), ("message", "u", None, b"0")]
    assert (await sink_one.wait(1))[0] == ("pub", "db", 1, b"1")  # its own offset 1
    await asyncio.sleep(0.05)
    assert len(sink_one.events) == 1
    wrong, _ = await started([f"redis://:nope@127.0.0.1:{server.port}/0"])
    assert not wrong.healthy and "invalid" in wrong.status()["shards"][0]["error"].lower()
    for broker in (zero, one, wrong):
        await broker.close()


@run_async()
async def test_a_promoted_replica_starts_a_new_epoch(make_redis) -> None:
    """A failover may lose the master's latest writes: the replica that takes over must
    not hand out offsets the readers have already seen under the same epoch."""
    master = make_redis(True, None, "--repl-diskless-sync-delay", "0")
    replica = make_redis(True, None, "--replicaof", "127.0.0.1", str(master.port))
    broker, _ = await started([master.url])
    for i in range(3):
        before = await broker.publish("fo", b"%d" % i, None, HISTORY)
    await until(
        lambda: replica.command("HGET", rs.meta_key("fo"), "o").endswith(b"3\r\n"),
        "the replica has the writes",
    )
    replica.command("REPLICAOF", "NO", "ONE")
    promoted, _ = await started([replica.url])
    after = await promoted.history("fo", before, None)
    assert after.position.epoch != before.epoch and after.position.offset == 0
    assert after.publications == []
    assert await promoted.publish("fo", b"x", None, HISTORY) == StreamPosition(1, after.position.epoch)
    assert (await broker.history("fo", None, None)).position == before  # the old master's own
    for each in (broker, promoted):
        await each.close()
