"""The broker contract: the same checks against every broker, each on its own server.

``backend`` is one kind of broker; ``Nodes.node()`` starts another node's broker on
the same server (the memory broker serves one process: one node only).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fastws.hub.broker import Broker, ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.memory import MemoryBroker
from tests.support.brokers import (
    Sink,
    check_binary_data,
    check_occupancy,
    check_reverse_history,
    check_server_api_support,
)
from tests.support.loops import run_async
from tests.support.nats import LocalNatsCluster, NatsServer
from tests.support.polling import until
from tests.support.redis import RedisServer
from tests.support.redis_cluster import LocalRedisCluster, LocalSentinels

HISTORY = PublishOptions(history_size=3, history_ttl=60)
NONE = PublishOptions()
KINDS = ("memory", "redis", "redis+cluster", "redis+sentinel", "nats", "nats+cluster")
STREAMS = (("pub",), ("join", "leave"), ("message", "disconnect"))


class Nodes:
    """Brokers of one kind on one server, closed together."""

    def __init__(self, kind: str, url: str = "") -> None:
        self.kind = kind
        self.url = url
        self.started: list[Broker] = []

    @property
    def shared(self) -> bool:
        return self.kind != "memory"

    def make(self) -> Broker:
        if self.kind == "memory":
            return MemoryBroker()
        if self.kind.startswith("redis"):
            from fastws.hub.broker.redis import RedisBroker

            return RedisBroker([self.url], cooldown=0.1, cooldown_max=0.5)
        from fastws.hub.broker.nats import NatsBroker

        return NatsBroker(self.url.split(","), cooldown=0.1, cooldown_max=0.5)

    async def node(self) -> tuple[Broker, Sink]:
        assert self.shared or not self.started, "the memory broker serves one node"
        broker, sink = self.make(), Sink()
        await broker.start(sink)
        assert broker.healthy, broker.status()
        self.started.append(broker)
        return broker, sink

    async def __aenter__(self) -> Nodes:
        return self

    async def __aexit__(self, *_: object) -> None:
        for broker in self.started:
            await broker.close()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """One Redis Cluster for the module (it takes seconds to form), emptied per test."""
    cluster = LocalRedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def redis_sentinels() -> Iterator[LocalSentinels]:
    """One Sentinel setup for the module, emptied per test."""
    sentinels = LocalSentinels()
    try:
        yield sentinels.start()
    finally:
        sentinels.cleanup()


@pytest.fixture(scope="module")
def nats_servers() -> Iterator[LocalNatsCluster]:
    """One NATS cluster of three for the module (streams with three replicas), emptied
    per test."""
    cluster = LocalNatsCluster()
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Nodes]:
    if request.param == "memory":
        yield Nodes("memory")
        return
    if request.param in ("redis+cluster", "redis+sentinel", "nats+cluster"):
        name = {
            "redis+cluster": "redis_cluster",
            "redis+sentinel": "redis_sentinels",
            "nats+cluster": "nats_servers",
        }[request.param]
        servers = request.getfixturevalue(name)
        servers.flush()
        yield Nodes(request.param, servers.url())
        return
    server = RedisServer() if request.param == "redis" else NatsServer()
    try:
        server.start()
        yield Nodes(request.param, server.url)
    finally:
        server.cleanup()


@run_async(loops=("uvloop",))
async def test_offsets_history_bounds_and_epochs(backend: Nodes) -> None:
    async with backend as nodes:
        broker, _ = await nodes.node()
        unused = await broker.history("h", None, None)
        assert unused.position.offset == 0 and unused.publications == []
        for i in range(5):
            position = await broker.publish("h", b"%d" % i, "u" if i % 2 else None, HISTORY)
        epoch = position.epoch
        assert position == StreamPosition(5, unused.position.epoch)
        result = await broker.history("h", None, None)
        assert result.position == position
        assert [(p.offset, p.data, p.user, p.epoch) for p in result.publications] == [
            (3, b"2", None, epoch),
            (4, b"3", "u", epoch),
            (5, b"4", None, epoch),
        ]
        assert [p.offset for p in (await broker.history("h", None, 2)).publications] == [3, 4]
        assert (await broker.history("h", None, 0)).publications == []
        since = await broker.history("h", StreamPosition(3, epoch), None)
        assert [p.offset for p in since.publications] == [4, 5]
        older = await broker.history("h", StreamPosition(1, epoch), None)
        assert [p.offset for p in older.publications] == [3, 4, 5]  # the caller sees the gap
        assert (await broker.history("h", StreamPosition(1, "other"), None)).publications == []
        await broker.publish("h", b"5", None, NONE)  # without history: the position only
        plain = await broker.history("h", None, None)
        assert plain.position == StreamPosition(6, epoch) and plain.publications == []
        grown = await broker.publish("h", b"6", None, HISTORY)
        assert [p.offset for p in (await broker.history("h", None, None)).publications] == [
            grown.offset
        ]


@run_async(loops=("uvloop",))
async def test_history_read_in_reverse(backend: Nodes) -> None:
    async with backend as nodes:
        broker, _ = await nodes.node()
        await check_reverse_history(broker, "r")


@run_async(loops=("uvloop",))
async def test_binary_data_round_trips(backend: Nodes) -> None:
    async with backend as nodes:
        broker, sink = await nodes.node()
        await check_binary_data(broker, sink, "b")


@run_async(loops=("uvloop",))
async def test_control_messages_history_removal_and_node_announcements(backend: Nodes) -> None:
    async with backend as nodes:
        one, sink = await nodes.node()
        sinks = [sink]
        if nodes.shared:
            two, other = await nodes.node()
            sinks.append(other)
        await check_server_api_support(one, sinks, "s")
        if nodes.shared:
            assert await two.nodes() == await one.nodes()


@run_async(loops=("uvloop",))
async def test_subscribed_nodes_get_publications_joins_leaves_and_user_messages(
    backend: Nodes,
) -> None:
    async with backend as nodes:
        a, sink_a = await nodes.node()
        b, sink_b = (await nodes.node()) if nodes.shared else (a, sink_a)
        info = ClientInfo("c1", "bob", b'{"x":1}')
        await a.publish("news", b"0", None, NONE)  # nobody subscribed yet
        await b.subscribe("news")
        await a.publish("news", b"1", "bob", NONE)
        await a.publish_join("news", info)
        await a.publish_leave("news", info)
        await a.send_to_user("bob", "alice", b'"hi"')
        await a.disconnect_user("bob", 4503, "bye")
        expected = [
            ("pub", "news", 2, b"1"),
            ("join", "news", "c1"),
            ("leave", "news", "c1"),
            ("message", "bob", "alice", b'"hi"'),
            ("disconnect", "bob", 4503, "bye"),
        ]

        def streams(events: list[tuple]) -> list[list[tuple]]:
            """Publications, members, users: each in order; not ordered among them (they
            may travel apart: a stream's republication, sharded pub/sub...). Occupancy
            events, which a node may be told on its own, have their own test."""
            return [[e for e in events if e[0] in kinds] for kinds in STREAMS]

        def received(sink: Sink, count: int) -> bool:
            return sum(map(len, streams(sink.events))) >= count

        await until(lambda: received(sink_b, len(expected)), "the events on node B")
        assert streams(sink_b.events) == streams(expected)
        if nodes.shared:  # users reach every node; channels only the subscribed ones
            await until(lambda: received(sink_a, 2), "the user's events on node A")
            assert streams(sink_a.events) == streams(expected[3:])
        await b.unsubscribe("news")
        await a.publish("news", b"2", None, NONE)
        await b.send_to_user("bob", None, b"1")  # after anything still in flight
        await until(lambda: received(sink_b, len(expected) + 1), "the last message")
        assert streams(sink_b.events) == streams([*expected, ("message", "bob", None, b"1")])


@run_async(loops=("uvloop",))
async def test_presence_is_shared_and_removed(backend: Nodes) -> None:
    async with backend as nodes:
        a, _ = await nodes.node()
        b, _ = (await nodes.node()) if nodes.shared else (a, None)
        alice, bob = ClientInfo("c1", "alice", b'{"n":1}'), ClientInfo("c.2*", "bob")
        assert await a.presence("p") == {}
        await a.add_presence("p", alice)
        await b.add_presence("p", bob)
        await a.add_presence("other", bob)
        assert await a.presence("p") == await b.presence("p") == {"c1": alice, "c.2*": bob}
        await b.remove_presence("p", "c.2*")
        assert await a.presence("p") == {"c1": alice}
        await a.remove_presence("p", "c1")
        assert await b.presence("p") == {}
        assert await b.presence("other") == {"c.2*": bob}


@run_async(loops=("uvloop",))
async def test_occupancy_is_counted_or_known_to_be_unknown(backend: Nodes) -> None:
    async with backend as nodes:
        brokers = [(await nodes.node())[0] for _ in range(2 if nodes.shared else 1)]
        if brokers[0].counts_occupancy:
            await check_occupancy(brokers, "o")
        else:  # the hub refuses hooks on occupancy with such a broker (test_nats_hub.py)
            assert await brokers[0].subscribe("o") is None
            assert await brokers[1].subscribe("o") is None
            assert await brokers[0].unsubscribe("o") is None
